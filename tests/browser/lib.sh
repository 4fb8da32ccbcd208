# Shell helpers shared by tests/browser/run.sh and benches/ui.sh (sourced).

# SNAP_BIN, or the debug binary of this checkout's target dir.
snap_bin() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    local bin="${SNAP_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/snap}"
    [ -x "$bin" ] || { echo "no snap binary at $bin: run cargo build, or set SNAP_BIN" >&2; return 1; }
    echo "$bin"
}

# start_ui WORKSPACE LOG: starts `snap ui --addr 127.0.0.1:0` in WORKSPACE,
# its stdout and stderr to LOG; sets UI_PID and UI_URL (read from its first
# line, "snap ui: serving http://ADDR/ ..."). Stop it with stop_ui.
start_ui() {
    local ws="$1" log="$2"
    (cd "$ws" && exec "$SNAP" ui --addr 127.0.0.1:0) >"$log" 2>&1 &
    UI_PID=$!
    UI_URL=""
    for _ in $(seq 1 100); do
        UI_URL="$(sed -n 's#^snap ui: serving \(http://[^ ]*\).*#\1#p' "$log" | head -1)"
        [ -n "$UI_URL" ] && return 0
        kill -0 "$UI_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "snap ui did not print its address:" >&2
    cat "$log" >&2
    return 1
}

# Stops the server start_ui started (by its pid), if it still runs.
stop_ui() {
    if [ -n "${UI_PID:-}" ] && kill -0 "$UI_PID" 2>/dev/null; then
        kill -INT "$UI_PID" 2>/dev/null || true
        wait "$UI_PID" 2>/dev/null || true
    fi
    UI_PID=""
}
