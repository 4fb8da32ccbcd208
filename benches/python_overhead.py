#!/usr/bin/env python3
"""Per-commit overhead of the Python API (`Repo.commit`) over the CLI.

Same small workspace (a config, a log that grows, a 1 MiB checkpoint whose
first KiB changes each round), same binary, alternating the two ways
round by round so that cache and disk state are shared fairly:

  cli: subprocess.run([snap, "commit", "--epoch", N, "--metric", ...])
  api: repo.commit(epoch=N, metrics={...}), which runs the same command with
       --json and builds a Snapshot from its output.

Prints the median of each and their ratio. Not a test: run it by hand.

  cargo build --release
  SNAP_BIN=target/release/snap python3 benches/python_overhead.py [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from snapstore import Repo  # noqa: E402


def touch_workspace(ws: Path, i: int) -> None:
    (ws / "config.json").write_text(f'{{"lr": 0.001, "round": {i}}}\n')
    with open(ws / "train.log", "a") as f:
        f.write(f"round {i}: loss {1.0 / (i + 1):.6f}\n")
    with open(ws / "model.pt", "r+b") as f:
        f.write(os.urandom(1024))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "model.pt").write_bytes(os.urandom(1 << 20))
        repo = Repo.init(ws)
        cli = [repo._cli.binary, "--repo", repo.path, "commit"]
        touch_workspace(ws, 0)
        repo.commit()  # the first commit reads everything; not timed
        times = {"cli": [], "api": []}
        for i in range(1, 2 * rounds + 1):
            touch_workspace(ws, i)
            way = "cli" if i % 2 else "api"
            t0 = time.perf_counter()
            if way == "cli":
                subprocess.run(
                    cli + ["--epoch", str(i), "--metric", f"loss={1.0 / i!r}"],
                    cwd=ws, check=True, stdout=subprocess.DEVNULL,
                )
            else:
                repo.commit(epoch=i, metrics={"loss": 1.0 / i})
            times[way].append(time.perf_counter() - t0)
        cli_ms = statistics.median(times["cli"]) * 1e3
        api_ms = statistics.median(times["api"]) * 1e3
        print(f"binary      {repo._cli.binary}")
        print(f"rounds      {rounds} each, alternated")
        print(f"cli commit  median {cli_ms:.2f} ms")
        print(f"api commit  median {api_ms:.2f} ms")
        print(f"api / cli   {api_ms / cli_ms:.3f}x  (overhead {api_ms - cli_ms:+.2f} ms per commit)")


if __name__ == "__main__":
    main()
