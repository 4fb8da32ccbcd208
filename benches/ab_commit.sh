#!/usr/bin/env bash
# A/B timing of a first commit with two snap binaries on the same data,
# alternated round by round, medians reported (the machine is shared).
#
#   A=/tmp/snap-before B=/tmp/snap-after benches/ab_commit.sh
#
# Environment:
#   A, B         the two binaries (required)
#   SIZE_MB=512  workspace size (tensor-like fp32 files, as benches/e2e.sh)
#   ROUNDS=5     alternated rounds
#   TMPDIR       where the data goes (needs ~2.5 x SIZE_MB free)
#
# Each round commits the workspace into a new repository twice per binary:
# once with every file's mtime "recent" (just touched: snap reads files
# modified in the last 45 s twice, see docs/commands.md) and once "old"
# (mtime an hour ago: read once).
set -euo pipefail
: "${A:?set A to a snap binary}" "${B:?set B to a snap binary}"
SIZE_MB=${SIZE_MB:-512}
ROUNDS=${ROUNDS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-ab.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }

export BENCH_COMMON="$here/benches/common"
mkdir -p "$WORK/ws"
python3 - "$WORK/ws" "$SIZE_MB" <<'PY'
import os, random, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.environ["BENCH_COMMON"])
from weights import weights
ws, size = sys.argv[1], int(sys.argv[2]) << 20
parts = [("model.bin", size // 2), ("optimizer.bin", size // 4),
         ("epoch_1.bin", size // 8), ("epoch_2.bin", size - size // 2 - size // 4 - size // 8)]
for seed, (name, n) in enumerate(parts, 1):
    rng = random.Random(seed)
    with open(os.path.join(ws, name), "wb") as f:
        left = n - n % 4
        while left > 0:
            k = min(4 << 20, left)
            f.write(weights(rng, k))
            left -= k
PY

# one BIN MTIME: seconds for init + commit of the workspace.
one() {
    local bin=$1 mtime=$2
    rm -rf "$WORK/ws/.snap"
    if [ "$mtime" = recent ]; then touch "$WORK/ws"/*.bin; else touch -d '1 hour ago' "$WORK/ws"/*.bin; fi
    cat "$WORK/ws"/*.bin >/dev/null # same page cache state for both
    local t0; t0=$(now)
    (cd "$WORK/ws" && "$bin" init >/dev/null && "$bin" commit >/dev/null)
    awk "BEGIN { printf \"%.3f\", $(now) - $t0 }"
}

declare -A times
for r in $(seq 1 "$ROUNDS"); do
    for mtime in recent old; do
        for side in A B; do
            bin=${!side}
            t=$(one "$bin" "$mtime")
            times[$side.$mtime]+="$t "
            printf 'round %d %-6s %s %ss\n' "$r" "$mtime" "$side" "$t" >&2
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }
printf '\n%-7s %10s %10s %8s   %s\n' mtime "A median" "B median" "B/A" "range A | B (s)"
for mtime in recent old; do
    a=$(median <<<"${times[A.$mtime]}"); b=$(median <<<"${times[B.$mtime]}")
    printf '%-7s %9.3fs %9.3fs %8.3f   %s | %s\n' "$mtime" "$a" "$b" "$(awk "BEGIN { print $b / $a }")" \
        "$(spread <<<"${times[A.$mtime]}")" "$(spread <<<"${times[B.$mtime]}")"
done
