"""SnapCallback with a real Lightning Trainer: tiny model, 3 epochs, CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from snapstore import Repo

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from snapstore.lightning import SnapCallback  # noqa: E402


class TinyRegressor(pl.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, _: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader(seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def test_three_epochs_make_three_snapshots_with_the_best_tagged(
    repo: Repo, workspace: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    snap = SnapCallback(monitor="val_loss", mode="min", repo=repo, session="lit")
    checkpoints = pl.callbacks.ModelCheckpoint(
        dirpath=workspace / "checkpoints", monitor="val_loss", save_top_k=1,
        filename="{epoch}-{val_loss:.4f}",
    )
    trainer = pl.Trainer(
        max_epochs=3, accelerator="cpu", devices=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=workspace, callbacks=[snap, checkpoints],
    )
    trainer.fit(TinyRegressor(), loader(1), loader(2))

    log = repo.log(session="lit")
    assert [s.epoch for s in log] == [0, 1, 2]
    assert all("val_loss" in s.metrics and s.step for s in log)
    losses = [s.metrics["val_loss"] for s in log]
    best = repo.show("lit/best")
    assert best.metrics["val_loss"] == min(losses)

    # Each snapshot holds the checkpoint written before it, even those
    # Lightning deleted since (save_top_k=1).
    for s in log:
        names = [p for p in repo.show(s.id).paths if p.endswith(".ckpt")]
        assert len(names) == 1, names
    # The best snapshot holds its own epoch's checkpoint.
    (best_ckpt,) = [p for p in best.paths if p.endswith(".ckpt")]
    assert best_ckpt.startswith(f"checkpoints/epoch={best.epoch}-")
    repo.restore("lit/best", target=tmp_path / "restored", paths=[best_ckpt])
    loaded = torch.load(tmp_path / "restored" / best_ckpt, weights_only=False)
    assert loaded["epoch"] == best.epoch
    assert loaded["global_step"] == best.step
    assert set(loaded["state_dict"]) == {"net.weight", "net.bias"}


TRAIN_UNDER_RUN = """
import lightning.pytorch as pl, torch, sys
sys.path.insert(0, {tests!r})
from test_lightning import TinyRegressor, loader
from snapstore.lightning import SnapCallback
torch.manual_seed(0)
trainer = pl.Trainer(
    max_epochs=2, accelerator="cpu", devices=1, logger=False,
    enable_progress_bar=False, enable_model_summary=False,
    callbacks=[SnapCallback(monitor="val_loss"), pl.callbacks.ModelCheckpoint(dirpath="ckpt")],
)
trainer.fit(TinyRegressor(), loader(1), loader(2))
"""


def test_under_snap_run_the_callback_joins_the_run(repo: Repo, workspace: Path) -> None:
    script = TRAIN_UNDER_RUN.format(tests=str(Path(__file__).parent))
    subprocess.run(
        [repo._cli.binary, "run", "--session", "lit-run", "--best", "val_loss",
         "--", sys.executable, "-c", script],
        cwd=workspace, check=True, capture_output=True,
    )
    log = repo.log(session="lit-run")
    epochs = [s.epoch for s in log if "val_loss" in s.metrics]
    assert epochs == [0, 1]
    assert log[0].labels.get("signal") == "archive" and "outcome" in log[-1].labels
    assert repo.show("lit-run/best").metrics["val_loss"] == min(
        s.metrics["val_loss"] for s in log if "val_loss" in s.metrics
    )


def test_mid_epoch_validation_checkpoints_each_get_a_snapshot(repo: Repo, workspace: Path) -> None:
    torch.manual_seed(0)
    snap = SnapCallback(monitor="val_loss", repo=repo, session="mid")
    checkpoints = pl.callbacks.ModelCheckpoint(
        dirpath=workspace / "checkpoints", monitor="val_loss", save_top_k=-1,
        filename="{epoch}-{step}",
    )
    trainer = pl.Trainer(
        max_epochs=1, val_check_interval=0.5, accelerator="cpu", devices=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=workspace, callbacks=[snap, checkpoints],
    )
    trainer.fit(TinyRegressor(), loader(1), loader(2))
    log = repo.log(session="mid")
    assert [(s.epoch, s.step) for s in log] == [(0, 2), (0, 4)]
    # The first snapshot already holds the step-2 checkpoint.
    assert "checkpoints/epoch=0-step=2.ckpt" in repo.show(log[0].id).paths
