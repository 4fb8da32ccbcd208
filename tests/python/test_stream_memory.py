"""A streamed open_file of a 1 GiB file stays in bounded memory.

The read runs in a child Python process, so its peak RSS is that of the
streaming alone, not of pytest. The peak is VmHWM from /proc/self/status,
not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a pytest
that has loaded torch would report pytest's own peak (measured: 684 MiB).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from snapstore import Repo

GIB = 1 << 30
BLOCK = 1 << 20

READER = """
import hashlib, sys
from snapstore import Repo
repo = Repo.open(sys.argv[1])
h, n = hashlib.blake2b(), 0
with repo.open_file("latest", "big.bin") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(n, h.hexdigest(), int(hwm.split()[1]))
"""


def test_open_file_streams_one_gib_in_bounded_memory(repo: Repo, workspace: Path) -> None:
    # 1 GiB of one random MiB repeated: quick to commit (it dedups), and
    # every byte must still come through the pipe.
    block = os.urandom(BLOCK)
    expect = hashlib.blake2b()
    with open(workspace / "big.bin", "wb") as f:
        for _ in range(GIB // BLOCK):
            f.write(block)
            expect.update(block)
    repo.commit()
    (workspace / "big.bin").unlink()  # nothing to read from the workspace by mistake
    out = subprocess.run(
        [sys.executable, "-c", READER, str(workspace)],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    size, digest, max_rss_kib = int(out[0]), out[1], int(out[2])
    assert size == GIB
    assert digest == expect.hexdigest()
    # The interpreter itself is ~10 MiB; a copy of the file would be 1 GiB.
    print(f"peak RSS of the reader: {max_rss_kib} KiB")
    assert max_rss_kib < 100 * 1024, f"peak RSS {max_rss_kib} KiB while streaming 1 GiB"
