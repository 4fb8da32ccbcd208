"""Running `snap` as a subprocess: the one place the package starts it.

Every call passes `--repo` and runs in the workspace root, so paths inside
snapshots are always relative to the snapshot root, whatever the Python
process's current directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from typing import Any, List, Mapping, Optional, Sequence

from ._binary import find_snap_bin
from .errors import error_for

#: `snap commit` stored the snapshot, but without some entries (each named
#: by a warning): not an error for the API, a warning.
EXIT_PARTIAL = 6


class Cli:
    """The `snap` binary bound to one repository and workspace."""

    def __init__(self, repository: Optional[str], workspace: str, binary: Optional[str] = None) -> None:
        self.binary = binary or find_snap_bin()
        self.repository = repository
        self.workspace = workspace

    def argv(self, args: Sequence[str]) -> List[str]:
        """The full command line for `snap ARGS` on this repository."""
        head = [self.binary]
        if self.repository is not None:
            head += ["--repo", self.repository]
        return head + list(args)

    def run(
        self,
        args: Sequence[str],
        ok_codes: Sequence[int] = (0,),
        env: Optional[Mapping[str, str]] = None,
    ) -> str:
        """Runs `snap ARGS`, returns its stdout; raises the matching SnapError otherwise.

        Warnings snap prints on stderr become Python warnings. `env` adds
        variables to the inherited environment.
        """
        proc = subprocess.run(
            self.argv(args),
            cwd=self.workspace,
            env=None if not env else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if proc.returncode not in ok_codes:
            raise error_for(proc.returncode, proc.stderr)
        for line in proc.stderr.splitlines():
            if line.startswith("snap: warning: "):
                warnings.warn(line[len("snap: warning: "):], SnapWarning, stacklevel=3)
        return proc.stdout

    def json(
        self,
        args: Sequence[str],
        ok_codes: Sequence[int] = (0,),
        env: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Runs `snap ARGS --json` and decodes its output."""
        return json.loads(self.run(list(args) + ["--json"], ok_codes, env))

    def popen(self, args: Sequence[str], **kwargs: Any) -> "subprocess.Popen[Any]":
        """Starts `snap ARGS` in the workspace; the caller owns the process."""
        return subprocess.Popen(self.argv(args), cwd=self.workspace, **kwargs)


class SnapWarning(UserWarning):
    """Something snap warned about (an entry left out of a commit, a tag to repair)."""


def absolute(path: "os.PathLike[str] | str") -> str:
    """`path` made absolute against the Python process's current directory."""
    return os.path.abspath(os.fspath(path))
