"""`Session`: `snap run`'s semantics for training code that runs in Python.

`Repo.session()` starts `snap run --session NAME [--best ...] --json --`
with a tiny holder command (`_hold.py`) instead of the training command:
the runner takes the pre-run snapshot, marks the session running, and
waits; each `Session.epoch()` is a `snap commit --session NAME --epoch N`
from this process, exactly what a training script under `snap run` does
when it commits itself (passing on the runner's `SNAP_RUN_NOTIFY` socket,
so the best tags follow each epoch at once). On exit the holder returns the training's status
(0, or 1 after an exception), and the runner takes the final snapshot,
moves `SESSION/best` and `best`, and applies retention. No session logic is
duplicated here: all of it is the runner's (src/runner).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, IO, Iterable, List, Mapping, Optional, Type

from . import _hold
from ._cli import Cli
from .errors import SnapError, error_for
from .snapshot import Snapshot

if TYPE_CHECKING:
    from .repo import PathLike, Repo


class Session:
    """One training run. Use as a context manager; see `Repo.session`.

    Inside `snap run` (`SNAP_SESSION` set) the session joins that run
    instead: `epoch()` commits into it, and the outer runner does the rest.
    """

    def __init__(
        self,
        repo: "Repo",
        cli: Cli,
        name: str,
        best: Optional[str],
        archive: bool,
        retention: bool,
        keep_sessions: Optional[int],
        keep_epochs: Optional[int],
    ) -> None:
        self.repo = repo
        self.name = name
        self._cli = cli
        self._args = ["run", "--session", name, "--json"]
        if best is not None:
            self._args += ["--best", best]
        if not archive:
            self._args.append("--no-archive")
        if not retention:
            self._args.append("--no-retention")
        if keep_sessions is not None:
            self._args += ["--keep-sessions", str(keep_sessions)]
        if keep_epochs is not None:
            self._args += ["--keep-epochs", str(keep_epochs)]
        self._proc: Optional["subprocess.Popen[str]"] = None
        self._stderr_lines: List[str] = []
        self._stderr_thread: Optional[threading.Thread] = None
        self._last_epoch: Optional[int] = None
        self._env: Optional[Dict[str, str]] = None
        #: The run report of `snap run --json` (snapshots, best, retention, ...), after exit.
        self.report: Optional[Dict[str, Any]] = None
        #: Set when the session joined an enclosing `snap run`.
        self.joined: Optional[str] = None

    # -- context manager ---------------------------------------------------

    def __enter__(self) -> "Session":
        outer = os.environ.get("SNAP_SESSION")
        if outer:
            self.joined = outer
            return self
        hold = os.path.abspath(_hold.__file__)
        proc = self._cli.popen(
            self._args + ["--", sys.executable, hold],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._proc = proc
        self._stderr_thread = threading.Thread(target=self._relay, args=(proc.stderr,), daemon=True)
        self._stderr_thread.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            ready, _, notify = line.strip().partition(" ")
            if ready == _hold.READY:
                # This process commits, not the runner's child: pass on the
                # session and the runner's socket, as its child would have them.
                self._env = {"SNAP_SESSION": self.name}
                if notify:
                    self._env["SNAP_RUN_NOTIFY"] = notify
                return self
        # snap run ended before starting the holder: its error is on stderr.
        code = proc.wait()
        self._stderr_thread.join()
        raise error_for(code if code else 1, "\n".join(self._stderr_lines))

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._proc is None:
            return
        if exc_type is None:
            status = 0
        elif issubclass(exc_type, KeyboardInterrupt):
            status = 130
        else:
            status = 1
        self.end(status)

    def end(self, status: int = 0) -> Dict[str, Any]:
        """Ends the run with exit `status`: final snapshot, best tags, retention."""
        proc = self._proc
        if proc is None:
            raise SnapError(f"session {self.name} is not running", 1)
        self._proc = None
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"{status}\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the holder is gone already (a signal): the runner finishes anyway
        rest = proc.stdout.read()
        code = proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join()
        lines = [line for line in rest.splitlines() if line.strip()]
        try:
            self.report = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise error_for(code if code else 1, "\n".join(self._stderr_lines)) from None
        return self.report

    # -- inside the session --------------------------------------------------

    def epoch(
        self,
        epoch: Optional[int] = None,
        metrics: Optional[Mapping[str, float]] = None,
        step: Optional[int] = None,
        paths: Optional[Iterable["PathLike"]] = None,
        message: Optional[str] = None,
    ) -> Snapshot:
        """Commits one epoch (or step) of the session; returns its snapshot.

        Blocks only for the commit, so the snapshot holds exactly this
        epoch's files. Without `epoch` and `step`, the epoch is the previous
        one + 1 (1 at first), as for `snap run`'s signals.
        """
        if self._proc is None and self.joined is None:
            raise SnapError(f"session {self.name} is not running: use it inside `with`", 1)
        if epoch is None and step is None:
            epoch = (self._last_epoch or 0) + 1
        if epoch is not None:
            self._last_epoch = epoch
        session = None if self.joined else self.name
        return self.repo._commit(paths, message, session, epoch, step, metrics, (), self._env)

    def _relay(self, stream: IO[str]) -> None:
        """Passes the runner's notes through to our stderr, keeping them for errors."""
        for line in stream:
            self._stderr_lines.append(line.rstrip("\n"))
            sys.stderr.write(line)
