"""The command `Repo.session()` runs under `snap run`: it holds the run open.

It prints a ready line (so the caller knows the pre-run snapshot is
durable and the session is marked running) naming the runner's commit
socket (`SNAP_RUN_NOTIFY`, src/runner/notify.rs), which the caller's
commits pass on so the runner moves the best tags at once; then waits for one line on
stdin, the training's exit status, and exits with it. If the training
process dies without writing it, stdin reaches end of file and this exits
1, so `snap run` still takes its final snapshot and applies retention.
"""

import os
import sys

READY = "snapstore-session-ready"


def main() -> int:
    print(f"{READY} {os.environ.get('SNAP_RUN_NOTIFY', '')}".rstrip(), flush=True)
    line = sys.stdin.readline().strip()
    return int(line) if line.isdigit() else 1


if __name__ == "__main__":
    sys.exit(main())
