"""The firmware on a real LittleFS image, and power cuts at every flash write.

`littlefs-python` runs the C littlefs on a RAM block device with the geometry
MicroPython uses on an ESP32 (block 4096, read/prog 32, cache 128, lookahead
32). `Flash` records every block program and erase; `image_after(k, torn)`
is the flash as a power cut would leave it after the first k operations,
optionally with operation k+1 half programmed (a torn write). The firmware
modules that touch files are pointed at the image through `board_fs`.
"""

from __future__ import annotations

import contextlib
import errno
from typing import TYPE_CHECKING, Any, Self

from littlefs import LittleFS, UserContext
from littlefs.errors import LittleFSError

if TYPE_CHECKING:
    from collections.abc import Iterator

BLOCK = 4096
GEOMETRY: dict[str, int] = {
    "block_size": BLOCK,
    "read_size": 32,
    "prog_size": 32,
    "cache_size": 128,
    "lookahead_size": 32,
}
# Firmware modules that open, rename, remove or stat files.
FILE_MODULES = ("ota_core", "ota_state", "ota_commit", "ota_setup", "ota_hello")


class Flash(UserContext):
    """A RAM flash chip that records what littlefs programs and erases."""

    def __init__(self, blocks: int) -> None:
        super().__init__(buffsize=blocks * BLOCK)
        self.blocks = blocks
        self.ops: list[tuple[str, int, int, bytes]] = []
        self.recording = False

    # UserContext's own methods log every call: too slow for a sweep.
    def read(self, cfg: Any, block: int, off: int, size: int) -> bytearray:
        start = block * BLOCK + off
        return self.buffer[start : start + size]

    def prog(self, cfg: Any, block: int, off: int, data: bytes) -> int:
        if self.recording:
            self.ops.append(("prog", block, off, bytes(data)))
        start = block * BLOCK + off
        self.buffer[start : start + len(data)] = data
        return 0

    def erase(self, cfg: Any, block: int) -> int:
        if self.recording:
            self.ops.append(("erase", block, 0, b""))
        self.buffer[block * BLOCK : (block + 1) * BLOCK] = b"\xff" * BLOCK
        return 0

    def start_recording(self) -> None:
        self.base = bytes(self.buffer)
        self.ops = []
        self.recording = True

    def image_after(self, count: int, *, torn: bool = False) -> bytearray:
        """The flash after `count` recorded operations (+ half of the next)."""
        image = bytearray(self.base)
        ops = self.ops[: count + 1] if torn else self.ops[:count]
        for i, (kind, block, off, data) in enumerate(ops):
            start = block * BLOCK + off
            if kind == "erase":
                image[start : start + BLOCK] = b"\xff" * BLOCK
            elif torn and i == count:
                half = len(data) // 2
                image[start : start + half] = data[:half]
            else:
                image[start : start + len(data)] = data
        return image


def mount(flash: Flash, *, fresh: bool = False) -> LittleFS:
    """Mount (or format and mount) littlefs on the flash, as MicroPython does."""
    fs = LittleFS(context=flash, block_count=flash.blocks, mount=not fresh, **GEOMETRY)
    if fresh:
        fs.format()
        fs.mount()
    return fs


def remount(image: bytearray, blocks: int) -> tuple[Flash, LittleFS]:
    """Power back on with `image`: a new chip holding it, mounted."""
    flash = Flash(blocks)
    flash.buffer[:] = image
    return flash, mount(flash)


def free_bytes(fs: LittleFS) -> int:
    return (fs.block_count - fs.used_block_count) * BLOCK


def _oserror(err: LittleFSError) -> OSError:
    code = -err.code if err.code else errno.EIO
    return OSError(code, str(err))


class _File:
    """A littlefs file whose errors are OSErrors, as on MicroPython."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any) -> Any:
            try:
                return attr(*args)
            except LittleFSError as err:
                raise _oserror(err) from err

        return call

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._inner.close()
        except LittleFSError as err:
            raise _oserror(err) from err


class BoardOs:
    """The `os` functions the firmware uses, on one littlefs."""

    def __init__(self, fs: LittleFS) -> None:
        self._fs = fs

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._fs, name)(*args)
        except LittleFSError as err:
            raise _oserror(err) from err

    def rename(self, a: str, b: str) -> None:
        self._call("rename", a, b)

    def remove(self, a: str) -> None:
        self._call("remove", a)

    def stat(self, a: str) -> tuple[int, ...]:
        st = self._call("stat", a)
        return (0x8000, 0, 0, 0, 0, 0, st.size, 0, 0, 0)

    def statvfs(self, _path: str) -> tuple[int, ...]:
        fs = self._fs
        free = fs.block_count - fs.used_block_count
        return (BLOCK, BLOCK, fs.block_count, free, free, 0, 0, 0, 0, 255)

    def listdir(self, path: str = "/") -> list[str]:
        return list(self._call("listdir", path))

    def urandom(self, n: int) -> bytes:
        import os

        return os.urandom(n)


@contextlib.contextmanager
def board_fs(fs: LittleFS) -> Iterator[None]:
    """Point the firmware's file modules (imported now) at `fs`."""
    board_os = BoardOs(fs)

    def board_open(name: str, mode: str = "r") -> Any:
        try:
            f = fs.open(name, mode)
        except LittleFSError as err:
            raise _oserror(err) from err
        return _File(f)

    saved = []
    for name in FILE_MODULES:
        module = __import__(name)
        saved.append((module, module.__dict__.get("os"), "open" in module.__dict__))
        if "os" in module.__dict__:
            module.os = board_os  # type: ignore[attr-defined]
        module.open = board_open  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, old_os, had_open in saved:
            if old_os is not None:
                module.os = old_os  # type: ignore[attr-defined]
            if not had_open:
                del module.open  # type: ignore[attr-defined]
