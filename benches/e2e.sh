#!/usr/bin/env bash
# End-to-end measurements of `snap` against reference pipes, on the same data
# in the same run. Only the ratios are meaningful on a shared machine.
#
#   benches/e2e.sh                      1 GiB workspace, 4 GiB big file
#   SIZE_MB=256 SKIP_BIG=1 benches/e2e.sh
#
# Environment:
#   SIZE_MB=1024     size of the workspace (fp32 tensor-like files, one large)
#   BIG_MB=4096      size of the single file whose commit's peak memory is measured
#   SKIP_BIG=1       skip the big-file measurement
#   REPEAT=3         rounds of each timed step; the fastest round is reported
#   DROP_CACHES=1    drop the page cache before every timed step (needs root
#                    and a writable /proc/sys/vm/drop_caches); default: warm
#   TMPDIR           where the data goes (needs ~3 x SIZE_MB + 2 x BIG_MB free)
#   SNAP             a prebuilt snap binary (default: cargo build --release)
#
# Measures:
#   commit    `snap init` + `snap commit`  vs  `cat FILES | zstd -3 -T2 > out.zst`
#   restore   `snap restore latest --target DIR`  vs  `zstd -d -T2 < out.zst > file`
#   second commit of the unchanged workspace vs the first
#   peak RSS of committing one BIG_MB file (/usr/bin/time -v)
#   repository size vs the zstd -3 output
# and prints a table with targets and PASS/FAIL. Always exits 0 unless a step
# crashed: it is a measurement tool, not a test.

set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
BIG_MB=${BIG_MB:-4096}
SKIP_BIG=${SKIP_BIG:-0}
REPEAT=${REPEAT:-3}
DROP_CACHES=${DROP_CACHES:-0}

here=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
# awk arithmetic on decimal strings: calc 'a / b' with a, b substituted.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
mib() { calc "$1 / 1048576"; }

# --- tools -----------------------------------------------------------------

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "error: $1 is missing and cannot be installed (not root or no apt-get)"
        exit 2
    fi
    say "installing $1 with apt-get"
    apt-get install -y -q "$1" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$1" >/dev/null; }
}
command -v zstd >/dev/null || apt_install zstd
command -v python3 >/dev/null || apt_install python3
[ -x /usr/bin/time ] || apt_install time

if [ -z "${SNAP:-}" ]; then
    say "building snap (cargo build --release)"
    (cd "$here" && cargo build --release --quiet --bin snap)
    SNAP="$here/target/release/snap"
fi
SNAP=$(cd "$(dirname "$SNAP")" && pwd)/$(basename "$SNAP")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-e2e.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
say "work directory: $WORK"
df -h "$WORK" >&2

# --- page cache --------------------------------------------------------------

CACHES="warm (each step's input read into the page cache just before it)"
if [ "$DROP_CACHES" = 1 ]; then
    if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
        CACHES="cold (page cache dropped before every timed step)"
    else
        say "cannot drop caches here; measuring warm"
        DROP_CACHES=0
    fi
