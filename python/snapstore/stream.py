"""`SnapFile`: one file of a snapshot, streamed from `snap cat`'s stdout.

Reading is sequential and memory stays bounded: bytes go from the pipe
into the caller's buffer. Loaders that seek (`torch.load` reads a zip, so
it looks at the end first) get what they need without the caller asking:
the first seek that is not a no-op copies the file into a
`SpooledTemporaryFile` (in memory up to `SPOOL_MEMORY`, on disk beyond),
and from then on the file is fully seekable. That is possible while the
stream is still near its start (the first `HEAD_KEEP` bytes are kept);
a backward seek after that raises `io.UnsupportedOperation`. Pass
`seekable=True` to `Repo.open_file` to spool at once.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from typing import IO, Optional

from .errors import error_for

#: Bytes kept from the start of the stream so that a loader's first seek
#: (tell, read the magic, seek back) can still switch to a spooled copy.
HEAD_KEEP = 1 << 20
#: A spooled copy stays in memory up to this size, then moves to disk.
SPOOL_MEMORY = 64 << 20
_COPY = 1 << 20


class SnapFile(io.RawIOBase):
    """A binary, read-only file object over `snap cat REV:PATH`.

    Errors from snap (unknown revision or path, damaged data) are raised as
    `SnapError` subclasses: on open when snap fails at once, else when the
    stream ends. Closing early stops the `snap cat` process.
    """

    def __init__(self, proc: "subprocess.Popen[bytes]", stderr: IO[bytes], name: str) -> None:
        super().__init__()
        assert proc.stdout is not None
        self._proc = proc
        self._pipe = proc.stdout
        self._stderr = stderr
        self.name = name
        self._pos = 0
        self._head = bytearray()
        self._spool: Optional[IO[bytes]] = None
        self._eof = False
        # Read ahead once, so that a wrong revision or path fails here.
        first = self._pipe.read1(HEAD_KEEP) if hasattr(self._pipe, "read1") else self._pipe.read(HEAD_KEEP)
        self._pending = memoryview(first)
        if not first:
            self._finish()

    # -- io.RawIOBase -----------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        """True while a seek can still be served (spooled, or near the start)."""
        return self._spool is not None or self._pos <= HEAD_KEEP

    def tell(self) -> int:
        return self._spool.tell() if self._spool is not None else self._pos

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to `size` bytes (all that is left if `size` is negative or None);
        fewer only at the end of the file, as for a buffered file."""
        if size is None or size < 0:
            return self.readall()
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self.readinto(view[got:])
            if not n:
                break
            got += n
        del view
        del buf[got:]
        return bytes(buf)

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        if self._spool is not None:
            data = self._spool.read(len(out))
            out[: len(data)] = data
            return len(data)
        if self._pending:
            n = min(len(out), len(self._pending))
            out[:n] = self._pending[:n]
            self._pending = self._pending[n:]
        elif self._eof:
            return 0
        else:
            n = self._pipe.readinto(out)  # type: ignore[attr-defined]
            if not n:
                self._finish()
                return 0
        if self._pos < HEAD_KEEP:
            keep = min(n, HEAD_KEEP - self._pos)
            self._head += out[:keep]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._spool is None:
            target = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset}.get(whence)
            if target == self._pos:
                return self._pos
            self._spool_all()
        assert self._spool is not None
        return self._spool.seek(offset, whence)

    def close(self) -> None:
        if not self.closed:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._pipe.close()
            self._stderr.close()
            if self._spool is not None:
                self._spool.close()
        super().close()

    def spool(self) -> None:
        """Makes the file fully seekable now (a copy in a temporary file)."""
        if self._spool is None:
            self._spool_all()

    # -- internals --------------------------------------------------------

    def _finish(self) -> None:
        """The stream ended: raise snap's error if `snap cat` failed."""
        self._eof = True
        code = self._proc.wait()
        if code != 0:
            self._stderr.seek(0)
            err = error_for(code, self._stderr.read().decode("utf-8", "replace"))
            self.close()
            raise err

    def _spool_all(self) -> None:
        """Copies the whole file into a seekable temporary file, positioned where we were."""
        if self._pos > len(self._head):
            raise io.UnsupportedOperation(
                f"cannot seek in {self.name}: {self._pos} bytes were already streamed; "
                "open it with open_file(..., seekable=True)"
            )
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        spool.write(self._head)
        spool.write(self._pending)
        self._pending = memoryview(b"")
        while not self._eof:
            block = self._pipe.read(_COPY)
            if not block:
                self._finish()
                break
            spool.write(block)
        spool.seek(self._pos)
        self._spool = spool
