"""The Repo API against a real repository: every method and its errors."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from snapstore import (
    DataDamaged,
    Repo,
    RepositoryLocked,
    RevisionNotFound,
    SnapError,
    Snapshot,
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_init_then_open_finds_the_repository_from_a_subdirectory(repo: Repo, workspace: Path) -> None:
    (workspace / "logs").mkdir()
    found = Repo.open(workspace / "logs")
    assert found.path == repo.path == str(workspace / ".snap")
    assert found.workspace == str(workspace)


def test_open_without_a_repository_is_revision_not_found(tmp_path: Path) -> None:
    with pytest.raises(RevisionNotFound) as e:
        Repo.open(tmp_path)
    assert e.value.exit_code == 5
    assert "no snap repository found" in e.value.message


def test_commit_returns_the_snapshot_with_metadata(repo: Repo, workspace: Path) -> None:
    write(workspace / "config" / "train.json", '{"lr": 0.001}')
    s = repo.commit(
        message="first", session="exp1", epoch=3, step=300,
        metrics={"val_loss": 0.1 + 0.2}, tags=["exp1/best"],
    )
    assert isinstance(s, Snapshot)
    assert len(s.id) == 64 and s.short == s.id[:8]
    assert (s.session, s.epoch, s.step, s.message) == ("exp1", 3, 300, "first")
    # repr of a float goes through the CLI and back digit for digit.
    assert s.metrics == {"val_loss": 0.1 + 0.2}
    assert s.tags == ("exp1/best",)
    assert s.summary["files"] == 1


def test_commit_of_paths_holds_only_them(repo: Repo, workspace: Path) -> None:
    write(workspace / "a.txt", "a")
    write(workspace / "b.txt", "b")
    repo.commit(paths=[workspace / "a.txt"])
    assert repo.show("latest").paths == ["a.txt"]


def test_log_lists_oldest_first_and_filters_by_session(repo: Repo, workspace: Path) -> None:
    write(workspace / "f", "1")
    first = repo.commit(session="s1", epoch=1)
    write(workspace / "f", "2")
    second = repo.commit(session="s2", epoch=1)
    assert [s.id for s in repo.log()] == [first.id, second.id]
    assert [s.id for s in repo.log(session="s2")] == [second.id]


def test_show_lists_files_relative_to_the_snapshot_root(repo: Repo, workspace: Path) -> None:
    write(workspace / "models" / "model.pt", "weights")
    s = repo.commit()
    shown = repo.show(s.short)
    assert shown.id == s.id
    assert shown.paths == ["models/model.pt"]
    entry = next(f for f in shown.files or [] if f.path == "models/model.pt")
    assert entry.kind == "file" and entry.size == len("weights")


def test_open_file_streams_content_and_seeks(repo: Repo, workspace: Path) -> None:
    data = os.urandom(3 << 20)
    (workspace / "blob.bin").write_bytes(data)
    repo.commit()
    with repo.open_file("latest", "blob.bin") as f:
        assert f.read(10) == data[:10]
        assert f.read() == data[10:]
    with repo.open_file("latest", "blob.bin") as f:
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]
        f.seek(100)
        assert f.read(4) == data[100:104]
    assert repo.read_bytes("latest", "blob.bin") == data


def test_open_file_cannot_seek_back_after_streaming_past_the_head(repo: Repo, workspace: Path) -> None:
    (workspace / "blob.bin").write_bytes(b"x" * (3 << 20))
    repo.commit()
    with repo.open_file("latest", "blob.bin") as f:
        while f.tell() < 2 << 20:  # a raw read returns what one pipe read gives
            f.read(1 << 20)
        with pytest.raises(OSError, match="seekable=True"):
            f.seek(0)
    with repo.open_file("latest", "blob.bin", seekable=True) as f:
        while f.tell() < 2 << 20:
            f.read(1 << 20)
        f.seek(0)
        assert f.read(3) == b"xxx"


def test_open_file_of_an_unknown_path_or_revision_raises_at_open(repo: Repo, workspace: Path) -> None:
    write(workspace / "a.txt", "a")
    repo.commit()
    with pytest.raises(RevisionNotFound, match="not in snapshot"):
        repo.open_file("latest", "b.txt")
    with pytest.raises(RevisionNotFound, match="unknown revision 'nope'"):
        repo.open_file("nope", "a.txt")


def test_restore_into_a_target_and_into_the_workspace(repo: Repo, workspace: Path, tmp_path: Path) -> None:
    write(workspace / "config" / "a.yaml", "v1")
    write(workspace / "logs" / "run.log", "line")
    first = repo.commit()
    summary = repo.restore(first.id, target=tmp_path / "out", paths=["config"])
    assert summary["files"] == 1
    assert (tmp_path / "out" / "config" / "a.yaml").read_text() == "v1"
    assert not (tmp_path / "out" / "logs").exists()
    write(workspace / "config" / "a.yaml", "v2")
    repo.commit()
    with pytest.raises(SnapError, match="overwrite"):
        repo.restore(first.id)
    repo.restore(first.id, overwrite=True)
    assert (workspace / "config" / "a.yaml").read_text() == "v1"


def test_tags_move_and_delete(repo: Repo, workspace: Path) -> None:
    write(workspace / "f", "1")
    a = repo.commit()
    write(workspace / "f", "2")
    b = repo.commit()
    assert repo.tag("best", a.id) == a.id
    assert repo.tag("best") == b.id
    assert repo.tags() == {"best": b.id}
    assert repo.show("best").id == b.id
    repo.delete_tag("best")
    assert repo.tags() == {}
    with pytest.raises(SnapError):
        repo.delete_tag("best")
    with pytest.raises(RevisionNotFound):
        repo.tag("x", "nope")


def test_diff_names_changed_added_and_removed(repo: Repo, workspace: Path) -> None:
    write(workspace / "keep", "1")
    write(workspace / "gone", "1")
    a = repo.commit()
    write(workspace / "keep", "2")
    (workspace / "gone").unlink()
    write(workspace / "new", "1")
    b = repo.commit()
    d = repo.diff(a.id, b.id)
    assert [f["path"] for f in d["added"]] == ["new"]
    assert [f["path"] for f in d["removed"]] == ["gone"]
    assert [f["path"] for f in d["changed"]] == ["keep"]


def test_stats_counts_snapshots_and_dedup(repo: Repo, workspace: Path) -> None:
    (workspace / "a.bin").write_bytes(os.urandom(1 << 16))
    repo.commit()
    repo.commit()
    s = repo.stats()
    assert s["snapshots"] == 2
    assert s["dedup_ratio"] >= 1.9


def test_a_held_writer_lock_is_repository_locked(repo: Repo, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAP_LOCK_WAIT", "0")
    with open(Path(repo.path) / "locks" / "writer", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RepositoryLocked) as e:
            repo.commit()
    assert e.value.exit_code == 4


def test_damaged_pack_data_is_data_damaged(repo: Repo, workspace: Path) -> None:
    data = os.urandom(1 << 16)  # incompressible: stored as it is
    (workspace / "a.bin").write_bytes(data)
    repo.commit()
    packs = [p for p in (Path(repo.path) / "packs").rglob("*.pack")]
    for pack in packs:
        raw = bytearray(pack.read_bytes())
        at = raw.find(data[1000:1032])
        if at >= 0:
            raw[at] ^= 0xFF
            pack.write_bytes(bytes(raw))
            break
    else:
        pytest.fail("the file's bytes were not found in any pack")
    with pytest.raises(DataDamaged) as e:
        repo.read_bytes("latest", "a.bin")
    assert e.value.exit_code == 3


def test_snap_bin_must_name_an_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from snapstore import find_snap_bin

    monkeypatch.setenv("SNAP_BIN", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="SNAP_BIN"):
        find_snap_bin()


def test_metrics_accept_numpy_scalars_and_come_back_exactly(repo: Repo, workspace: Path) -> None:
    np = pytest.importorskip("numpy")
    write(workspace / "f", "x")
    s = repo.commit(metrics={"acc": np.float32(0.67), "loss": np.float64(1 / 3)})
    assert s.metrics == {"acc": float(np.float32(0.67)), "loss": 1 / 3}
