"""Read a file only if the file actually opened is one we may read.

Checking a path and then reading it leaves a gap: a symlink swapped in
between, or a hard link (a second name, inside an allowed folder, of a file
outside it, say secrets.yaml) passes a check of the name. So a file is
opened once, without following a link at the last step, and the opened file
itself is checked: a regular file with a single name whose real path, asked
of the open descriptor, is inside an allowed folder. Its content is read
from that descriptor.

Blocking I/O: call it from the executor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

# Opening a FIFO must not wait for a writer (it is refused right after).
_OPEN_FLAGS = (
    os.O_RDONLY
    | os.O_NOFOLLOW
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
)
_READ_SIZE = 64 * 1024


class OutsideError(Exception):
    """The file opened is outside the allowed folders, or has another name."""


class NotAFileError(Exception):
    """The path names no regular file."""


def inside(path: Path, roots: Iterable[Path]) -> bool:
    """Whether the real path `path` is one of `roots` or below one."""
    return any(path.is_relative_to(root) for root in roots)


def read_checked(path: Path, roots: Iterable[Path], limit: int) -> bytes:
    """Read at most `limit` + 1 bytes of `path` if it may be read.

    `roots` are real (resolved) folders. Raises OutsideError, NotAFileError,
    or OSError (missing, unreadable).
    """
    real = path.resolve()  # links inside the allowed folders are fine
    if not inside(real, roots):  # no need to open it (the real check is below)
        raise OutsideError(str(path))
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as err:
        if err.errno == errno.ELOOP:  # swapped for a link meanwhile
            raise OutsideError(str(path)) from err
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotAFileError(str(path))
        if opened.st_nlink != 1 or not inside(_opened_path(fd), roots):
            raise OutsideError(str(path))
        os.set_blocking(fd, True)
        return _read(fd, limit)
    finally:
        os.close(fd)


def _opened_path(fd: int) -> Path:
    """Return the real path of an open file, as the kernel knows it."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl  # noqa: PLC0415 - POSIX only

        raw = fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024))  # type: ignore[attr-defined]
        return Path(os.fsdecode(raw.rstrip(b"\0")))
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError as err:
        raise OutsideError("cannot tell where the opened file is") from err


def _read(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit and (chunk := os.read(fd, _READ_SIZE)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
