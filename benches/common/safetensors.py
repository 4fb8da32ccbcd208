"""Rewrites a safetensors file tensor by tensor, for benches/common/model.sh
(bf16 rounding) and benches/delta.sh (a later epoch). Standard library only.
"""

import json
import struct


def rewrite(src, dst, change):
    """Copies safetensors `src` to `dst`, passing every tensor through
    `change(name, dtype, raw) -> (dtype, raw)`. Tensors keep their order and
    shape; offsets follow the new sizes; the header is padded to 8 bytes."""
    b = open(src, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    base = 8 + n
    out, blobs, off = {}, [], 0
    for name, v in header.items():
        if name == "__metadata__":
            out[name] = v
            continue
        s, e = v["data_offsets"]
        dtype, raw = change(name, v["dtype"], b[base + s:base + e])
        out[name] = {"dtype": dtype, "shape": v["shape"], "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(out, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for x in blobs:
            f.write(x)
