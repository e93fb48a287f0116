"""Power cuts at every flash write of an update, on a nearly full LittleFS.

The real C littlefs (littlefs-python) with an ESP32's geometry holds the
board's files. Two staged files (app.py, main.py) fill the flash to 90-100 %;
then APPLY runs, and the board boots again and again without the new version
ever confirming. Every block program and erase of that run is recorded, and
for every prefix - with the next program torn in half too - the board is
powered back on from that image. Each must end with one whole version (old
or new), no journal, an OTA engine that answers, and - when the new version
was installed - a trial that counts its boots until the old version is back:
no board may need USB.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

from .harness import cpython_board
from .littlefs_flash import Flash, board_fs, free_bytes, mount, remount

if TYPE_CHECKING:
    from pathlib import Path

    from littlefs import LittleFS

BLOCKS = 48  # a small partition: same geometry, fewer blocks to sweep
OLD = {"app.py": "VERSION = '1.0.0'\n" + "# old\n" * 900, "main.py": "# old main\n"}
NEW = {"app.py": "VERSION = '1.1.0'\n" + "# new\n" * 1100, "main.py": "# new main\n"}
FORGET = ("boot_guard", "boot_crash", "ota_")


def _crc(text: str) -> str:
    return f"{binascii.crc32(text.encode()) & 0xFFFFFFFF:08x}"


def _write(fs: LittleFS, name: str, data: str | bytes) -> None:
    with fs.open(name, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _read(fs: LittleFS, name: str) -> str | None:
    try:
        with fs.open(name, "rb") as f:
            return bytes(f.read()).decode()
    except OSError:
        return None


def _staged_board(free_blocks: int) -> Flash:
    """Old files installed, new ones staged, `free_blocks` blocks left free."""
    flash = Flash(BLOCKS)
    fs = mount(flash, fresh=True)
    state: dict[str, Any] = {"files": {}, "staged": {}, "trial": None, "rollback": None}
    for name, text in OLD.items():
        _write(fs, name, text)
        state["files"][name] = {"size": len(text), "crc": _crc(text), "ver": "1.0.0"}
    for name, text in NEW.items():
        _write(fs, name + ".new", text)
        state["staged"][name] = {
            "size": len(text),
            "crc": _crc(text),
            "ver": "1.1.0",
            "ok": True,
        }
    _write(fs, "ota_state.json", json.dumps(state))
    filler = free_bytes(fs) - (free_blocks + 1) * 4096
    if filler > 0:
        _write(fs, "data.bin", b"\0" * filler)
    while free_bytes(fs) > free_blocks * 4096:  # metadata took a block or two
        _write(fs, f"pad{free_bytes(fs)}", b"\0" * 4000)
    fs.unmount()
    return flash


def _forget() -> None:
    for name in list(sys.modules):
        if name.startswith(FORGET):
            del sys.modules[name]


def _boot(fs: LittleFS) -> str:
    """A start: boot.py's guard (run_main is MicroPython's business)."""
    _forget()
    import boot_guard

    with board_fs(fs):
        return str(boot_guard.boot())


def _apply(fs: LittleFS, reserve: int | None) -> list[str]:
    _forget()
    import machine
    import ota_setup
    from ota_manager import OTAManager

    if reserve is not None:  # firmware before the reserve: 0
        ota_setup.COMMIT_RESERVE = reserve
    replies: list[str] = []
    with board_fs(fs):
        manager = OTAManager(replies.append)
        with contextlib.suppress(machine.Reset):  # OK, then the reset
            manager.handle("OTA:APPLY:app.py,main.py:")
    return replies


def _version(fs: LittleFS) -> str:
    """Which whole version the board holds ("old"/"new"), else why not."""
    files = {name: _read(fs, name) for name in OLD}
    for label, version in (("old", OLD), ("new", NEW)):
        if files == version:
            return label
    return f"mixed {sorted(k for k, v in files.items() if v not in (OLD[k], NEW[k]))}"


def _engine_answers(fs: LittleFS) -> bool:
    _forget()
    from ota_manager import OTAManager

    replies: list[str] = []
    with board_fs(fs):
        OTAManager(replies.append).handle("OTA:ABORT")
    return replies == ["OTA:ABORTED"]


def _needs_usb(fs: LittleFS) -> str | None:
    """Power is back: boot until the board settles; why it needs USB, or None."""
    for _ in range(5):
        status = _boot(fs)
        if _read(fs, "ota_journal.json") is not None:
            return f"journal left after a {status} boot"
        version = _version(fs)
        if version not in ("old", "new"):
            return version
        if status != "trial":
            if version != "old" and status != "normal":
                return f"{status} boot on {version} files"
            if version == "new":
                return "new files without a trial (never rolled back)"
            return None if _engine_answers(fs) else "OTA engine does not answer"
    return "the trial never ends"


def _fill(fs: LittleFS) -> None:
    """The application logs until the flash is full."""
    n = 0
    while free_bytes(fs) > 0:
        try:
            _write(fs, f"log{n}", b"\0" * 4096)
        except Exception:
            break
        n += 1


def _sweep(free_blocks: int, reserve: int | None, fill: bool) -> dict[str, Any]:
    flash = _staged_board(free_blocks)
    fs = mount(flash)
    flash.start_recording()
    replies = _apply(fs, reserve)
    app_writes = range(len(flash.ops), len(flash.ops))
    if fill:  # the application's own writes: not cut (not the updater's)
        _fill(fs)
        app_writes = range(app_writes.start, len(flash.ops))
    for _ in range(4):  # trial boots until the rollback (never confirmed)
        _boot(fs)
    flash.recording = False
    cuts = 0
    usb: list[str] = []
    for count in range(len(flash.ops) + 1):
        if count in app_writes:
            continue
        for torn in (False, True):
            if torn and (count == len(flash.ops) or flash.ops[count][0] != "prog"):
                continue
            cuts += 1
            try:
                _, board = remount(flash.image_after(count, torn=torn), BLOCKS)
            except Exception as err:
                usb.append(f"cut {count} torn={torn}: does not mount: {err}")
                continue
            why = _needs_usb(board)
            if why is not None:
                usb.append(f"cut {count} torn={torn}: {why}")
    return {"apply": replies, "ops": len(flash.ops), "cuts": cuts, "usb": usb}


@pytest.mark.parametrize(
    ("free_blocks", "reserve", "fill"),
    [
        (0, None, False),
        (2, None, False),
        (4, None, False),  # refused: 5 blocks are needed (ota_setup.COMMIT_RESERVE)
        (5, None, False),
        (7, None, False),
        # the application fills the flash while the new version is on trial
        (5, None, True),
        # a journal left by firmware without the reserve: recovery rolls back
        (1, 0, False),
        (4, 0, True),
    ],
)
def test_power_cuts_near_a_full_flash(
    free_blocks: int,
    reserve: int | None,
    fill: bool,
    tmp_path: Path,
    record_property: Any,
) -> None:
    with cpython_board(tmp_path):
        result = _sweep(free_blocks, reserve, fill)
    figures = {k: v for k, v in result.items() if k != "usb"}
    figures["boards_needing_usb"] = len(result["usb"])
    record_property("figures", figures)
    print(f"free={free_blocks} reserve={reserve} fill={fill}: {figures}")
    assert result["usb"] == [], result["usb"][:10]
