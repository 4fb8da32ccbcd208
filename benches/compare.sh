#!/usr/bin/env bash
# snap against restic, borg and zip-per-epoch on two replayed training runs,
# on the same data in the same run. Only the ratios are meaningful on a
# shared machine.
#
#   benches/compare.sh                   compare with the tools installed
#   benches/compare.sh --install         first apt-get install restic, borgbackup,
#                                        zip, unzip (root; never in CI)
#   MODEL_MB=512 FT_MB=1024 benches/compare.sh
#
# Environment:
#   MODEL_MB=64      full training: size of one checkpoint
#   EPOCHS=8         full training: epochs (one checkpoint file per epoch)
#   FT_MB=64         frozen-backbone fine-tune: size of the frozen backbone
#   HEAD_KB          fine-tune: size of the trained head (default: 1 % of FT_MB)
#   FT_EPOCHS=8      fine-tune: epochs
#   TOOLS="snap restic borg zip"   which tools to run (missing ones are skipped)
#   TMPDIR           where the data goes
#   SNAP             a prebuilt snap binary (default: cargo build --release)
#   KEEP_WORK=1      keep the work directory (workspaces, repositories) at the end
#   RESTORES=3       restores of the last snapshot per tool (median kept)
#   WORKLOADS="full frozen hf train"   which workloads to run
#   HF_MB=64 HF_HEAD_MB=4 HF_EPOCHS=6   hf: bf16 backbone, fp32 head, saves
#   TRAIN_MB=32 TRAIN_EPOCHS=6          train: model + optimizer state per file
#   TORCH_PYTHON     a python with torch and safetensors (default: the CI venv,
#                    ~/.cache/snap-ci/venv-py311/bin/python, else python3);
#                    without torch, hf and train are skipped with a note
#
# Workloads (seeded, Python standard library only, identical on every machine):
#   full     a safetensors model (fp32 ~N(0, 0.02), 14 tensors); every epoch
#            every tensor changes a little (the two low mantissa bytes of
#            every value are resampled: a relative update of ~1e-3..1e-5,
#            sign, exponent and top mantissa bits kept), written as a NEW file
#            models/epoch_NN.safetensors; logs/train.log grows; config/ and
#            src/ never change. When val_loss improves, the epoch's checkpoint
#            is copied to best.pt and a second ("best") snapshot is taken.
#   frozen   a fine-tune: a frozen backbone that never changes plus a small
#            head that changes completely each epoch, in ONE checkpoint file
#            models/checkpoint.safetensors OVERWRITTEN in place every epoch
#            (as torch.save over the same name does); the log grows.
#   hf       an HF Trainer fine-tune trained for real with torch
#            (benches/common/train.py): frozen bf16 backbone, trained fp32 head,
#            AdamW; each save a NEW folder checkpoints/checkpoint-STEP/
#            {model.safetensors, optimizer.pt, scheduler.pt, trainer_state.json},
#            the two newest kept (save_total_limit=2).
#   train    a full training with torch: an MLP whose every weight moves by
#            real AdamW steps, saved with its optimizer state as a NEW file
#            checkpoints/epoch_N.pt (torch.save) every epoch.
# Every epoch is snapshotted into each tool: snap (`snap commit --json`),
# restic (repository v2, `backup --compression auto`), borg (`--encryption=none`,
# `create --compression zstd,3`) and zip (one `zip -r -q` archive per epoch,
# taken after the best.pt copy).
#
# Prints, per tool and workload: repository bytes (du -sb), median time per
# epoch snapshot, restore time of the last snapshot (median of RESTORES,
# each listed, alternated with the other tools and with `tar -xf` of an
# uncompressed tar of the same tree), peak RSS over all the snapshot runs;
# snap's figures as ratios to borg, restic and tar; the size of ONE checkpoint under `zstd -3`; snap's
# new_raw_bytes for every best.pt commit; and a table of targets with
# PASS/FAIL. Every restore is checked against the workspace (diff -r).
# Always exits 0 unless a step crashed: it is a measurement tool, not a test.

