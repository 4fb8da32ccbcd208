#!/usr/bin/env bash
# snap ui on a repository of 1,000 snapshots: the target is that the page
# renders (sessions table and metric charts drawn) in under a second.
#
#   benches/ui.sh                         10 sessions x 100 epochs
#   SESSIONS=20 EPOCHS=50 ROUNDS=9 benches/ui.sh
#
# Environment:
#   SESSIONS=10 EPOCHS=100   the repository: SESSIONS x EPOCHS snapshots, each
#                            a `snap commit --session --epoch --metric` of a
#                            workspace whose state.yaml and train.log change
#   ROUNDS=5                 timed rounds of each measurement (median kept)
#   SNAP                     a prebuilt snap binary (default: cargo build --release)
#   KEEP=DIR                 build the repository in DIR and keep it (reused
#                            when it already holds SESSIONS x EPOCHS snapshots)
#
# Measures (median of ROUNDS, after one warm-up request each):
#   GET /api/sessions, /api/snapshots, /api/metrics   curl's time_total, and
#                                                     the answer's size
#   page render   headless Chromium (tests/browser/load.cjs, the test's
#                 flags), a fresh browser context per round: from the
#                 navigation's start to the table and every chart drawn
# Prints a table with the target and PASS/FAIL. Exits 0 unless a step failed.
set -euo pipefail

SESSIONS=${SESSIONS:-10}
EPOCHS=${EPOCHS:-100}
ROUNDS=${ROUNDS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tests/browser/lib.sh"

say() { printf '%s\n' "$*" >&2; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

command -v curl >/dev/null || { say "error: curl is missing"; exit 2; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { say "error: no /usr/bin/chromium (apt-get install -y chromium)"; exit 2; }
if [ -z "${SNAP:-}" ]; then
    say "building snap (cargo build --release)"
    (cd "$here" && cargo build --release --quiet --bin snap)
    SNAP="${CARGO_TARGET_DIR:-$here/target}/release/snap"
fi
SNAP=$(cd "$(dirname "$SNAP")" && pwd)/$(basename "$SNAP")
NODE_PATH="$("$here/tests/browser/deps.sh")"
export NODE_PATH
unset SNAP_SESSION SNAP_REPO

WORK=$(mktemp -d "${TMPDIR:-/tmp}/snap-ui-bench.XXXXXX")
UI_PID=""
cleanup() {
    stop_ui
    rm -rf "$WORK"
}
trap cleanup EXIT

ws="${KEEP:-$WORK/ws}"
want=$((SESSIONS * EPOCHS))
have=0
[ -d "$ws/.snap" ] && have=$(cd "$ws" && "$SNAP" log --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
if [ "$have" != "$want" ]; then
    rm -rf "$ws"
    mkdir -p "$ws"
    (cd "$ws" && "$SNAP" init >/dev/null)
    say "building $want snapshots ($SESSIONS sessions x $EPOCHS epochs)"
    t0=$(date +%s.%N)
    for s in $(seq 1 "$SESSIONS"); do
        for e in $(seq 1 "$EPOCHS"); do
            loss=$(awk "BEGIN { printf \"%.6f\", 2.0 / ($e + $s) + ($e * 7 % 13) / 1000 }")
            acc=$(awk "BEGIN { printf \"%.6f\", 1 - $loss / 3 }")
            printf 'train:\n  session: %d\n  epoch: %d\n  lr: 0.00%d\n' "$s" "$e" "$s" >"$ws/state.yaml"
            echo "session $s epoch $e loss $loss" >>"$ws/train.log"
            (cd "$ws" && "$SNAP" commit --session "run-$s" --epoch "$e" \
                --metric "loss=$loss" --metric "acc=$acc" >/dev/null)
        done
        say "  session $s of $SESSIONS done"
    done
    say "built in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s"
fi
have=$(cd "$ws" && "$SNAP" log --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
[ "$have" = "$want" ] || { say "error: the repository holds $have snapshots, not $want"; exit 1; }

start_ui "$ws" "$WORK/ui.log"
say "snap ui (pid $UI_PID) at $UI_URL"

results=()
for route in sessions snapshots metrics; do
    curl -sf -o /dev/null "${UI_URL}api/$route"
    times=""
    size=0
    for _ in $(seq 1 "$ROUNDS"); do
        read -r t size < <(curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "${UI_URL}api/$route")
        times="$times $(awk "BEGIN { print $t * 1000 }")"
    done
    results+=("GET /api/$route|$(echo "$times" | median) ms|$(awk "BEGIN { printf \"%.0f KiB\", $size / 1024 }")|")
done

page=$(node "$here/tests/browser/load.cjs" "$UI_URL" "$ROUNDS" "$SESSIONS")
wall=$(echo "$page" | python3 -c 'import json, sys; print(" ".join(map(str, json.load(sys.stdin)["wall_ms"])))')
view=$(echo "$page" | python3 -c 'import json, sys; print(" ".join(map(str, json.load(sys.stdin)["page_ms"])))')
charts=$(echo "$page" | python3 -c 'import json, sys; print(json.load(sys.stdin)["charts"])')
wall_med=$(echo "$wall" | median)
verdict=$(awk "BEGIN { print ($wall_med < 1000) ? \"PASS\" : \"FAIL\" }")
results+=("page render (navigation to drawn)|$wall_med ms|$SESSIONS rows, $charts charts x $SESSIONS lines|$verdict (< 1000 ms)")
results+=("  of which the view (API calls + drawing)|$(echo "$view" | median) ms||")

echo
echo "snap ui, $want snapshots ($SESSIONS sessions x $EPOCHS epochs), median of $ROUNDS"
printf '%-42s %12s  %-28s %s\n' "measurement" "time" "size" "target"
for r in "${results[@]}"; do
    IFS='|' read -r what t size target <<<"$r"
    printf '%-42s %12s  %-28s %s\n' "$what" "$t" "$size" "$target"
done
echo "(page rounds: $wall ms)"
