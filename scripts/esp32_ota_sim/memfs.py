"""An in-memory board filesystem with the MicroPython `os` subset the firmware uses.

It behaves like LittleFS on an ESP32 where that matters for OTA safety:

- `rename` replaces the destination atomically.
- Data written to an open file is only durable after `flush()` or `close()`;
  a power cut or a reset loses everything written since (the board never
  closes files for the firmware). Creating a file is durable at once (an
  empty file survives a cut made before the first flush).
- Space is counted in 4096-byte blocks; a write that does not fit raises
  `OSError(28)` (ENOSPC), whatever the file (journal and state files too).
  Rewriting a file ("w") is copy-on-write: the new blocks are needed while
  the old ones are still held, until the flush.
- Writing costs time, reported to `cost_sink(ms)` (the board adds it to the
  line being processed), at the rates of its `FlashSpeed`:
  `program_us_per_byte` for every byte, `erase_ms_per_block` each time a
  file grows into a new block, and `commit_ms` for every metadata commit
  (flush or close of written data, creating or truncating, rename, remove).
  `VirtualBoard` sets the ESP32's (`speed.ESP32_FLASH`); a bare `MemFS`
  costs nothing.

Power loss: `cut_power_at(n)` makes the n-th mutating operation (open for
writing, write, flush, close of a written file, rename, remove, mkdir, rmdir)
raise `PowerLoss` instead of happening. From then on every operation raises
`PowerLoss` until `power_on()`; files still open are gone.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["FlashSpeed", "MemFS", "MemFile", "PowerLoss"]

_S_IFDIR = 0x4000
_S_IFREG = 0x8000


class PowerLoss(BaseException):
    """The board lost power in the middle of a filesystem operation.

    A BaseException so that firmware `except Exception` blocks cannot swallow it.
    """


class _Inode:
    __slots__ = ("data",)

    def __init__(self, data: bytes = b"") -> None:
        self.data = data


def _blocks(size: int, block_size: int) -> int:
    return -(-size // block_size)


@dataclass(frozen=True)
class FlashSpeed:
    """How long writing to the flash takes (all 0: no time at all)."""

    program_us_per_byte: float = 0.0
    erase_ms_per_block: float = 0.0
    commit_ms: float = 0.0


class MemFS:
    """The board's flash: a dict of durable files plus a set of directories."""

    def __init__(
        self,
        *,
        total_blocks: int = 384,
        block_size: int = 4096,
        reserved_blocks: int = 2,
        seed: int = 0,
        flash: FlashSpeed = FlashSpeed(),
    ) -> None:
        self.block_size = block_size
        self.flash = flash
        self.cost_sink: Callable[[float], None] | None = None
        self.total_blocks = total_blocks
        self.reserved_blocks = reserved_blocks
        self.free_blocks_override: int | None = None
        self.ops = 0
        self.powered = True
        self.power_losses = 0
        self._cut_at: int | None = None
        self._files: dict[str, _Inode] = {}
        self._dirs: set[str] = {"/"}
        self._open: set[MemFile] = set()
        self._random = random.Random(seed)
        self.cwd = "/"

    # -- power ---------------------------------------------------------------

    def cut_power_at(self, op_count: int | None) -> None:
        """Make mutating operation number `op_count` (1-based, from now) fail."""
        self._cut_at = None if op_count is None else self.ops + op_count

    def power_on(self) -> None:
        """Restore power after a cut; files that were open stay lost."""
        self.powered = True

    def _op(self) -> None:
        """Count one mutating operation; cut the power when its turn has come."""
        self._check_power()
        self.ops += 1
        if self._cut_at is not None and self.ops >= self._cut_at:
            self._cut_at = None
            self.powered = False
            self.power_losses += 1
            for handle in list(self._open):
                handle._lose()
            self._open.clear()
            raise PowerLoss(f"power lost at filesystem operation {self.ops}")

    def _check_power(self) -> None:
        if not self.powered:
            raise PowerLoss("the board has no power")

    # -- paths ---------------------------------------------------------------

    def abspath(self, path: str) -> str:
        """Normalise `path` against the current directory."""
        if not path.startswith("/"):
            path = self.cwd.rstrip("/") + "/" + path
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def _parent_exists(self, path: str) -> bool:
        parent = path.rsplit("/", 1)[0] or "/"
        return parent in self._dirs

    # -- whole-file helpers (for tests and the board, not the firmware) ------

    def write_file(self, path: str, data: bytes) -> None:
        """Store a durable file without counting an operation."""
        path = self.abspath(path)
        if not self._parent_exists(path):
            raise OSError(errno.ENOENT)
        self._files[path] = _Inode(bytes(data))

    def read_file(self, path: str) -> bytes:
        """The durable content of a file."""
        inode = self._files.get(self.abspath(path))
        if inode is None:
            raise OSError(errno.ENOENT)
        return inode.data

    def exists(self, path: str) -> bool:
        """True for an existing file or directory."""
        path = self.abspath(path)
        return path in self._files or path in self._dirs

    def snapshot(self) -> dict[str, bytes]:
        """Every durable file: paths relative to `/` mapped to their content."""
        return {path[1:]: inode.data for path, inode in sorted(self._files.items())}

    def used_blocks(self) -> int:
        """Blocks in use, metadata reserve included."""
        size = self.block_size
        return (
            self.reserved_blocks
            + len(self._dirs)
            - 1
            + sum(_blocks(len(inode.data), size) for inode in self._files.values())
        )

    def free_blocks(self) -> int:
        """Blocks still free (or the configured override)."""
        if self.free_blocks_override is not None:
            return self.free_blocks_override
        return max(0, self.total_blocks - self.used_blocks())

    def _charge(self, nbytes: int, old_size: int, new_size: int) -> None:
        sink = self.cost_sink
        if sink is None:
            return
        size = self.block_size
        erases = max(0, _blocks(new_size, size) - _blocks(old_size, size))
        flash = self.flash
        cost = nbytes * flash.program_us_per_byte / 1000
        cost += erases * flash.erase_ms_per_block
        if cost:
            sink(cost)

    def _commit(self) -> None:
        """A metadata commit (LittleFS programs its metadata pair)."""
        if self.cost_sink is not None and self.flash.commit_ms:
            self.cost_sink(self.flash.commit_ms)

    def _check_space(self, inode: _Inode, new_size: int, *, rewrite: bool) -> None:
        held = 0 if rewrite else _blocks(len(inode.data), self.block_size)
        grow = _blocks(new_size, self.block_size) - held
        if grow > 0 and grow > self.free_blocks():
            raise OSError(errno.ENOSPC, "No space left on device")

    # -- MicroPython `open` --------------------------------------------------

    def open(self, path: str, mode: str = "r", *_args: Any, **_kwargs: Any) -> MemFile:
        """MicroPython's `open` over this filesystem (modes r, w, a, each + b)."""
        self._check_power()
        kind = mode.replace("b", "").replace("t", "")
        binary = "b" in mode
        if kind not in ("r", "w", "a", "r+"):
            raise ValueError(f"unsupported mode {mode!r}")
        path = self.abspath(path)
        if path in self._dirs:
            raise OSError(errno.EISDIR)
        inode = self._files.get(path)
        if kind in ("r", "r+"):
            if inode is None:
                raise OSError(errno.ENOENT)
            if kind == "r+":
                self._op()
            handle = MemFile(
                self, inode, binary, writable=kind == "r+", data=inode.data
            )
        else:
            if not self._parent_exists(path):
                raise OSError(errno.ENOENT)
            self._op()
            if inode is None:
                # LittleFS commits a new directory entry at once.
                inode = _Inode()
                self._files[path] = inode
            self._commit()
            start = b"" if kind == "w" else inode.data
            handle = MemFile(self, inode, binary, writable=True, data=start)
            if kind == "a":
                handle.seek(0, 2)
            # Truncation by "w" only becomes durable with the first flush.
            handle._dirty = kind == "w" and bool(inode.data)
            handle._rewrite = kind == "w" and bool(inode.data)
        self._open.add(handle)
        return handle

    def _closed(self, handle: MemFile) -> None:
        self._open.discard(handle)

    # -- MicroPython `os` ----------------------------------------------------

    def rename(self, old: str, new: str) -> None:
        """Atomic rename, replacing an existing destination (LittleFS semantics)."""
        self._check_power()
        old, new = self.abspath(old), self.abspath(new)
        if old in self._dirs:
            if new in self._files or new in self._dirs:
                raise OSError(errno.EEXIST)
            self._op()
            self._dirs = {
                new + d[len(old) :] if d == old or d.startswith(old + "/") else d
                for d in self._dirs
            }
            self._files = {
                (new + p[len(old) :] if p.startswith(old + "/") else p): i
                for p, i in self._files.items()
            }
            return
        if old not in self._files:
            raise OSError(errno.ENOENT)
        if new in self._dirs or not self._parent_exists(new):
            raise OSError(errno.EISDIR if new in self._dirs else errno.ENOENT)
        self._op()
        self._commit()
        self._files[new] = self._files.pop(old)

    def remove(self, path: str) -> None:
        """Delete a file."""
        self._check_power()
        path = self.abspath(path)
        if path in self._dirs:
            raise OSError(errno.EISDIR)
        if path not in self._files:
            raise OSError(errno.ENOENT)
        self._op()
        self._commit()
        del self._files[path]

    unlink = remove

    def mkdir(self, path: str) -> None:
        """Create a directory."""
        self._check_power()
        path = self.abspath(path)
        if path in self._dirs or path in self._files:
            raise OSError(errno.EEXIST)
        if not self._parent_exists(path):
            raise OSError(errno.ENOENT)
        self._op()
        self._dirs.add(path)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        self._check_power()
        path = self.abspath(path)
        if path not in self._dirs or path == "/":
            raise OSError(errno.ENOENT)
        if self._children(path):
            raise OSError(errno.ENOTEMPTY)
        self._op()
        self._dirs.discard(path)

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {
            p[len(prefix) :].split("/", 1)[0]
            for p in [*self._files, *self._dirs]
            if p.startswith(prefix) and p != prefix
        }
        return sorted(names)

    def listdir(self, path: str = "") -> list[str]:
        """Names in a directory."""
        self._check_power()
        path = self.abspath(path or self.cwd)
        if path not in self._dirs:
            raise OSError(errno.ENOENT)
        return self._children(path)

    def ilistdir(self, path: str = "") -> Iterator[tuple[str, int, int, int]]:
        """(name, type, inode, size) tuples, as MicroPython's LittleFS yields them."""
        base = self.abspath(path or self.cwd).rstrip("/")
        for number, name in enumerate(self.listdir(path), start=1):
            full = base + "/" + name
            if full in self._dirs:
                yield (name, _S_IFDIR, number, 0)
            else:
                yield (name, _S_IFREG, number, len(self._files[full].data))

    def stat(
        self, path: str
    ) -> tuple[int, int, int, int, int, int, int, int, int, int]:
        """MicroPython stat tuple; the size is at index 6."""
        self._check_power()
        path = self.abspath(path)
        if path in self._dirs:
            return (_S_IFDIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        inode = self._files.get(path)
        if inode is None:
            raise OSError(errno.ENOENT)
        return (_S_IFREG, 0, 0, 0, 0, 0, len(inode.data), 0, 0, 0)

    def statvfs(
        self, _path: str = "/"
    ) -> tuple[int, int, int, int, int, int, int, int, int, int]:
        """(bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, max)."""
        self._check_power()
        free = self.free_blocks()
        size = self.block_size
        return (size, size, self.total_blocks, free, free, 0, 0, 0, 0, 255)

    def getcwd(self) -> str:
        """The current directory."""
        return self.cwd

    def chdir(self, path: str) -> None:
        """Change the current directory."""
        path = self.abspath(path)
        if path not in self._dirs:
            raise OSError(errno.ENOENT)
        self.cwd = path

    def urandom(self, count: int) -> bytes:
        """Seeded random bytes (deterministic per board)."""
        return self._random.randbytes(count)

    def sync(self) -> None:
        """Nothing to do: durability is per file, on flush/close."""


class MemFile:
    """An open file. Writes stay in the handle until flush()/close()."""

    def __init__(
        self, fs: MemFS, inode: _Inode, binary: bool, *, writable: bool, data: bytes
    ) -> None:
        self._fs = fs
        self._inode = inode
        self._binary = binary
        self._writable = writable
        self._buf = bytearray(data)
        self._pos = 0
        self._dirty = False
        self._rewrite = False  # "w" over durable data: old blocks held until flush
        self._lost = False
        self.closed = False

    # -- state ---------------------------------------------------------------

    def _lose(self) -> None:
        self._lost = True
        self.closed = True

    def _check(self) -> None:
        self._fs._check_power()
        if self._lost or self.closed:
            raise OSError(errno.EBADF)

    # -- reading -------------------------------------------------------------

    def read(self, size: int = -1) -> Any:
        """Read up to `size` bytes (all when negative); str in text mode."""
        self._check()
        end = (
            len(self._buf)
            if size is None or size < 0
            else min(len(self._buf), self._pos + size)
        )
        chunk = bytes(self._buf[self._pos : end])
        self._pos = max(self._pos, end)
        return chunk if self._binary else chunk.decode()

    def readinto(self, buf: Any) -> int:
        """Fill `buf` from the current position; returns the count."""
        self._check()
        view = memoryview(buf).cast("B")
        chunk = self._buf[self._pos : self._pos + len(view)]
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def readline(self) -> Any:
        """One line including its newline."""
        self._check()
        end = self._buf.find(b"\n", self._pos)
        end = len(self._buf) if end < 0 else end + 1
        chunk = bytes(self._buf[self._pos : end])
        self._pos = end
        return chunk if self._binary else chunk.decode()

    def __iter__(self) -> Iterator[Any]:
        while line := self.readline():
            yield line

    # -- writing -------------------------------------------------------------

    def write(self, data: Any) -> int:
        """Write at the current position; not durable until flush/close."""
        self._check()
        if not self._writable:
            raise OSError(errno.EBADF)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        end = self._pos + len(raw)
        self._fs._check_space(
            self._inode, max(end, len(self._buf)), rewrite=self._rewrite
        )
        self._fs._op()
        old_size = len(self._buf)
        if self._pos > len(self._buf):
            self._buf.extend(bytes(self._pos - len(self._buf)))
        self._buf[self._pos : end] = raw
        self._pos = end
        self._dirty = True
        self._fs._charge(len(raw), old_size, len(self._buf))
        return len(raw)

    def flush(self) -> None:
        """Make everything written so far durable."""
        self._check()
        if self._writable and self._dirty:
            self._fs._op()
            self._fs._commit()
            self._inode.data = bytes(self._buf)
            self._dirty = False
            self._rewrite = False

    def close(self) -> None:
        """Flush and close; closing twice is harmless."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._fs._closed(self)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position (whence 0 start, 1 current, 2 end)."""
        self._check()
        base = (0, self._pos, len(self._buf))[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        """The current position."""
        self._check()
        return self._pos

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self._lost:
            self.close()