set -euo pipefail

MODEL_MB=${MODEL_MB:-64}
EPOCHS=${EPOCHS:-8}
FT_MB=${FT_MB:-64}
HEAD_KB=${HEAD_KB:-$((FT_MB * 1024 / 100))}
FT_EPOCHS=${FT_EPOCHS:-8}
TOOLS=${TOOLS:-"snap restic borg zip"}
RESTORES=${RESTORES:-3}
WORKLOADS=${WORKLOADS:-"full frozen hf train"}
HF_MB=${HF_MB:-64}
HF_HEAD_MB=${HF_HEAD_MB:-4}
HF_EPOCHS=${HF_EPOCHS:-6}
TRAIN_MB=${TRAIN_MB:-32}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-6}
if [ -z "${TORCH_PYTHON:-}" ]; then
    TORCH_PYTHON=python3
    [ -x "$HOME/.cache/snap-ci/venv-py311/bin/python" ] && TORCH_PYTHON=$HOME/.cache/snap-ci/venv-py311/bin/python
fi

here=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
# Ratios that are judged against a limit keep 4 decimals: 0.90012 must not
# round to a passing 0.900.
calc4() { awk "BEGIN { printf \"%.4f\", $1 }"; }
mib() { calc "$1 / 1048576"; }

INSTALL=0
for arg in "$@"; do
    case $arg in
    --install) INSTALL=1 ;;
    -h | --help) sed -n '2,64p' "$0"; exit 0 ;;
    *) say "usage: benches/compare.sh [--install]"; exit 2 ;;
    esac
done

# --- tools -----------------------------------------------------------------

if [ "$INSTALL" = 1 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "error: --install needs root and apt-get"
        exit 2
    fi
    say "installing restic borgbackup zip unzip zstd time with apt-get"
    apt-get update -q >/dev/null && apt-get install -y -q restic borgbackup zip unzip zstd time >/dev/null
fi
for t in zstd python3 /usr/bin/time; do
    command -v "$t" >/dev/null || { say "error: $t is missing (try --install)"; exit 2; }
done

if [ -z "${SNAP:-}" ]; then
    say "building snap (cargo build --release)"
    (cd "$here" && cargo build --release --quiet --bin snap)
    SNAP="$here/target/release/snap"
fi
SNAP=$(cd "$(dirname "$SNAP")" && pwd)/$(basename "$SNAP")

have() {
    case $1 in
    snap) [ -x "$SNAP" ] ;;
    restic) command -v restic >/dev/null ;;
    borg) command -v borg >/dev/null ;;
    zip) command -v zip >/dev/null && command -v unzip >/dev/null ;;
    esac
}
RUN=() MISSING=()
for t in $TOOLS; do
    if have "$t"; then RUN+=("$t"); else MISSING+=("$t"); fi
