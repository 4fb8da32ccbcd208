#!/usr/bin/env bash
# The end-to-end test of `snap ui` in headless Chromium.
#
# Builds nothing: uses SNAP_BIN (default: the target dir's debug/snap).
# Makes a repository with three real `snap run` sessions of train.py (a
# seeded script: SNAP lines, a safetensors checkpoint, state.yaml and train.log per
# epoch), starts `snap ui --addr 127.0.0.1:0`, and runs ui_test.cjs in
# Debian's /usr/bin/chromium (playwright-core from deps.sh's cache).
# Screenshots go to target/browser/*.png (SNAP_BROWSER_SHOTS to change).
# snap ui and Chromium are stopped by pid/handle however this ends.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$here/lib.sh"
SNAP="$(snap_bin)"
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "no ${CHROMIUM:-/usr/bin/chromium}: apt-get install -y chromium" >&2; exit 1; }
NODE_PATH="$("$here/deps.sh")"
export NODE_PATH

shots="${SNAP_BROWSER_SHOTS:-${CARGO_TARGET_DIR:-$root/target}/browser}"
mkdir -p "$shots"
rm -f "$shots"/*.png
work="$(mktemp -d "${TMPDIR:-/tmp}/snap-browser.XXXXXX")"
UI_PID=""
cleanup() {
    stop_ui
    rm -rf "$work"
}
trap cleanup EXIT

ws="$work/ws"
mkdir -p "$ws"
cp "$here/train.py" "$ws/"
(cd "$ws" && "$SNAP" init >/dev/null)
sessions=(baseline lr-3e-3 seed-3)
seeds=(1 2 3)
lrs=(0.001 0.003 0.001)
for i in 0 1 2; do
    (cd "$ws" && "$SNAP" run --session "${sessions[$i]}" --best loss:min -- \
        python3 train.py --seed "${seeds[$i]}" --epochs 3 --lr "${lrs[$i]}") >"$work/run-$i.log" 2>&1 ||
        { cat "$work/run-$i.log"; echo "snap run ${sessions[$i]} failed" >&2; exit 1; }
done
echo "== repository: $("$SNAP" --repo "$ws/.snap" log --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') snapshots in ${#sessions[@]} sessions"

start_ui "$ws" "$work/ui.log"
echo "== snap ui (pid $UI_PID) at $UI_URL"
spec=$(printf '{"sessions": ["%s", "%s", "%s"], "file": "checkpoints/model.safetensors", "tensors": ["fc.bias", "fc.weight"], "changed_tensor": "fc.weight", "config": {"path": "state.yaml", "line": "train.epoch: 1 -> 2"}}' "${sessions[@]}")
status=0
node "$here/ui_test.cjs" "$UI_URL" "$shots" "$spec" || status=$?
if [ "$status" -ne 0 ]; then
    echo "== snap ui's output:"; cat "$work/ui.log"
fi
exit "$status"
