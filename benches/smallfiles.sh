#!/usr/bin/env bash
# Many small files (issue 15 item 4): snap against restic and borg on a
# workspace of N log files of ~4 KB in DIRS folders (TensorBoard-style or
# per-step JSON output), in the same run. Only the ratios are meaningful on
# a shared machine.
#
#   benches/smallfiles.sh
#   N=20000 ROUNDS=3 benches/smallfiles.sh
#   SNAP_BASE=/path/to/old/snap benches/smallfiles.sh   also time an older snap
#
# Environment:
#   N=100000        files
#   DIRS=500        folders (files spread evenly over them)
#   ROUNDS=3        rounds; in each, every tool (in an order rotated per
#                   round) makes a fresh repository, commits the workspace,
#                   commits it again unchanged, and is measured; medians kept
#   TOOLS="snap restic borg"   which tools to run (missing ones are skipped)
#   SNAP            the snap binary (default: cargo build --release, then
#                   target/release/snap)
#   SNAP_BASE       a second snap binary (say, main's), reported as snap-base
#   TMPDIR          where the data goes
#   KEEP_WORK=1     keep the work directory at the end
#
# The workspace (seeded, Python standard library only, identical on every
# machine): DIRS folders run_NNN/, each with N/DIRS files, alternately
# step_NNNNNN.json (one JSON object of per-step metrics per line) and
# events_NNNNNN.log (text log lines), 2-6 KB each (~4 KB on average), made
# once before the first round (so every file is older than snap's 45 s
# "recently modified" window by the time the commits run, as on a training
# machine that commits the files of earlier steps).
#
# snap keeps its repository in the workspace (.snap/, left out by restic and
# borg with --exclude), restic (repository v2, `backup --compression auto`)
# and borg (`--encryption=none`, `create --compression zstd,3`) outside it.
# Sizes: du -sb of the repository; for snap, packs and records (everything
# but index.sqlite) and the index (index.sqlite with its -wal) separately.
# Every tool runs on a warm page cache (the workspace was just written).
# Prints each run, then medians, snap's figures as ratios to restic's and
# borg's, and the issue's targets with PASS/FAIL. Exits 0 unless a step
# crashed: it is a measurement tool, not a test.

set -euo pipefail

N=${N:-100000}
DIRS=${DIRS:-500}
ROUNDS=${ROUNDS:-3}
TOOLS=${TOOLS:-"snap restic borg"}
here=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }

if [ -z "${SNAP:-}" ]; then
    (cd "$here" && nice cargo build --release --quiet --bin snap)
    SNAP="${CARGO_TARGET_DIR:-$here/target}/release/snap"
fi
SNAP=$(cd "$(dirname "$SNAP")" && pwd)/$(basename "$SNAP")
[ -n "${SNAP_BASE:-}" ] && SNAP_BASE=$(cd "$(dirname "$SNAP_BASE")" && pwd)/$(basename "$SNAP_BASE")

have() {
    case $1 in
    snap) true ;;
    snap-base) [ -n "${SNAP_BASE:-}" ] ;;
    *) command -v "$1" >/dev/null ;;
    esac
}
RUN=()
for t in snap ${SNAP_BASE:+snap-base} $TOOLS; do
    case " ${RUN[*]} " in *" $t "*) continue ;; esac
    if have "$t"; then RUN+=("$t"); else say "skipping $t: not installed (apt-get install -y restic borgbackup)"; fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-smallfiles.XXXXXX")