done
if [ ${#MISSING[@]} -gt 0 ]; then
    say "missing, skipped: ${MISSING[*]} (benches/compare.sh --install installs them with apt-get)"
fi
say "tools: ${RUN[*]}"
uses() { case " ${RUN[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-compare.XXXXXX")
cleanup() {
    if [ "${KEEP_WORK:-0}" = 1 ]; then say "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
say "work directory: $WORK"

export RESTIC_PASSWORD=x RESTIC_CACHE_DIR="$WORK/cache/restic"
export BORG_BASE_DIR="$WORK/cache/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
unset SNAP_SESSION

# --- page cache / timing (as in benches/e2e.sh) --------------------------------

# Before a timed step: flush what earlier steps wrote, then read the step's
# inputs so every tool starts warm (the VM's host pages out idle page cache).
settle() {
    sync
    if [ $# -gt 0 ]; then find "$@" -type f -exec cat {} + >/dev/null; fi
}
# Runs "$@" under /usr/bin/time -v after warming the array WARM; stores its
# wall time in T (seconds) and its peak RSS in RSS (KiB).
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
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Runs "$@" in directory $1.
IN_DIR=(bash -c 'cd "$1" && shift && exec "$@"' _)

# --- data ----------------------------------------------------------------------

# The workloads' writer; its fp32 sampler (`weights`) is
# benches/common/weights.py, shared with benches/e2e.sh.
export BENCH_COMMON="$here/benches/common"
GEN="$here/benches/common/workloads.py"

# --- snapshots -------------------------------------------------------------------------

# Per workload and tool (key "WL:tool"): epoch snapshot times, peak RSS, repo.
declare -A TIMES PEAK REPO_BYTES RESTORE_T RESTORE_RSS RESTORE_ALL NSNAP
BEST_NEW=""      # snap new_raw_bytes of every best.pt commit
BEST_EPOCHS=""

init_repos() {  # $1 = workload dir
    local d=$1
    mkdir -p "$d/snapinit" "$d/zips" "$d/restore"
    export SNAP_REPO="$d/snap.repo"
    # init from a scratch directory: `snap init --repo` writes snap.toml there,
    # and the workspace must not see it.
    if uses snap; then "${IN_DIR[@]}" "$d/snapinit" "$SNAP" init --repo "$SNAP_REPO" >/dev/null; rm -rf "$d/snapinit"; fi
    if uses restic; then restic -r "$d/restic.repo" init --repository-version 2 -q >/dev/null; fi
    if uses borg; then borg init --encryption=none "$d/borg.repo" >/dev/null 2>&1; fi
}

# snapshot WL KIND(epoch|best) EPOCH VAL_LOSS TOOL...
snapshot() {
    local wl=$1 kind=$2 ep=$3 vl=$4 tool
    shift 4
    local d="$WORK/$wl" ws="$WORK/$wl/ws" name
    name=$(printf '%s%02d' "$kind" "$ep")
    for tool in "$@"; do
        WARM=("$ws")
        case $tool in
        snap)
            timed "${IN_DIR[@]}" "$ws" "$SNAP" commit --json --session "$wl" --epoch "$ep" \
                --metric "val_loss=$vl" -m "$name" >"$d/commit.json"
            local nb
            nb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["new_raw_bytes"])' "$d/commit.json")
            if [ "$kind" = best ]; then BEST_NEW="$BEST_NEW $nb"; BEST_EPOCHS="$BEST_EPOCHS $ep"; fi
            say "    snap   $name  $T s  RSS $((RSS / 1024)) MiB  new_raw_bytes $nb" ;;
        restic)
            timed restic -r "$d/restic.repo" backup --compression auto -q --host bench "$ws" >/dev/null
            say "    restic $name  $T s  RSS $((RSS / 1024)) MiB" ;;
        borg)
            timed "${IN_DIR[@]}" "$ws" borg create --compression zstd,3 "$d/borg.repo::$name" . >/dev/null
            say "    borg   $name  $T s  RSS $((RSS / 1024)) MiB" ;;
        zip)
            timed "${IN_DIR[@]}" "$ws" zip -r -q "$d/zips/epoch_$(printf %02d "$ep").zip" .
            say "    zip    $name  $T s  RSS $((RSS / 1024)) MiB" ;;
        esac
        # The median is over the epoch snapshots (zip: its one archive per epoch).
        if [ "$kind" = epoch ] || [ "$tool" = zip ]; then TIMES[$wl:$tool]="${TIMES[$wl:$tool]:-} $T"; fi
        PEAK[$wl:$tool]=$(max "${PEAK[$wl:$tool]:-}" "$RSS")
        NSNAP[$wl:$tool]=$((${NSNAP[$wl:$tool]:-0} + 1))
        LAST[$tool]=$name
    done
}
declare -A LAST

# Rotate the order of the tools every epoch: on a VM the cost of a step drifts
# with what ran just before it.
order() {  # $1 = epoch, rest = tools
    local e=$1
    shift
    local a=("$@") n=$# i
    for ((i = 0; i < n; i++)); do printf '%s ' "${a[$(((i + e) % n))]}"; done
}

