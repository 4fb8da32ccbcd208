"""Exceptions raised for a failed `snap` command.

Each carries snap's own message (what happened and what to do) and its
exit code, documented in `snap --help`.
"""

from __future__ import annotations

from typing import Dict, Type


class SnapError(Exception):
    """A `snap` command failed. `message` is snap's error text, `exit_code` its status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} (snap exit code {self.exit_code})"


class DataDamaged(SnapError):
    """Exit 3: damaged data was found, or forget/prune refused on unreadable files."""


class RepositoryLocked(SnapError):
    """Exit 4: another writer holds the repository lock (see SNAP_LOCK_WAIT)."""


class RevisionNotFound(SnapError):
    """Exit 5: no repository, or an unknown revision or path."""


_BY_CODE: Dict[int, Type[SnapError]] = {
    3: DataDamaged,
    4: RepositoryLocked,
    5: RevisionNotFound,
}


def error_for(exit_code: int, stderr: str) -> SnapError:
    """The exception for a command that exited with `exit_code` and printed `stderr`."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    # snap prints "snap: error: ..." last, possibly after warnings; keep the
    # error and what follows it (hints on the next lines).
    start = next((i for i, line in enumerate(lines) if line.startswith("snap: error: ")), None)
    if start is not None:
        lines = lines[start:]
        lines[0] = lines[0][len("snap: error: "):]
    message = "\n".join(lines) or f"snap exited with code {exit_code}"
    return _BY_CODE.get(exit_code, SnapError)(message, exit_code)
