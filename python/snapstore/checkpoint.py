"""`CheckpointManager`: the hand-written checkpoint manager, backed by snap.

A drop-in for the usual class (`save_checkpoint(model, epoch=15,
metrics={"val_accuracy": 0.67}, config=config, is_best=True)`,
`load_best_checkpoint(model, device)`): each save overwrites one
checkpoint file and its JSON metadata in `directory` and commits them with
the epoch and metrics, so every epoch's checkpoint stays in the store
(deduplicated: unchanged tensors cost nothing) and the best one is a tag,
`EXPERIMENT/best`, not a `_best.pt` copy. Needs torch.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Union

from .repo import PathLike, Repo
from .snapshot import Snapshot


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("snapstore.CheckpointManager needs torch: pip install torch") from e
    return torch


class CheckpointManager:
    """Checkpoints of one experiment, saved into `directory` and committed.

    Commits go to session `experiment`, or inside `snap run` (or
    `Repo.session`) to the enclosing run's session. `repo` defaults to
    `Repo.open(directory)`.
    """

    def __init__(self, directory: PathLike, experiment: str, repo: Optional[Repo] = None) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        self.experiment = experiment
        os.makedirs(self.directory, exist_ok=True)
        self.repo = repo if repo is not None else Repo.open(self.directory)
        self.checkpoint_path = os.path.join(self.directory, f"{experiment}.pt")
        self.metadata_path = os.path.join(self.directory, f"{experiment}.json")
        self._in_store = os.path.relpath(self.checkpoint_path, self.repo.workspace)
        if self._in_store.startswith(".."):
            raise ValueError(f"{self.directory} is outside the workspace {self.repo.workspace}")

    @property
    def best_tag(self) -> str:
        """The tag naming the best checkpoint: `EXPERIMENT/best`."""
        return f"{self.experiment}/best"

    def save_checkpoint(
        self,
        model: Any,
        epoch: int,
        metrics: Mapping[str, float],
        config: Optional[Mapping[str, Any]] = None,
        optimizer: Any = None,
        is_best: bool = False,
    ) -> Snapshot:
        """Writes the checkpoint and its metadata, commits them, tags the best.

        The checkpoint is `torch.save` of `{"epoch", "model_state_dict",
        "optimizer_state_dict", "metrics", "config"}`; the metadata file is
        the same without the state dicts, as JSON.
        """
        torch = _torch()
        meta: Dict[str, Any] = {
            "experiment": self.experiment,
            "epoch": int(epoch),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "config": dict(config) if config is not None else None,
        }
        state = dict(meta)
        state["model_state_dict"] = model.state_dict()
        state["optimizer_state_dict"] = optimizer.state_dict() if optimizer is not None else None
        _atomic_write(self.checkpoint_path, lambda f: torch.save(state, f))
        _atomic_write(
            self.metadata_path,
            lambda f: f.write(json.dumps(meta, indent=2, default=str).encode() + b"\n"),
        )
        return self.repo.commit(
            paths=[self.checkpoint_path, self.metadata_path],
            message=f"{self.experiment} epoch {epoch}",
            session=None if os.environ.get("SNAP_SESSION") else self.experiment,
            epoch=int(epoch),
            metrics=meta["metrics"],
            tags=[self.best_tag] if is_best else (),
        )

    def load_checkpoint(
        self,
        model: Any,
        rev: Union[str, int],
        optimizer: Any = None,
        device: Any = "cpu",
    ) -> Dict[str, Any]:
        """Loads the checkpoint of snapshot `rev` (an int: that epoch of the
        experiment) into `model` (and `optimizer`); returns the checkpoint
        without its state dicts: epoch, metrics, config."""
        torch = _torch()
        name = f"{self.experiment}@{rev}" if isinstance(rev, int) else rev
        with self.repo.open_file(name, self._in_store) as f:
            state = torch.load(f, map_location=device, weights_only=True)
        model.load_state_dict(state["model_state_dict"])
        if optimizer is not None and state.get("optimizer_state_dict") is not None:
            optimizer.load_state_dict(state["optimizer_state_dict"])
        return {k: v for k, v in state.items() if not k.endswith("_state_dict")}

    def load_best_checkpoint(self, model: Any, optimizer: Any = None, device: Any = "cpu") -> Dict[str, Any]:
        """Loads the checkpoint tagged `EXPERIMENT/best`."""
        return self.load_checkpoint(model, self.best_tag, optimizer, device)

    def list_checkpoints(self) -> List[Snapshot]:
        """The experiment's committed checkpoints, oldest first (`.epoch`, `.metrics`)."""
        return [s for s in self.repo.log(session=self._session()) if s.epoch is not None]

    def _session(self) -> str:
        return os.environ.get("SNAP_SESSION") or self.experiment


def _atomic_write(path: str, write: Any) -> None:
    """Writes `path` through a temporary file and a rename, so a commit
    never sees half a checkpoint."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
