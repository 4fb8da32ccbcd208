#!/usr/bin/env bash
# Concurrency soak: one repository, writers and readers at the same time for
# a few minutes, counting operations and failures of each kind; then every
# snapshot still listed must restore byte for byte and `check --read-data`
# must be clean.
#
#   benches/soak.sh                           3 minutes, release build
#   SOAK_SECONDS=60 SNAP=target/debug/snap benches/soak.sh
#
# Environment:
#   SNAP=PATH          the snap binary (default: cargo build --release)
#   SOAK_SECONDS=180   how long the workers run
#   GRACE=5s           prune's grace period (short, so that deletions happen
#                      during the soak and readers meet them)
#   SEED=1             seed of the workspace contents
#   TMPDIR             where the workspace, repository and restores go
#
# Workers (each a loop, all at once):
#   commit     change 1-3 files of a small workspace (8 files, 64 KiB - 1 MiB,
#              seeded), `snap commit` into a new session every 3 commits, and
#              record the workspace's sha256 manifest under the snapshot id
#   retention  `snap forget --keep-sessions 2`, then `snap prune --grace $GRACE`,
#              every 4th round `snap prune --delete-now`
#   restore    restore a random listed snapshot and compare it with its manifest
#   check      `snap check --read-data`
#   log        `snap log --json`
# A restore of a snapshot that retention forgot while it ran is counted apart
# (`restore-forgotten`): it is the expected answer, not a failure. Anything
# else that exits non-zero, and any restore that differs from its manifest,
# is a failure; the script exits 1 if there was one.

set -euo pipefail

SOAK_SECONDS=${SOAK_SECONDS:-180}
GRACE=${GRACE:-5s}
SEED=${SEED:-1}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${SNAP:-}" ]; then
    (cd "$here" && cargo build --release --quiet)
    SNAP="${CARGO_TARGET_DIR:-$here/target}/release/snap"
fi
SNAP=$(realpath "$SNAP")

work=$(mktemp -d "${TMPDIR:-/tmp}/snap-soak.XXXXXX")
trap 'rm -rf "$work"' EXIT
ws="$work/ws"
man="$work/manifests"
counts="$work/counts"
logs="$work/logs"
mkdir -p "$ws" "$man" "$counts" "$logs"
export SNAP_LOCK_WAIT=120

say() { printf '%s\n' "$*" >&2; }

# count KIND ok|fail|forgotten: one line per operation, summed at the end.
count() { echo "$2" >>"$counts/$1"; }

# gen SEED BYTES: deterministic bytes.
gen() {
    python3 -c 'import random, sys
r = random.Random(int(sys.argv[1]))
sys.stdout.buffer.write(r.randbytes(int(sys.argv[2])))' "$1" "$2"
}

