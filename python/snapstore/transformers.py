"""`SnapCallback` for the Hugging Face `Trainer`: every saved checkpoint
goes into the store.

`on_save` runs after the Trainer has written `checkpoint-STEP/` (and after
`save_total_limit` deleted older ones): the callback commits that
directory with `state.epoch`, `state.global_step` and the newest metrics of
`state.log_history`, and tags `SESSION/best` when it is
`state.best_model_checkpoint`. What the Trainer deletes stays restorable:
`snap restore SESSION@step=500 --target DIR`.

Works under `snap run` (commits join its session) and alone (commits go to
session `session`, by default `hf-YYYYMMDD-HHMMSS`).
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, List, Optional

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("snapstore.transformers needs transformers: pip install transformers") from e

from ._metrics import default_session, scalars
from .repo import PathLike, Repo
from .snapshot import Snapshot

#: Keys of a log_history entry that are positions, not metrics.
_NOT_METRICS = {"epoch", "step", "total_flos"}


class SnapCallback(TrainerCallback):  # type: ignore[misc]
    """Commits `checkpoint-STEP/` after each save (or `paths`, if given)."""

    def __init__(
        self,
        paths: Optional[Iterable[PathLike]] = None,
        repo: Optional[Repo] = None,
        session: Optional[str] = None,
    ) -> None:
        self.paths: Optional[List[PathLike]] = list(paths) if paths is not None else None
        self._repo = repo
        self._joined = bool(os.environ.get("SNAP_SESSION"))
        self.session = os.environ.get("SNAP_SESSION") or session or default_session("hf")
        #: The snapshots this callback committed, oldest first.
        self.snapshots: List[Snapshot] = []

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = Repo.open()
        return self._repo

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        best = state.best_model_checkpoint
        is_best = best is not None and os.path.abspath(best) == os.path.abspath(checkpoint)
        epoch = state.epoch
        snap = self.repo.commit(
            paths=self.paths if self.paths is not None else [checkpoint],
            message=f"hf checkpoint-{state.global_step}",
            session=None if self._joined else self.session,
            # state.epoch is fractional mid-epoch; its floor counts the
            # epochs completed (1 after the first), as snap run does.
            epoch=None if epoch is None else int(math.floor(epoch)),
            step=int(state.global_step),
            metrics=latest_metrics(state.log_history),
            tags=[f"{self.session}/best"] if is_best else (),
        )
        self.snapshots.append(snap)


def latest_metrics(log_history: List[Dict[str, Any]]) -> Dict[str, float]:
    """The newest value of every metric in `log_history` (training loss,
    eval metrics, learning rate), newest entries winning."""
    out: Dict[str, float] = {}
    for entry in log_history:
        out.update(scalars({k: v for k, v in entry.items() if k not in _NOT_METRICS}))
    return out
