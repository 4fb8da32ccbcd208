"""`Snapshot` and `FileEntry`: the snapshot object of `snap ... --json`
(docs/commands.md, "JSON: the snapshot object") as Python values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple


@dataclass(frozen=True)
class FileEntry:
    """One entry of a snapshot: a file, a directory or a symlink."""

    path: str
    kind: str
    size: int
    mode: int
    mtime_ns: int
    target: Optional[str] = None

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> "FileEntry":
        return cls(
            path=j["path"],
            kind=j["kind"],
            size=int(j["size"]),
            mode=int(j["mode"]),
            mtime_ns=int(j["mtime_ns"]),
            target=j.get("target"),
        )


@dataclass(frozen=True)
class Snapshot:
    """A snapshot's metadata; `files` is filled by `Repo.show` only."""

    id: str
    time: datetime
    session: Optional[str]
    epoch: Optional[int]
    step: Optional[int]
    metrics: Dict[str, float]
    tags: Tuple[str, ...]
    summary: Dict[str, Any]
    message: Optional[str] = None
    labels: Dict[str, str] = field(default_factory=dict)
    parent: Optional[str] = None
    files: Optional[List[FileEntry]] = None

    @property
    def short(self) -> str:
        """The 8-character id prefix snap prints."""
        return self.id[:8]

    @property
    def paths(self) -> List[str]:
        """Paths of the regular files this snapshot holds (needs `Repo.show`)."""
        if self.files is None:
            raise ValueError("this Snapshot has no file list: get it with Repo.show(rev)")
        return [f.path for f in self.files if f.kind == "file"]

    @classmethod
    def from_json(cls, j: Mapping[str, Any], files: Optional[List[Any]] = None) -> "Snapshot":
        return cls(
            id=j["id"],
            time=datetime.fromtimestamp(j["time_ns"] / 1e9, tz=timezone.utc),
            session=j.get("session"),
            epoch=j.get("epoch"),
            step=j.get("step"),
            metrics={k: float(v) for k, v in (j.get("metrics") or {}).items()},
            tags=tuple(j.get("tags") or ()),
            summary=dict(j.get("summary") or {}),
            message=j.get("message"),
            labels=dict(j.get("labels") or {}),
            parent=j.get("parent"),
            files=None if files is None else [FileEntry.from_json(f) for f in files],
        )
