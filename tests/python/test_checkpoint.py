"""CheckpointManager: save, tag the best, load it back equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from snapstore import CheckpointManager, Repo

torch = pytest.importorskip("torch")


def make_model(seed: int) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def states_equal(a: Any, b: Any) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_and_load_best_round_trip(repo: Repo, workspace: Path) -> None:
    manager = CheckpointManager(workspace / "checkpoints", "exp1", repo=repo)
    model = make_model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    saved = {}
    for epoch, acc in [(1, 0.5), (2, 0.67), (3, 0.6)]:
        loss = model(torch.randn(4, 8)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        is_best = acc == 0.67
        snap = manager.save_checkpoint(
            model, epoch=epoch, metrics={"val_accuracy": acc},
            config={"lr": 0.1}, optimizer=optimizer, is_best=is_best,
        )
        assert (snap.epoch, snap.metrics, snap.session) == (epoch, {"val_accuracy": acc}, "exp1")
        saved[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    fresh = make_model(1)
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    info = manager.load_best_checkpoint(fresh, optimizer=fresh_opt)
    assert info["epoch"] == 2 and info["metrics"] == {"val_accuracy": 0.67}
    assert info["config"] == {"lr": 0.1}
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved[2].items())
    assert fresh_opt.state_dict()["state"], "the optimizer's momentum buffers came back"

    manager.load_checkpoint(fresh, 3)
    assert states_equal(fresh, model)
    assert [(s.epoch, s.metrics["val_accuracy"]) for s in manager.list_checkpoints()] == [
        (1, 0.5), (2, 0.67), (3, 0.6),
    ]
    # One file on disk; the store has every epoch, no _best.pt copy.
    assert sorted(p.name for p in (workspace / "checkpoints").iterdir()) == ["exp1.json", "exp1.pt"]


def test_torch_load_reads_a_streamed_checkpoint(repo: Repo, workspace: Path) -> None:
    model = make_model(2)
    torch.save(model.state_dict(), workspace / "model.pt")
    repo.commit(tags=["best"])
    state = torch.load(repo.open_file("best", "model.pt"), weights_only=True)
    fresh = make_model(3)
    fresh.load_state_dict(state)
    assert states_equal(fresh, model)


def test_diff_with_tensors_names_the_changed_tensor(repo: Repo, workspace: Path) -> None:
    state = {"frozen": torch.zeros(100), "trained": torch.ones(100)}
    torch.save(state, workspace / "model.pt")
    before = repo.commit()
    state["trained"] = state["trained"] * 2
    torch.save(state, workspace / "model.pt")
    after = repo.commit()
    (changed,) = repo.diff(before.id, after.id, tensors=True)["changed"]
    assert changed["path"] == "model.pt"
    assert [t["name"] for t in changed["tensors"]["changed"]] == ["trained"]
    assert changed["tensors"]["unchanged"] == 1
    assert "tensors" not in repo.diff(before.id, after.id)["changed"][0]
