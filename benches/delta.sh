#!/usr/bin/env bash
# Float deltas on a real model: all-MiniLM-L6-v2 (benches/common/model.sh)
# as "epoch 1", and "epoch 2" = the same weights after a seeded random walk
# (every fp32 value moves by N(0, SIGMA), SIGMA absolute, as many small
# optimizer steps do), for several SIGMA, in fp32 and rounded to bf16.
# For each, from the same run:
#   alone  snap's new stored bytes / raw for epoch 2 committed into a fresh
#          repository (the float codec alone);
#   delta  the same for epoch 2 committed as models/epoch_02.safetensors
#          next to an already committed epoch_01 (coded as a float delta);
#   zstd   zstd -3 of epoch 2 / raw;
#   moved  the share of values whose sign or exponent changed;
#   commit / restore time of the delta repository over the fresh one's.
#
#   benches/delta.sh                   SIGMA in 1e-5 1e-4 1e-3 1e-2
#   SIGMAS="1e-4" benches/delta.sh
#   SERIES=8 STEP=1e-4 benches/delta.sh
#                                      then also a run of SERIES fp32 epochs,
#                                      each the previous plus N(0, STEP), every
#                                      epoch a new file committed beside the
#                                      others: stored / raw per epoch (deltas
#                                      are one level deep, so later epochs code
#                                      against epoch 1 and pay for the drift)
# Needs python3 with numpy (pip install numpy), zstd, PyPI once for the model.

set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/common/model.sh
. "$here/benches/common/model.sh"
SIGMAS=${SIGMAS:-"1e-5 1e-4 1e-3 1e-2"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# epoch SRC DST SIGMA BF16(0|1) [SEED]: writes the moved model, prints the
# share of values whose sign or exponent changed.
epoch() {
    BENCH_COMMON="$here/benches/common" python3 - "$@" <<'PY'
import os, sys
import numpy as np
sys.dont_write_bytecode = True
sys.path.insert(0, os.environ["BENCH_COMMON"])
from safetensors import rewrite

src, dst, sigma, bf16 = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
rng = np.random.default_rng(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
moved = total = 0

def to_bf16(a):
    u = a.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)

def step(name, dtype, raw):
    global moved, total
    if dtype != "F32":
        return dtype, raw
    w = np.frombuffer(raw, dtype=np.float32)
    w2 = (w + rng.normal(0, sigma, w.shape).astype(np.float32)) if sigma > 0 else w.copy()
    if bf16:
        old, new = to_bf16(w), to_bf16(w2)
        moved += int(np.count_nonzero((old >> 7) != (new >> 7)))
        total += old.size
        return "BF16", new.tobytes()
    old, new = w.view(np.uint32), w2.view(np.uint32)
    moved += int(np.count_nonzero((old >> 23) != (new >> 23)))
    total += old.size
    return dtype, w2.tobytes()

rewrite(src, dst, step)
print(f"{moved / max(total, 1):.4f}")
PY
}

now() { date +%s.%N; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"summary\"][\"$1\"])"; }
commit_new() {  # DIR -> "new_stored new_raw seconds"
    local t0 out
    t0=$(now)
    out=$(cd "$1" && "$snap" commit --json)
    echo "$(field new_stored_bytes <<<"$out") $(field new_raw_bytes <<<"$out") $(awk "BEGIN{print $(now) - $t0}")"
}
restore_time() {  # DIR -> seconds to restore latest into a fresh directory
    local t0
    rm -rf "$work/out"
    t0=$(now)
    (cd "$1" && "$snap" restore latest --target "$work/out" >/dev/null)
    awk "BEGIN{print $(now) - $t0}"
}

printf '%-5s %7s %7s %7s %7s %7s %9s %9s\n' dtype sigma alone delta zstd-3 moved commit_x restore_x
for dtype in fp32 bf16; do
    e1=$model bfl=0
    if [[ $dtype == bf16 ]]; then e1=$bf16 bfl=1; fi
    for sigma in $SIGMAS; do
        moved=$(epoch "$model" "$work/e2.safetensors" "$sigma" "$bfl")
        # Fresh repository: epoch 2 alone.
        rm -rf "$work/a" "$work/d" && mkdir -p "$work/a/models" "$work/d/models"
        cp "$work/e2.safetensors" "$work/a/models/epoch_02.safetensors"
        (cd "$work/a" && "$snap" init >/dev/null)
        read -r a_stored a_raw a_time < <(commit_new "$work/a")
        # Delta repository: epoch 1 first, then epoch 2 beside it.
        cp "$e1" "$work/d/models/epoch_01.safetensors"
        (cd "$work/d" && "$snap" init >/dev/null && "$snap" commit >/dev/null)
        cp "$work/e2.safetensors" "$work/d/models/epoch_02.safetensors"
        read -r d_stored d_raw d_time < <(commit_new "$work/d")
        rm -f "$work/d/models/epoch_01.safetensors"
        (cd "$work/d" && "$snap" commit >/dev/null)
        a_rest=$(restore_time "$work/a")
        cmp "$work/out/models/epoch_02.safetensors" "$work/e2.safetensors"
        d_rest=$(restore_time "$work/d")
        cmp "$work/out/models/epoch_02.safetensors" "$work/e2.safetensors"
        z=$(zstd -3 -T1 -c "$work/e2.safetensors" | wc -c)
        printf '%-5s %7s %7.4f %7.4f %7.4f %7.4f %9.3f %9.3f\n' "$dtype" "$sigma" \
            "$(awk "BEGIN{print $a_stored/$a_raw}")" "$(awk "BEGIN{print $d_stored/$d_raw}")" \
            "$(awk "BEGIN{print $z/$a_raw}")" "$moved" \
            "$(awk "BEGIN{print $d_time/$a_time}")" "$(awk "BEGIN{print $d_rest/$a_rest}")"
    done
done

SERIES=${SERIES:-0}
STEP=${STEP:-1e-4}
if ((SERIES > 1)); then
    echo
    echo "series: fp32, each epoch = the previous + N(0, $STEP), a new file per epoch"
    printf '%-6s %10s %8s\n' epoch drift stored
    rm -rf "$work/s" && mkdir -p "$work/s/models"
    cp "$model" "$work/s/models/epoch_01.safetensors"
    (cd "$work/s" && "$snap" init >/dev/null)
    read -r s_stored s_raw _ < <(commit_new "$work/s")
    printf '%-6s %10s %8.4f\n' 1 0 "$(awk "BEGIN{print $s_stored/$s_raw}")"
    for ((e = 2; e <= SERIES; e++)); do
        prev=$(printf '%s/s/models/epoch_%02d.safetensors' "$work" $((e - 1)))
        next=$(printf '%s/s/models/epoch_%02d.safetensors' "$work" "$e")
        epoch "$prev" "$next" "$STEP" 0 "$e" >/dev/null
        read -r s_stored s_raw _ < <(commit_new "$work/s")
        printf '%-6s %10s %8.4f\n' "$e" "$(awk "BEGIN{printf \"%.2e\", $STEP * sqrt($e - 1)}")" \
            "$(awk "BEGIN{print $s_stored/$s_raw}")"
    done
    restore_time "$work/s" >/dev/null
    cmp "$work/out/models/$(basename "$next")" "$next"
fi