restore_all() {  # $1 = workload
    local wl=$1 d="$WORK/$1" tool dir src round
    declare -A rtimes=()
    # The reference for "as fast as writing the files out": tar -xf of an
    # uncompressed tar of the same tree.
    (cd "$d/ws" && tar -cf "$d/ws.tar" .)
    # RESTORES rounds, the tools (and tar) in a rotated order each round;
    # the median is kept (one restore swings by up to 2x on this VM).
    for ((round = 0; round < RESTORES; round++)); do
        for tool in $(order "$round" "${RUN[@]}" tar); do
            dir="$d/restore/$tool"
            mkdir -p "$dir"
            src="$dir"
            case $tool in
            snap)
                WARM=("$SNAP_REPO"); timed "${IN_DIR[@]}" "$d/ws" "$SNAP" restore latest --target "$dir" >/dev/null ;;
            restic)
                WARM=("$d/restic.repo"); timed restic -r "$d/restic.repo" restore latest --target "$dir" -q >/dev/null
                src="$dir$d/ws" ;;
            borg)
                WARM=("$d/borg.repo"); timed "${IN_DIR[@]}" "$dir" borg extract "$d/borg.repo::${LAST[borg]}" ;;
            zip)
                local last
                last=$(find "$d/zips" -name '*.zip' | sort | tail -n 1)
                WARM=("$last"); timed "${IN_DIR[@]}" "$dir" unzip -q "$last" ;;
            tar)
                WARM=("$d/ws.tar"); timed tar -xf "$d/ws.tar" -C "$dir" ;;
            esac
            rtimes[$tool]="${rtimes[$tool]:-} $T"
            RESTORE_RSS[$wl:$tool]=$(max "${RESTORE_RSS[$wl:$tool]:-}" "$RSS")
            say "    restore $tool  $T s  RSS $((RSS / 1024)) MiB"
            diff -r "$d/ws" "$src" >/dev/null || { say "error: $tool restore of $wl differs from the workspace"; exit 1; }
            rm -rf "$dir"
        done
    done
    for tool in "${RUN[@]}" tar; do
        RESTORE_T[$wl:$tool]=$(median <<<"${rtimes[$tool]}")
        RESTORE_ALL[$wl:$tool]="${rtimes[$tool]# }"
    done
    rm -f "$d/ws.tar"
    for tool in "${RUN[@]}"; do
        case $tool in
        snap) REPO_BYTES[$wl:$tool]=$(du -sb "$SNAP_REPO" | cut -f1) ;;
        restic) REPO_BYTES[$wl:$tool]=$(du -sb "$d/restic.repo" | cut -f1) ;;
        borg) REPO_BYTES[$wl:$tool]=$(du -sb "$d/borg.repo" | cut -f1) ;;
        zip) REPO_BYTES[$wl:$tool]=$(du -sb "$d/zips" | cut -f1) ;;
        esac
    done
}

declare -A ZST_ONE CKPT_BYTES WS_BYTES

