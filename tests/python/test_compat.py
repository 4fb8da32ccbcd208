"""The package keeps to what `requires-python` promises (3.9+).

Only Python 3.11 runs here, so the syntax and standard-library calls of
every module are checked against 3.9 by vermin, which knows which version
introduced each construct (`match`, `zip(strict=)`, `X | Y` types outside
annotations...). `--eval-annotations` also counts annotations, though the
modules use `from __future__ import annotations`: stricter than needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def minimum_python() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^requires-python\s*=\s*">=\s*(3\.\d+)"', text, re.M)
    assert m, "pyproject.toml has no requires-python = \">=3.N\""
    return m.group(1)


def vermin(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("vermin")
    return subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "--no-tips", "--violations", "--eval-annotations", *args],
        capture_output=True, text=True,
    )


def test_every_module_runs_on_the_oldest_python_it_claims() -> None:
    target = minimum_python()
    assert target == "3.9"
    out = vermin(f"-t={target}-", str(ROOT / "python" / "snapstore"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_check_catches_a_newer_construct(tmp_path: Path) -> None:
    newer = tmp_path / "newer.py"
    newer.write_text("def pairs(a, b):\n    return list(zip(a, b, strict=True))\n")
    out = vermin("-t=3.9-", str(newer))
    assert out.returncode != 0
    assert "zip(strict)" in out.stdout