cleanup() { [ "${KEEP_WORK:-}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
WS="$WORK/ws"
export RESTIC_PASSWORD=x RESTIC_CACHE_DIR="$WORK/cache/restic"
export BORG_BASE_DIR="$WORK/cache/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

say "making $N files in $DIRS folders under $WS"
python3 - "$WS" "$N" "$DIRS" <<'EOF'
import json, os, random, sys
root, n, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(15_4)
per = -(-n // dirs)
made = 0
for d in range(dirs):
    path = os.path.join(root, f"run_{d:03d}")
    os.makedirs(path, exist_ok=True)
    for i in range(per):
        if made == n:
            break
        step = d * per + i
        size = rng.randint(2048, 6144)
        out = []
        total = 0
        if i % 2 == 0:
            name = f"step_{step:06d}.json"
            k = 0
            while total < size:
                line = json.dumps({
                    "step": step, "micro": k, "loss": round(rng.random() * 4, 6),
                    "acc": round(rng.random(), 6), "lr": 3e-4 * (0.999 ** step),
                    "grad_norm": round(rng.lognormvariate(0, 0.5), 5),
                    "tokens": rng.randint(1 << 16, 1 << 20),
                }) + "\n"
                out.append(line); total += len(line); k += 1
        else:
            name = f"events_{step:06d}.log"
            k = 0
            while total < size:
                line = (f"[{step}:{k:03d}] loss={rng.random() * 4:.5f} "
                        f"ppl={rng.random() * 60:.3f} mem={rng.randint(1000, 80000)}MiB "
                        f"throughput={rng.random() * 1e4:.1f} tok/s\n")
                out.append(line); total += len(line); k += 1
        with open(os.path.join(path, name), "w") as f:
            f.write("".join(out)[:size])
        made += 1
EOF
WS_BYTES=$(du -sb --apparent-size "$WS" | cut -f1)
say "workspace: $N files, $WS_BYTES bytes"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# run_tool TOOL: fresh repository, first commit, unchanged recommit; sets
# FIRST, AGAIN (seconds), REPO (bytes), INDEX (bytes, snap only).
run_tool() {
    local tool=$1 repo="$WORK/repo-$1" t0 t1 t2 bin
    rm -rf "$repo" "$WS/.snap" "$WORK/cache"
    INDEX=0
    case $tool in
    snap | snap-base)
        bin=$SNAP
        [ "$tool" = snap-base ] && bin=$SNAP_BASE
        (cd "$WS" && "$bin" init >/dev/null)
        t0=$(now)
        (cd "$WS" && "$bin" commit >/dev/null)
        t1=$(now)
        (cd "$WS" && "$bin" commit >/dev/null)
        t2=$(now)
        INDEX=$(cat "$WS/.snap/index.sqlite"* | wc -c)
        REPO=$(($(du -sb "$WS/.snap" | cut -f1) - INDEX))
        rm -rf "$WS/.snap"
        ;;
    restic)
        restic -r "$repo" init --repository-version 2 -q >/dev/null
        t0=$(now)
        restic -r "$repo" backup --compression auto -q --host bench --exclude .snap "$WS" >/dev/null
        t1=$(now)
        restic -r "$repo" backup --compression auto -q --host bench --exclude .snap "$WS" >/dev/null
        t2=$(now)
        REPO=$(du -sb "$repo" | cut -f1)
        ;;
    borg)
        borg init --encryption=none "$repo" >/dev/null 2>&1
        t0=$(now)
        (cd "$WS" && borg create --compression zstd,3 --exclude .snap "$repo::a" . >/dev/null)
        t1=$(now)
        (cd "$WS" && borg create --compression zstd,3 --exclude .snap "$repo::b" . >/dev/null)
        t2=$(now)
        REPO=$(du -sb "$repo" | cut -f1)
        ;;
    esac
    FIRST=$(elapsed "$t0" "$t1")
    AGAIN=$(elapsed "$t1" "$t2")
    rm -rf "$repo" "$WORK/cache"
}

declare -A FIRSTS AGAINS REPOS INDEXES
for ((round = 0; round < ROUNDS; round++)); do
    say "round $((round + 1)) of $ROUNDS"
    n=${#RUN[@]}
    for ((k = 0; k < n; k++)); do
        tool=${RUN[$(((k + round) % n))]}
        run_tool "$tool"
        say "  $(printf '%-9s' "$tool") first commit $FIRST s  unchanged recommit $AGAIN s  repository $REPO B  index $INDEX B"
        FIRSTS[$tool]+="$FIRST "
        AGAINS[$tool]+="$AGAIN "
        REPOS[$tool]+="$REPO "
        INDEXES[$tool]+="$INDEX "
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A MF MA MR MI
echo "## $N files of ~4 KB in $DIRS folders ($WS_BYTES bytes), medians of $ROUNDS rounds"
echo
printf '| %-9s | %12s | %12s | %17s | %11s |\n' tool "first (s)" "recommit (s)" "packs+records (B)" "index (B)"
printf '|%s|%s|%s|%s|%s|\n' ----------- -------------- -------------- ------------------- -------------
for tool in "${RUN[@]}"; do
    MF[$tool]=$(echo "${FIRSTS[$tool]}" | median)
    MA[$tool]=$(echo "${AGAINS[$tool]}" | median)
    MR[$tool]=$(echo "${REPOS[$tool]}" | median)
    MI[$tool]=$(echo "${INDEXES[$tool]}" | median)
    printf '| %-9s | %12s | %12s | %17s | %11s |\n' "$tool" "${MF[$tool]}" "${MA[$tool]}" "${MR[$tool]}" "${MI[$tool]}"
done
echo
echo "index bytes per file: snap $(awk -v i="${MI[snap]}" -v n="$N" 'BEGIN { printf "%.0f", i / n }')${SNAP_BASE:+, snap-base $(awk -v i="${MI[snap-base]}" -v n="$N" 'BEGIN { printf "%.0f", i / n }')}"
echo
target() { # name value limit
    local verdict=FAIL
    [ "$2" != - ] && awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }' && verdict=PASS
    printf '| %-52s | %6s | <= %-4s | %s |\n' "$1" "$2" "$3" "$verdict"
}
echo "| target | ratio | limit | |"
echo "|---|---|---|---|"
for other in restic borg; do
    [ -n "${MF[$other]:-}" ] || continue
    target "snap first commit / $other's" "$(ratio "${MF[snap]}" "${MF[$other]}")" 1.0
    target "snap unchanged recommit / $other's" "$(ratio "${MA[snap]}" "${MA[$other]}")" 1.0
    target "snap packs+records / $other's repository" "$(ratio "${MR[snap]}" "${MR[$other]}")" 1.0
done
if [ -n "${SNAP_BASE:-}" ]; then
    echo
    echo "snap / snap-base: first commit $(ratio "${MF[snap]}" "${MF[snap-base]}"), recommit $(ratio "${MA[snap]}" "${MA[snap-base]}"), packs+records $(ratio "${MR[snap]}" "${MR[snap-base]}"), index $(ratio "${MI[snap]}" "${MI[snap-base]}")"
fi
vers="$("$SNAP" --version 2>/dev/null || echo snap)"
have restic && vers="$vers; $(restic version | cut -d' ' -f1-2)"
have borg && vers="$vers; $(borg --version)"
echo
echo "($vers; $(nproc) cores)"