run_full() {
    local wl=full d="$WORK/full" ws="$WORK/full/ws" e vl best="" tools
    mkdir -p "$ws"
    init_repos "$d"
    say "workload full: ${MODEL_MB} MiB checkpoint, $EPOCHS epochs, a new file per epoch"
    for e in $(seq 1 "$EPOCHS"); do
        vl=$(python3 "$GEN" full "$ws" "$e" 1 $((MODEL_MB * 1048576)))
        read -r -a tools <<<"$(order "$e" "${RUN[@]}")"
        local improved=0
        if [ -z "$best" ] || awk -v a="$vl" -v b="$best" 'BEGIN { exit !(a < b) }'; then improved=1; best=$vl; fi
        say "  epoch $e val_loss $vl$([ $improved = 1 ] && echo ' (best)')"
        if [ $improved = 1 ]; then
            # zip takes its one archive of the epoch after the best.pt copy.
            snapshot $wl epoch "$e" "$vl" $(printf '%s\n' "${tools[@]}" | grep -vx zip || true)
            cp "$ws/models/epoch_$(printf %02d "$e").safetensors" "$ws/best.pt"
            snapshot $wl best "$e" "$vl" "${tools[@]}"
        else
            snapshot $wl epoch "$e" "$vl" "${tools[@]}"
        fi
    done
    local ck="$ws/models/epoch_$(printf %02d "$EPOCHS").safetensors"
    CKPT_BYTES[$wl]=$(stat -c %s "$ck")
    ZST_ONE[$wl]=$(zstd -3 -q -c "$ck" | wc -c)
    WS_BYTES[$wl]=$(du -sb "$ws" | cut -f1)
    restore_all $wl
}

run_frozen() {
    local wl=frozen d="$WORK/frozen" ws="$WORK/frozen/ws" e vl tools
    mkdir -p "$ws"
    init_repos "$d"
    say "workload frozen: ${FT_MB} MiB frozen backbone + ${HEAD_KB} KiB head, $FT_EPOCHS epochs, one checkpoint overwritten"
    for e in $(seq 1 "$FT_EPOCHS"); do
        vl=$(python3 "$GEN" frozen "$ws" "$e" 2 $((FT_MB * 1048576)) $((HEAD_KB * 1024)))
        say "  epoch $e val_loss $vl"
        read -r -a tools <<<"$(order "$e" "${RUN[@]}")"
        snapshot $wl epoch "$e" "$vl" "${tools[@]}"
    done
    local ck="$ws/models/checkpoint.safetensors"
    CKPT_BYTES[$wl]=$(stat -c %s "$ck")
    ZST_ONE[$wl]=$(zstd -3 -q -c "$ck" | wc -c)
    WS_BYTES[$wl]=$(du -sb "$ws" | cut -f1)
    restore_all $wl
}

# The torch workloads: each epoch trains for real (benches/common/train.py),
# outside the timed steps; STATE (the run's model and optimizer) lives
# outside the workspace.
run_torch() {  # $1 = workload (hf|train)
    local wl=$1 d="$WORK/$1" ws="$WORK/$1/ws" e vl tools args last
    mkdir -p "$ws"
    init_repos "$d"
    local epochs=$HF_EPOCHS
    if [ "$wl" = hf ]; then
        args=(hf "$ws" "$d/state.pt")
        say "workload hf: ${HF_MB} MiB bf16 backbone + ${HF_HEAD_MB} MiB fp32 head, $HF_EPOCHS saves, a new folder per save"
    else
        epochs=$TRAIN_EPOCHS
        args=(full "$ws" "$d/state.pt")
        say "workload train: ~${TRAIN_MB} MiB model + optimizer state, $TRAIN_EPOCHS epochs, a new .pt per epoch"
    fi
    for e in $(seq 1 "$epochs"); do
        if [ "$wl" = hf ]; then
            vl=$("$TORCH_PYTHON" "$here/benches/common/train.py" "${args[@]}" "$e" "$HF_MB" "$HF_HEAD_MB")
        else
            vl=$("$TORCH_PYTHON" "$here/benches/common/train.py" "${args[@]}" "$e" "$TRAIN_MB")
        fi
        say "  epoch $e loss $vl"
        read -r -a tools <<<"$(order "$e" "${RUN[@]}")"
        snapshot "$wl" epoch "$e" "$vl" "${tools[@]}"
    done
    if [ "$wl" = hf ]; then
        last=$(find "$ws/checkpoints" -name model.safetensors | sort -V | tail -n 1)
    else
        last=$(find "$ws/checkpoints" -name '*.pt' | sort -V | tail -n 1)
    fi
    CKPT_BYTES[$wl]=$(stat -c %s "$last")
    ZST_ONE[$wl]=$(zstd -3 -q -c "$last" | wc -c)
    WS_BYTES[$wl]=$(du -sb "$ws" | cut -f1)
    restore_all "$wl"
}

