"""`SnapCallback` for PyTorch Lightning: a snapshot after every checkpoint.

Lightning's `on_save_checkpoint` hook runs *before* the checkpoint file is
written, so the callback only notes the epoch, step and metrics there and
commits at the next hook that runs after the write: `on_train_epoch_end`
(checkpoints saved at the end of validation), else the next
`on_train_epoch_start`, or `on_train_end` (checkpoints saved at the end of
the training epoch: `ModelCheckpoint` runs after other callbacks), or the
next `on_train_batch_start` (checkpoints saved by a mid-epoch validation).
So each snapshot holds the checkpoint it describes.

Works under `snap run` (commits join its session) and alone (commits go to
session `session`, by default `lightning-YYYYMMDD-HHMMSS`).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the older package name
    try:
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]
    except ImportError as e:
        raise ImportError("snapstore.lightning needs lightning: pip install lightning") from e

from ._metrics import default_session, improves, scalars
from .repo import PathLike, Repo
from .snapshot import Snapshot


class SnapCallback(Callback):  # type: ignore[misc]
    """Commits after each checkpoint Lightning writes, with epoch, global
    step and the logged metrics; tags `SESSION/best` when `monitor` improves.

    `paths` limits the snapshot to some paths (default: the whole
    workspace); `repo` defaults to `Repo.open()`.
    """

    def __init__(
        self,
        monitor: Optional[str] = "val_loss",
        mode: str = "min",
        paths: Optional[Iterable[PathLike]] = None,
        repo: Optional[Repo] = None,
        session: Optional[str] = None,
    ) -> None:
        super().__init__()
        improves(0.0, None, mode)  # validates mode
        self.monitor = monitor
        self.mode = mode
        self.paths: Optional[List[PathLike]] = list(paths) if paths is not None else None
        self._repo = repo
        self._joined = bool(os.environ.get("SNAP_SESSION"))
        self.session = os.environ.get("SNAP_SESSION") or session or default_session("lightning")
        self.best: Optional[float] = None
        #: The snapshots this callback committed, oldest first.
        self.snapshots: List[Snapshot] = []
        self._pending: Optional[Dict[str, Any]] = None

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = Repo.open()
        return self._repo

    # -- Lightning hooks ------------------------------------------------------

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Dict[str, Any]) -> None:
        if trainer.is_global_zero:
            self._pending = {
                "epoch": int(trainer.current_epoch),
                "step": int(trainer.global_step),
                "metrics": scalars(trainer.callback_metrics),
            }

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._flush()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._flush()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        # After a checkpoint saved mid-epoch (val_check_interval < 1).
        self._flush()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._flush()

    # -- committing -----------------------------------------------------------

    def _flush(self) -> None:
        """Commits the checkpoint noted by `on_save_checkpoint`, now on disk."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        metrics = pending["metrics"]
        tags = []
        value = metrics.get(self.monitor) if self.monitor else None
        if value is not None and improves(value, self.best, self.mode):
            self.best = value
            tags.append(f"{self.session}/best")
        snap = self.repo.commit(
            paths=self.paths,
            message=f"lightning checkpoint epoch {pending['epoch']} step {pending['step']}",
            session=None if self._joined else self.session,
            epoch=pending["epoch"],
            step=pending["step"],
            metrics=metrics,
            tags=tags,
        )
        self.snapshots.append(snap)
