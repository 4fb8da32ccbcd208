"""`Repo`: a snap repository and its workspace, one method per CLI verb.

Every method runs the `snap` binary with `--json` and turns the result
into Python values; a failure raises the `SnapError` subclass for snap's
exit code. Paths inside snapshots (`show().files`, `open_file`, `restore`
paths) are relative to the snapshot root, i.e. the workspace root; paths on
disk (`commit` paths, `restore` target) are relative to the current
directory, as usual in Python.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ._cli import EXIT_PARTIAL, Cli, SnapWarning, absolute
from .session import Session
from .snapshot import Snapshot
from .stream import SnapFile

PathLike = Union[str, "os.PathLike[str]"]


class Repo:
    """A repository and the workspace its commits snapshot.

    Get one with `Repo.open()` (found as the CLI finds it: `SNAP_REPO`,
    `snap.toml`, the nearest `.snap/` upward) or `Repo.init(path)`.
    """

    def __init__(self, repository: str, workspace: str, binary: Optional[str] = None) -> None:
        self.path = repository
        self.workspace = workspace
        self._cli = Cli(repository, workspace, binary)

    def __repr__(self) -> str:
        return f"Repo(path={self.path!r}, workspace={self.workspace!r})"

    # -- finding and creating ----------------------------------------------

    @classmethod
    def open(cls, path: Optional[PathLike] = None, binary: Optional[str] = None) -> "Repo":
        """The repository for directory `path` (default: the current directory)."""
        start = absolute(path if path is not None else os.getcwd())
        found = Cli(None, start, binary).json(["locate"])
        return cls(found["repository"], found["workspace"], binary)

    @classmethod
    def init(
        cls,
        path: PathLike,
        repository: Optional[PathLike] = None,
        binary: Optional[str] = None,
    ) -> "Repo":
        """Creates a repository for workspace `path` (created if missing).

        The repository goes to `path/.snap`, or to `repository` (another
        disk, say), in which case the workspace's snap.toml names it.
        """
        ws = absolute(path)
        repo = absolute(repository) if repository is not None else os.path.join(ws, ".snap")
        Cli(repo, os.getcwd(), binary).run(["init", "--workspace", ws])
        found = Cli(repo, ws, binary).json(["locate"])
        return cls(found["repository"], found["workspace"], binary)

    # -- writing -------------------------------------------------------------

    def commit(
        self,
        paths: Optional[Iterable[PathLike]] = None,
        message: Optional[str] = None,
        session: Optional[str] = None,
        epoch: Optional[int] = None,
        step: Optional[int] = None,
        metrics: Optional[Mapping[str, float]] = None,
        tags: Sequence[str] = (),
    ) -> Snapshot:
        """Snapshots the workspace (or just `paths`) and returns the new snapshot.

        Without `session`, a commit inside `snap run` (or `Repo.session`)
        joins that run's session through `SNAP_SESSION`. Entries that could
        not be read are left out with a `SnapWarning` (snap's exit code 6).
        """
        return self._commit(paths, message, session, epoch, step, metrics, tags)

    def _commit(
        self,
        paths: Optional[Iterable[PathLike]],
        message: Optional[str],
        session: Optional[str],
        epoch: Optional[int],
        step: Optional[int],
        metrics: Optional[Mapping[str, float]],
        tags: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
    ) -> Snapshot:
        args: List[str] = ["commit"]
        args += [absolute(p) for p in (paths or ())]
        if message is not None:
            args += ["--message", message]
        if session is not None:
            args += ["--session", session]
        if epoch is not None:
            args += ["--epoch", str(int(epoch))]
        if step is not None:
            args += ["--step", str(int(step))]
        for name, value in (metrics or {}).items():
            # repr of a float is the shortest text that reads back to it.
            args += ["--metric", f"{name}={float(value)!r}"]
        for t in tags:
            args += ["--tag", t]
        return Snapshot.from_json(self._cli.json(args, ok_codes=(0, EXIT_PARTIAL), env=env))

    def tag(self, name: str, rev: str = "latest") -> str:
        """Points tag `name` at `rev` (replacing it atomically); returns the snapshot id."""
        return str(self._cli.json(["tag", name, rev])["snapshot"])

    def delete_tag(self, name: str) -> None:
        """Removes tag `name` (`SnapError` if there is no such tag)."""
        self._cli.json(["tag", "--delete", name])

    def session(
        self,
        name: str,
        best: Optional[str] = None,
        archive: bool = True,
        retention: bool = True,
        keep_sessions: Optional[int] = None,
        keep_epochs: Optional[int] = None,
    ) -> Session:
        """A training session with `snap run`'s semantics, from Python.

        `with repo.session("exp1", best="val_loss:min") as s: ... s.epoch(n, metrics)`:
        a pre-run snapshot on entry, one snapshot per `s.epoch()`, a final
        snapshot with the outcome on exit (also on an exception), the best
        tags, then retention. See docs/python.md for how.
        """
        return Session(self, self._cli, name, best, archive, retention, keep_sessions, keep_epochs)

    # -- reading ---------------------------------------------------------------

    def log(self, session: Optional[str] = None) -> List[Snapshot]:
        """Every snapshot (or a session's), oldest first."""
        args = ["log"] + (["--session", session] if session is not None else [])
        return [Snapshot.from_json(j) for j in self._cli.json(args)]

    def show(self, rev: str) -> Snapshot:
        """One snapshot with its `files` (paths relative to the snapshot root)."""
        j = self._cli.json(["show", rev])
        return Snapshot.from_json(j["snapshot"], files=j["files"])

    def tags(self) -> Dict[str, str]:
        """Tag name -> snapshot id."""
        return {t["name"]: t["snapshot"] for t in self._cli.json(["tags"])}

    def restore(
        self,
        rev: str,
        target: Optional[PathLike] = None,
        paths: Sequence[str] = (),
        overwrite: bool = False,
    ) -> Dict[str, Any]:
        """Writes snapshot `rev` (or its `paths`, globs allowed) back to disk.

        Into the workspace by default, else into `target`; refuses to
        overwrite changed files unless `overwrite`. Returns snap's summary
        (`files`, `dirs`, `bytes`, ...).
        """
        args = ["restore", rev, *paths]
        if target is not None:
            args += ["--target", absolute(target)]
        if overwrite:
            args.append("--overwrite")
        return dict(self._cli.json(args))

    def open_file(self, rev: str, path: str, seekable: bool = False) -> SnapFile:
        """A binary file object streaming `path` of snapshot `rev`.

        `torch.load(repo.open_file("best", "model.pt"))` works: a loader's
        first seek switches to a spooled copy (see `snapstore.stream`).
        Use it as a context manager, or close it, to end the `snap cat`.
        """
        stderr = tempfile.TemporaryFile()
        proc = self._cli.popen(
            ["cat", f"{rev}:{path}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        f = SnapFile(proc, stderr, f"{rev}:{path}")
        if seekable:
            f.spool()
        return f

    def read_bytes(self, rev: str, path: str) -> bytes:
        """The whole content of `path` in snapshot `rev` (small files)."""
        with self.open_file(rev, path) as f:
            return f.read()

    def diff(self, a: str, b: str, tensors: bool = False) -> Dict[str, Any]:
        """Files added, removed and changed from `a` to `b`; with `tensors`, which tensors."""
        args = ["diff", a, b] + (["--tensors"] if tensors else [])
        return dict(self._cli.json(args))

    def stats(self) -> Dict[str, Any]:
        """Logical, unique and stored bytes, and the dedup and compression ratios."""
        return dict(self._cli.json(["stats"]))


__all__ = ["Repo", "SnapWarning"]
