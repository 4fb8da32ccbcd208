"""Repo.session(): snap run's semantics from Python."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapstore import Repo, SnapError


def test_session_takes_pre_run_epoch_and_final_snapshots_and_tags_best(repo: Repo, workspace: Path) -> None:
    (workspace / "ckpt.pt").write_text("0")
    with repo.session("exp1", best="val_loss:min") as s:
        for epoch, loss in [(1, 0.5), (2, 0.3), (3, 0.4)]:
            (workspace / "ckpt.pt").write_text(str(epoch))
            snap = s.epoch(epoch, {"val_loss": loss})
            assert (snap.session, snap.epoch) == ("exp1", epoch)
    log = repo.log(session="exp1")
    assert log[0].labels.get("signal") == "archive"
    assert [x.epoch for x in log[1:4]] == [1, 2, 3]
    assert log[-1].labels["outcome"] == "exited 0"
    best = repo.show("exp1/best")
    assert best.epoch == 2
    assert repo.tags()["best"] == best.id
    assert repo.read_bytes("exp1/best", "ckpt.pt") == b"2"
    assert repo.read_bytes("exp1@start", "ckpt.pt") == b"0"
    assert s.report is not None and s.report["retention"] == "applied"
    assert len(s.report["snapshots"]) == 5


def test_best_follows_each_epoch_while_the_session_runs(repo: Repo, workspace: Path) -> None:
    (workspace / "ckpt.pt").write_text("0")

    def best_becomes(expected: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if repo.tags().get("exp5/best") == expected:
                return True
            time.sleep(0.05)
        return False

    with repo.session("exp5", best="val_loss:min", archive=False) as s:
        first = s.epoch(1, {"val_loss": 0.5})
        assert best_becomes(first.id)
        second = s.epoch(2, {"val_loss": 0.3})
        assert best_becomes(second.id)
        assert repo.tags()["best"] == second.id
        s.epoch(3, {"val_loss": 0.4})
    assert repo.show("exp5/best").epoch == 2


def test_an_exception_ends_the_session_as_failed_and_propagates(repo: Repo, workspace: Path) -> None:
    (workspace / "f").write_text("x")
    with pytest.raises(RuntimeError, match="boom"):
        with repo.session("exp2") as s:
            s.epoch()
            raise RuntimeError("boom")
    assert repo.show("exp2@end").labels["outcome"] == "failed with exit code 1"
    assert repo.show("exp2@1").epoch == 1


def test_a_session_already_running_is_refused(repo: Repo, workspace: Path) -> None:
    (workspace / "f").write_text("x")
    with repo.session("exp3", archive=False):
        with pytest.raises(SnapError, match="already running"):
            with repo.session("exp3", archive=False):
                pass


def test_a_killed_training_process_still_gets_its_final_snapshot(repo: Repo, workspace: Path) -> None:
    (workspace / "f").write_text("x")
    script = (
        "import os, sys\n"
        "from snapstore import Repo\n"
        "s = Repo.open().session('exp4').__enter__()\n"
        "s.epoch(1, {'loss': 1.0})\n"
        "os._exit(9)  # no __exit__: the holder sees its stdin close\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=workspace, check=False)
    # snap run finishes in the background once its holder exits (at most 60 s).
    for _ in range(600):
        end = [s for s in repo.log(session="exp4") if "outcome" in s.labels]
        if end:
            break
        time.sleep(0.1)
    assert end and end[0].labels["outcome"] == "failed with exit code 1"


def test_inside_snap_run_a_session_joins_the_run(repo: Repo, workspace: Path) -> None:
    (workspace / "f").write_text("x")
    script = (
        "from snapstore import Repo\n"
        "with Repo.open().session('ignored') as s:\n"
        "    assert s.joined == 'outer'\n"
        "    s.epoch(7, {'acc': 0.9})\n"
    )
    subprocess.run(
        [repo._cli.binary, "run", "--session", "outer", "--best", "acc", "--", sys.executable, "-c", script],
        cwd=workspace, check=True, capture_output=True,
    )
    assert repo.show("outer/best").epoch == 7
    assert repo.log(session="ignored") == []
