"""Shared fixtures: the package from python/, the `snap` binary, a fresh repository.

`.ci/run` sets SNAP_BIN to the debug binary `cargo test` built; without it
the package looks where an installed wheel puts `snap`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

PYTHON_SRC = Path(__file__).resolve().parents[2] / "python"
sys.path.insert(0, str(PYTHON_SRC))
# Child Python processes (the session holder, memory probes) import it too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(PYTHON_SRC), os.environ.get("PYTHONPATH")) if p
)

from snapstore import Repo  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's repository or run."""
    for var in ("SNAP_REPO", "SNAP_SESSION", "SNAP_RUN_NOTIFY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace directory, also the current directory."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    return ws


@pytest.fixture
def repo(workspace: Path) -> Iterator[Repo]:
    """A new repository for `workspace`."""
    yield Repo.init(workspace)
