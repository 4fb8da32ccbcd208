"""snapstore: the Python API of snap, a deduplicating versioning store for
training artifacts (configs, logs, checkpoints).

    from snapstore import Repo
    repo = Repo.open()                      # or Repo.init("path/to/workspace")
    snap = repo.commit(epoch=3, metrics={"val_loss": 0.41}, tags=["exp1/best"])
    state = torch.load(repo.open_file("exp1/best", "checkpoints/model.pt"))
    repo.restore("exp1@3", target="/tmp/epoch3")

The package drives the `snap` binary shipped in the same wheel (found by
`find_snap_bin()`, `SNAP_BIN` overrides) through its `--json` output; it
needs nothing beyond the standard library. `snapstore.CheckpointManager`,
`snapstore.lightning` and `snapstore.transformers` import torch, Lightning
and Transformers when used. docs/python.md is the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._binary import find_snap_bin
from ._cli import SnapWarning
from .errors import DataDamaged, RepositoryLocked, RevisionNotFound, SnapError
from .repo import Repo
from .session import Session
from .snapshot import FileEntry, Snapshot
from .stream import SnapFile

if TYPE_CHECKING:
    from .checkpoint import CheckpointManager

__all__ = [
    "CheckpointManager",
    "DataDamaged",
    "FileEntry",
    "Repo",
    "RepositoryLocked",
    "RevisionNotFound",
    "Session",
    "SnapError",
    "SnapFile",
    "SnapWarning",
    "Snapshot",
    "find_snap_bin",
]


def __getattr__(name: str) -> Any:
    # CheckpointManager imports torch only when it is first used.
    if name == "CheckpointManager":
        from .checkpoint import CheckpointManager

        return CheckpointManager
    raise AttributeError(f"module 'snapstore' has no attribute {name!r}")