manifest() { (cd "$1" && find . -path ./.snap -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }

deadline=$(($(date +%s) + SOAK_SECONDS))
running() { [ "$(date +%s)" -lt "$deadline" ]; }

cd "$ws"
"$SNAP" init >/dev/null
for i in 0 1 2 3 4 5 6 7; do gen $((SEED * 1000 + i)) $(((i + 1) * 131072)) >"f$i.bin"; done

committer() {
    local n=0 session=0 id
    while running; do
        n=$((n + 1))
        [ $((n % 3)) -eq 1 ] && session=$((session + 1))
        for _ in $(seq $((RANDOM % 3 + 1))); do
            local i=$((RANDOM % 8))
            gen $((SEED * 100000 + n * 10 + i)) $(((RANDOM % 16 + 1) * 65536)) >"f$i.bin"
        done
        if out=$("$SNAP" commit --session "s$session" --json 2>>"$logs/commit"); then
            id=$(jq -r .id <<<"$out")
            # Whole or not at all: a restorer may look at it any moment.
            manifest "$ws" >"$man/.tmp"
            mv "$man/.tmp" "$man/$id"
            count commit ok
        else
            count commit fail
        fi
    done
}

# A snap from before two-phase deletion has neither --grace nor --delete-now
# (to measure the before side): its prune deletes at once.
two_phase=1
"$SNAP" prune --help | grep -q -- --grace || two_phase=0

retention() {
    local n=0
    while running; do
        n=$((n + 1))
        if "$SNAP" forget --keep-sessions 2 >/dev/null 2>>"$logs/forget"; then
            count forget ok
        else
            count forget fail
        fi
        local args=(prune --grace "$GRACE")
        [ $((n % 4)) -eq 0 ] && args=(prune --delete-now)
        [ "$two_phase" -eq 1 ] || args=(prune)
        if "$SNAP" "${args[@]}" >/dev/null 2>>"$logs/prune"; then
            count prune ok
        else
            count prune fail
        fi
        sleep 0.5
    done
}

restorer() {
    local k=0 id dir
    while running; do
        k=$((k + 1))
        id=$("$SNAP" log --json 2>/dev/null | jq -r '.[].id' | shuf -n 1 || true)
        [ -n "$id" ] && [ -f "$man/$id" ] || { sleep 0.2; continue; }
        dir="$work/restore-$k"
        if "$SNAP" restore "$id" --target "$dir" >/dev/null 2>"$work/restore.err"; then
            if diff -q <(manifest "$dir") "$man/$id" >/dev/null; then
                count restore ok
            else
                count restore fail
                say "restore $id differs from its manifest"
            fi
        elif ! "$SNAP" log --json 2>/dev/null | jq -e --arg id "$id" 'any(.[]; .id == $id)' >/dev/null; then
            count restore-forgotten ok
        else
            count restore fail
            cat "$work/restore.err" >>"$logs/restore"
        fi
        rm -rf "$dir"
    done
}

checker() {
    while running; do
        if "$SNAP" check --read-data >>"$logs/check.out" 2>>"$logs/check"; then
            count check ok
        else
            count check fail
        fi
    done
}

logger() {
    while running; do
        if "$SNAP" log --json >/dev/null 2>>"$logs/log"; then
            count log ok
        else
            count log fail
        fi
        sleep 0.1
    done
}

say "soak: $SOAK_SECONDS s with $SNAP in $work (grace $GRACE)"
committer &
retention &
restorer &
checker &
logger &
wait

# Final verification: nothing listed is lost or changed.
final_fail=0
"$SNAP" check --read-data >"$logs/final-check" 2>&1 || {
    final_fail=1
    say "final check --read-data failed:"
    cat "$logs/final-check" >&2
}
snapshots=0
for id in $("$SNAP" log --json | jq -r '.[].id'); do
    snapshots=$((snapshots + 1))
    dir="$work/final-$id"
    if ! "$SNAP" restore "$id" --target "$dir" >/dev/null 2>>"$logs/final-restore"; then
        final_fail=1
        say "final restore of $id failed"
    elif [ ! -f "$man/$id" ] || ! diff -q <(manifest "$dir") "$man/$id" >/dev/null; then
        final_fail=1
        say "final restore of $id differs from its manifest"
    fi
    rm -rf "$dir"
done

printf '\n%-18s %8s %8s\n' kind ops failures
failures=0
for f in "$counts"/*; do
    kind=$(basename "$f")
    ops=$(wc -l <"$f")
    bad=$(grep -c fail "$f" || true)
    failures=$((failures + bad))
    printf '%-18s %8d %8d\n' "$kind" "$ops" "$bad"
done
printf '%-18s %8d %8d\n' final-restores "$snapshots" "$final_fail"
for f in "$logs"/*; do
    [ -s "$f" ] || continue
    case $(basename "$f") in check.out | final-check) continue ;; esac
    say "--- $(basename "$f") (last lines)"
    tail -n 5 "$f" >&2
done
if [ "$failures" -ne 0 ] || [ "$final_fail" -ne 0 ]; then
    kept=$(mktemp -d "${TMPDIR:-/tmp}/snap-soak-logs.XXXXXX")
    cp -r "$logs"/. "$kept"/
    say "failures: logs kept in $kept"
    exit 1
fi