fi
# Before a timed step: flush what earlier steps wrote, so it is not charged
# to this step, then make the step's inputs ("$@", files or directories) warm
# or cold. Warming right before the step matters on VMs whose host pages out
# page cache that has been idle for a few seconds (DAMON "pageout"): without
# it, whichever input happened to be evicted decides the ratio.
settle() {
    sync
    if [ "$DROP_CACHES" = 1 ]; then
        echo 3 >/proc/sys/vm/drop_caches
    elif [ $# -gt 0 ]; then
        find "$@" -type f -exec cat {} + >/dev/null
    fi
}

# --- data ----------------------------------------------------------------------

# gen PATH SIZE SEED [PATH SIZE SEED ...]: seeded fp32 values shaped like
# trained weights (~N(0, 0.02); zstd -3 keeps ~0.93 of them, as of real
# checkpoints), written 4 MiB at a time. The sampler is
# benches/common/weights.py, shared with benches/compare.sh.
export BENCH_COMMON="$here/benches/common"
gen() {
    python3 - "$@" <<'EOF'
import os, random, sys

sys.dont_write_bytecode = True  # no __pycache__ in benches/common
sys.path.insert(0, os.environ["BENCH_COMMON"])  # ahead of the caller's directory
from weights import weights

def write(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(4 << 20, left)
            f.write(weights(rng, n))
            left -= n

args = sys.argv[1:]
for i in range(0, len(args), 3):
    write(args[i], int(args[i + 1]), int(args[i + 2]))
EOF
}

WS="$WORK/ws"
mkdir -p "$WS/checkpoints"
total=$((SIZE_MB * 1048576))
# One large file (half), an optimizer state (a quarter), two epoch checkpoints.
s1=$((total / 2 / 4 * 4)); s2=$((total / 4 / 4 * 4)); s3=$((total / 8 / 4 * 4))
s4=$((total - s1 - s2 - s3))
FILES=("$WS/model.bin" "$WS/optimizer.bin" "$WS/checkpoints/epoch_1.bin" "$WS/checkpoints/epoch_2.bin")
say "generating ${SIZE_MB} MiB of tensor-like data"
t0=$(now)
gen "${FILES[0]}" $s1 1 "${FILES[1]}" $s2 2 "${FILES[2]}" $s3 3 "${FILES[3]}" $s4 4
say "  took $(calc "$(now) - $t0") s"
# snap's stat cache does not trust files changed less than 50 ms before they
# are read; the data must be older than that for the second commit to skip it.
sleep 1

# --- timed steps ------------------------------------------------------------------

# Runs "$@" under /usr/bin/time -v; stores its wall time in T (seconds) and
# its peak RSS in RSS (KiB; the largest process, bash -c children included).
# The step's inputs, to warm first, are in the array WARM.
timed() {
    local report="$WORK/time.txt"
    settle "${WARM[@]}"
    local t0 t1
    t0=$(now)
    /usr/bin/time -v -o "$report" "$@"
    t1=$(now)
    T=$(calc "$t1 - $t0")
    RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$report")
}
# Stores in FS the time to fsync the files "$@" (coreutils sync FILE...).
fsync_time() {
    local t0
    t0=$(now)
    sync "$@"
    FS=$(calc "$(now) - $t0")
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }'; }

# Each step is one command line; `bash -c` runs the pipes, paths are arguments.
ref_compress() { WARM=("${FILES[@]}"); timed bash -c 'out=$1; shift; cat "$@" | zstd -3 -T2 -q >"$out"' _ "$WORK/out.zst" "${FILES[@]}"; }
ref_decompress_null() { WARM=("$WORK/out.zst"); timed bash -c 'zstd -d -T2 -q <"$1" | cat >/dev/null' _ "$WORK/out.zst"; }
ref_decompress_file() { WARM=("$WORK/out.zst"); timed bash -c 'zstd -d -T2 -q <"$1" >"$2"' _ "$WORK/out.zst" "$WORK/ref_restore.bin"; }
ref_copy() { WARM=("${FILES[@]}"); timed bash -c 'out=$1; shift; cat "$@" >"$out"' _ "$WORK/ref_copy.bin" "${FILES[@]}"; }
snap_commit() { WARM=("${FILES[@]}"); timed bash -c 'cd "$1" && "$2" init >/dev/null && "$2" commit -m e2e' _ "$WS" "$SNAP"; }
snap_commit_again() { WARM=("$WS/.snap"); timed bash -c 'cd "$1" && "$2" commit -m unchanged' _ "$WS" "$SNAP"; }
snap_restore() { WARM=("$WS/.snap"); timed bash -c 'cd "$1" && "$2" restore latest --target "$3"' _ "$WS" "$SNAP" "$WORK/restored"; }

WARM=()
REF_C="" REF_CS="" SNAP_C="" SNAP_C2="" REF_DN="" REF_DF="" REF_CP="" SNAP_R=""
RSS_C="" RSS_R=""
# Steps taking the fastest round; each prints its time.
step_ref_compress() {
    ref_compress; REF_C=$(min "$REF_C" "$T")
    say "  cat FILES | zstd -3 -T2 > out.zst   $T s"
    # snap commit fsyncs its packs; the reference does not. Shown apart.
    fsync_time "$WORK/out.zst"; REF_CS=$(min "$REF_CS" "$(calc "$T + $FS")")
    say "    + fsync of out.zst                $FS s"
}
step_snap_commits() {
    snap_commit >"$WORK/commit.log"; SNAP_C=$(min "$SNAP_C" "$T"); RSS_C=$(max "$RSS_C" "$RSS")
    say "  snap init + commit                  $T s  (peak RSS $((RSS / 1024)) MiB)"
    snap_commit_again >"$WORK/commit2.log"; SNAP_C2=$(min "$SNAP_C2" "$T")
    say "  snap commit (unchanged)             $T s"
}
step_ref_restores() {
    ref_decompress_null; REF_DN=$(min "$REF_DN" "$T")
    say "  zstd -d -T2 < out.zst | cat > null  $T s"
    ref_decompress_file; REF_DF=$(min "$REF_DF" "$T")
    say "  zstd -d -T2 < out.zst > file        $T s"
    ref_copy; REF_CP=$(min "$REF_CP" "$T")
    say "  cat FILES > file                    $T s"
}
step_snap_restore() {
    snap_restore >"$WORK/restore.log"; SNAP_R=$(min "$SNAP_R" "$T"); RSS_R=$(max "$RSS_R" "$RSS")
    say "  snap restore latest --target DIR    $T s  (peak RSS $((RSS / 1024)) MiB)"
}

# Odd rounds run the reference first, even rounds snap first: on a VM the
# cost of writing into fresh page cache drifts with what ran just before.
for round in $(seq 1 "$REPEAT"); do
    say "round $round/$REPEAT"
    rm -rf "$WS/.snap" "$WORK/restored" "$WORK/ref_restore.bin" "$WORK/ref_copy.bin"
    if [ $((round % 2)) = 1 ]; then
        step_ref_compress; step_snap_commits; step_ref_restores; step_snap_restore
    else
        step_snap_commits; step_ref_compress; step_snap_restore; step_ref_restores
    fi
done

# Correctness of what was measured (untimed).
for f in "${FILES[@]}"; do
    cmp "$f" "$WORK/restored/${f#"$WS"/}" || { say "error: restored $f differs"; exit 1; }
done
say "restored files are byte-identical"
say "first commit:  $(tail -n 3 "$WORK/commit.log" | tr '\n' ' ')"
say "second commit: $(tail -n 3 "$WORK/commit2.log" | tr '\n' ' ')"

ZST_BYTES=$(stat -c %s "$WORK/out.zst")
REPO_BYTES=$(du -sb "$WS/.snap" | cut -f1)
PACK_BYTES=$(du -sb "$WS/.snap/packs" | cut -f1)
rm -rf "$WORK/restored" "$WORK/ref_restore.bin" "$WORK/ref_copy.bin"

# --- one big file: peak memory -------------------------------------------------

BIG_RSS="" BIG_T="" BIG_REF="" BIG_REFS=""
if [ "$SKIP_BIG" != 1 ]; then
    rm -rf "$WS" "$WORK/out.zst"   # room for the big file
    BIGWS="$WORK/big"
    mkdir -p "$BIGWS"
    say "generating one ${BIG_MB} MiB file"
    gen "$BIGWS/big.bin" $((BIG_MB * 1048576)) 5
    sleep 1
    WARM=("$BIGWS/big.bin")
    timed bash -c 'zstd -3 -T2 -q <"$1" >"$2"' _ "$BIGWS/big.bin" "$WORK/big.zst"
    BIG_REF=$T
    say "  zstd -3 -T2 compress                $T s  (peak RSS $((RSS / 1024)) MiB)"
    fsync_time "$WORK/big.zst"; BIG_REFS=$(calc "$BIG_REF + $FS")
    say "    + fsync of its output             $FS s"
    rm -f "$WORK/big.zst"
    WARM=("$BIGWS/big.bin")
    timed bash -c 'cd "$1" && "$2" init >/dev/null && "$2" commit -m big >/dev/null' _ "$BIGWS" "$SNAP"
    BIG_T=$T BIG_RSS=$RSS
    say "  snap init + commit                  $T s  (peak RSS $((RSS / 1024)) MiB)"
    rm -rf "$BIGWS"
fi

# --- report -------------------------------------------------------------------------

row() { printf '%-44s %14s %12s  %s\n' "$@"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }

R_COMMIT=$(calc "$SNAP_C / $REF_C")
R_RESTORE=$(calc "$SNAP_R / $REF_DF")
R_SECOND=$(calc "100 * $SNAP_C2 / $SNAP_C")
R_SIZE=$(calc "$REPO_BYTES / $ZST_BYTES")

echo
echo "snap e2e: ${SIZE_MB} MiB workspace (4 fp32 tensor-like files), best of $REPEAT rounds (order alternated)"
echo "machine: $(nproc) cores; caches: $CACHES"
rev=$(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo '?')
if [ -n "$(cd "$here" && git status --porcelain 2>/dev/null)" ]; then rev="$rev + uncommitted changes"; fi
echo "snap: $SNAP ($rev)"
echo
echo "raw times (seconds, throughput over ${SIZE_MB} MiB):"
for pair in "zstd -3 -T2 compress (cat | zstd > out.zst):$REF_C" \
    "zstd -3 -T2 compress, then fsync out.zst:$REF_CS" \
    "snap init + commit:$SNAP_C" \
    "snap commit, unchanged workspace:$SNAP_C2" \
    "zstd -d | cat > /dev/null (decompress only):$REF_DN" \
    "zstd -d > file (decompress + write):$REF_DF" \
    "cat FILES > file (write only):$REF_CP" \
    "snap restore latest --target DIR:$SNAP_R"; do
    name=${pair%:*} t=${pair##*:}
    printf '  %-46s %8.3f s  %8.1f MiB/s\n' "$name" "$t" "$(calc "$SIZE_MB / $t")"
done
echo "  commit reference = 'cat | zstd > out.zst' without fsync (the target's"
echo "  definition); snap commit fsyncs every pack, so snap / (zstd + fsync) ="
echo "  $(calc "$SNAP_C / $REF_CS")x is the like-for-like figure (durability included)."
echo "  restore reference = 'zstd -d > file': it decompresses and writes the same"
echo "  bytes to disk, as snap restore does (neither fsyncs); 'decompress only'"
echo "  and 'write only' are shown to split that cost."
echo
echo "sizes: zstd -3 output $(mib "$ZST_BYTES") MiB; repository $(mib "$REPO_BYTES") MiB" \
    "(packs $(mib "$PACK_BYTES") MiB); data ${SIZE_MB} MiB"
echo "peak RSS: commit $((RSS_C / 1024)) MiB, restore $((RSS_R / 1024)) MiB (${SIZE_MB} MiB workspace)"
if [ -n "$BIG_RSS" ]; then
    echo "big file: ${BIG_MB} MiB, snap commit $BIG_T s vs zstd -3 -T2 $BIG_REF s" \
        "(ratio $(calc "$BIG_T / $BIG_REF")); zstd + fsync $BIG_REFS s (ratio $(calc "$BIG_T / $BIG_REFS"))"
fi
echo
row "figure" "value" "target" "result"
row "commit time, snap / zstd -3 -T2" "${R_COMMIT}x" "<= 1.3x" "$(verdict "$R_COMMIT <= 1.3")"
row "restore time, snap / (zstd -d > file)" "${R_RESTORE}x" "<= 1.3x" "$(verdict "$R_RESTORE <= 1.3")"
row "second (unchanged) commit / first" "${R_SECOND}%" "< 5%" "$(verdict "$R_SECOND < 5")"
if [ -n "$BIG_RSS" ]; then
    row "peak RSS, commit of one ${BIG_MB} MiB file" "$((BIG_RSS / 1024)) MiB" "< 300 MiB" \
        "$(verdict "$BIG_RSS / 1024 < 300")"
else
    row "peak RSS, commit of one big file" "skipped" "< 300 MiB" "-"
fi
row "repository size / zstd -3 output" "${R_SIZE}x" "(info)" "-"
exit 0