RAN=()
for wl in $WORKLOADS; do
    case $wl in
    full) run_full; RAN+=(full) ;;
    frozen) run_frozen; RAN+=(frozen) ;;
    hf | train)
        if "$TORCH_PYTHON" -c 'import torch, safetensors.torch' 2>/dev/null; then
            run_torch "$wl"; RAN+=("$wl")
        else
            say "note: workload $wl skipped: $TORCH_PYTHON cannot import torch and safetensors (set TORCH_PYTHON)"
            SKIPPED_WL="${SKIPPED_WL:-} $wl"
        fi ;;
    *) say "error: unknown workload $wl (full, frozen, hf, train)"; exit 2 ;;
    esac
done

# --- report -------------------------------------------------------------------------

# ratio WL A B: repo or time of snap over another tool, "" if either is missing.
ratio_of() {  # $1 = kind (repo|time|restore) $2 = workload $3 = other tool
    local a b
    case $1 in
    repo) a=${REPO_BYTES[$2:snap]:-} b=${REPO_BYTES[$2:$3]:-} ;;
    time) a=$(echo "${TIMES[$2:snap]:-}" | median) b=$(echo "${TIMES[$2:$3]:-}" | median) ;;
    restore) a=${RESTORE_T[$2:snap]:-} b=${RESTORE_T[$2:$3]:-} ;;
    esac
    if [ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0.000 ]; then calc4 "$a / $b"; fi
}
# ran WL: the workload ran.
ran() { case " ${RAN[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

echo
echo "snap compare, workloads: ${RAN[*]}"
ran full && echo "full = ${MODEL_MB} MiB checkpoint x $EPOCHS epochs (new file per epoch, best.pt copies)"
ran frozen && echo "frozen = ${FT_MB} MiB backbone + ${HEAD_KB} KiB head x $FT_EPOCHS epochs (one file, overwritten)"
echo "machine: $(nproc) cores; caches warm (inputs read just before every timed step); tool order rotated per epoch"
rev=$(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo '?')
if [ -n "$(cd "$here" && git status --porcelain 2>/dev/null)" ]; then rev="$rev + uncommitted changes"; fi
echo "snap: $SNAP ($rev)"
vers=""
uses restic && vers="$vers $(restic version | cut -d' ' -f1-2);"
uses borg && vers="$vers $(borg --version);"
uses zip && vers="$vers $(zip -v | grep -o 'Zip [0-9.]*' | head -n 1);"
echo "versions:$vers zstd $(zstd -V | grep -o 'v[0-9.]*')"
[ ${#MISSING[@]} -gt 0 ] && echo "missing, skipped: ${MISSING[*]}"
[ -n "${SKIPPED_WL:-}" ] && echo "workloads skipped (no torch):${SKIPPED_WL}"
ran hf && echo "hf = ${HF_MB} MiB bf16 backbone + ${HF_HEAD_MB} MiB head x $HF_EPOCHS saves (a new folder per save, 2 kept)"
ran train && echo "train = ~${TRAIN_MB} MiB model + optimizer x $TRAIN_EPOCHS epochs (a new .pt per epoch)"
for wl in "${RAN[@]}"; do
    echo
    echo "$wl: workspace at the end $(mib "${WS_BYTES[$wl]}") MiB; one checkpoint $(mib "${CKPT_BYTES[$wl]}") MiB," \
        "under zstd -3: $(mib "${ZST_ONE[$wl]}") MiB"
    printf '  %-7s %6s %14s %12s %14s %12s %12s\n' tool snaps "repo MiB" "x zstd-3" "median s/snap" "restore s" "peak RSS MiB"
    for tool in "${RUN[@]}"; do
        k=$wl:$tool
        printf '  %-7s %6s %14s %12s %14s %12s %12s\n' "$tool" "${NSNAP[$k]}" "$(mib "${REPO_BYTES[$k]}")" \
            "$(calc "${REPO_BYTES[$k]} / ${ZST_ONE[$wl]}")" "$(echo "${TIMES[$k]}" | median)" \
            "${RESTORE_T[$k]}" "$((${PEAK[$k]} / 1024))"
    done
    printf '  %-7s %6s %14s %12s %14s %12s %12s\n' "tar -xf" "" "" "" "" "${RESTORE_T[$wl:tar]}" ""
    if uses snap; then
        for other in borg restic; do
            uses "$other" || continue
            printf '  snap / %-7s repo %sx, median snapshot time %sx, restore %sx\n' "$other" \
                "$(ratio_of repo "$wl" "$other")" "$(ratio_of time "$wl" "$other")" "$(ratio_of restore "$wl" "$other")"
        done
        printf '  snap / tar -xf: restore %sx\n' "$(ratio_of restore "$wl" tar)"
    fi
done
echo "  (median over epoch snapshots; the full run's extra best.pt snapshots count in repo size and RSS;"
echo "   zip: one archive per epoch, repo = all archives; restore = the last snapshot, checked with diff -r,"
echo "   median of $RESTORES restores in rotated order)"
for k in "${!RESTORE_ALL[@]}"; do echo "  restores $k: ${RESTORE_ALL[$k]}"; done | sort
if uses snap && [ -n "$BEST_NEW" ]; then
    echo "snap new_raw_bytes of the best.pt commits (epochs$BEST_EPOCHS):$BEST_NEW"
fi

echo
row() { printf '%-58s %22s %10s  %s\n' "$@"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
target() {  # name ratio limit
    if [ -z "$2" ]; then row "$1" "skipped" "$3" "-"; return; fi
    row "$1" "${2}x" "$3" "$(verdict "$2 $3")"
}
row "target" "measured" "limit" "result"
if uses snap; then
    if ran frozen; then
        target "frozen: snap repo / one zstd -3 checkpoint" "$(calc4 "${REPO_BYTES[frozen:snap]} / ${ZST_ONE[frozen]}")" "<= 1.15"
        target "frozen: snap repo / restic repo" "$(ratio_of repo frozen restic)" "< 1"
        target "frozen: snap repo / borg repo" "$(ratio_of repo frozen borg)" "< 1"
    fi
    ran full && target "full: snap repo / borg repo" "$(ratio_of repo full borg)" "<= 0.9"
    # issue 15's targets for the layouts of real training
    ran hf && target "hf: snap repo / borg repo" "$(ratio_of repo hf borg)" "<= 0.7"
    ran train && target "train: snap repo / borg repo" "$(ratio_of repo train borg)" "<= 0.65"
    for wl in "${RAN[@]}"; do
        target "$wl: snap median snapshot time / restic's" "$(ratio_of time "$wl" restic)" "<= 0.5"
        case $wl in
        hf | train) target "$wl: snap median snapshot time / borg's" "$(ratio_of time "$wl" borg)" "<= 0.4" ;;
        *) target "$wl: snap median snapshot time / borg's" "$(ratio_of time "$wl" borg)" "<= 0.5" ;;
        esac
        case $wl in
        hf | train) target "$wl: snap restore time / restic's" "$(ratio_of restore "$wl" restic)" "<= 0.35" ;;
        *) target "$wl: snap restore time / restic's" "$(ratio_of restore "$wl" restic)" "<= 0.5" ;;
        esac
        target "$wl: snap restore time / tar -xf" "$(ratio_of restore "$wl" tar)" "<= 1.0"
    done
    if [ -n "$BEST_NEW" ]; then
        worst=$(echo "$BEST_NEW" | tr ' ' '\n' | grep . | sort -n | tail -n 1)
        row "full: best.pt copy, snap new_raw_bytes (max)" "$worst B" "== 0" "$(verdict "$worst == 0")"
    fi
fi
exit 0
