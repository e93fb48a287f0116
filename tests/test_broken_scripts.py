"""Broken scripts: refused before sending, or rolled back and explained.

End to end on virtual boards through the virtual proxy: the board runs the
real firmware, which saves the exception of a failed trial boot; Home
Assistant names it in the install error, the failed event and the repair.
(The firmware side of each failure - crash at import, crash after 5 s, hang
with the watchdog, broken main.py - runs on MicroPython in
tests/firmware/scenarios/fw_boot.py.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esp32_ota_sim.board import FIRMWARE_DIR
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.esp32_ota.const import DOMAIN
from custom_components.esp32_ota.history import EVENT_INSTALL
from custom_components.esp32_ota.script_check import first_script_error
from tests.common import (
    BOARD_ADDRESS,
    ENTITY_ID,
    app_source,
    board_with_release,
    install_fails,
    make_board,
)

if TYPE_CHECKING:
    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from tests.bluetooth_helpers import SimProxyScanner

APP_1_0_0 = (FIRMWARE_DIR / "app.py").read_bytes()
MAIN = (FIRMWARE_DIR / "main.py").read_text()
# The demo main.py with a misspelt name in start(): it fails at every start.
BROKEN_MAIN = MAIN.replace('def start():\n    """', 'def start():\n    sensr\n    """')
BROKEN_MAIN_LINE = BROKEN_MAIN.splitlines().index("    sensr") + 1


def rollback_issue(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    found = ir.async_get(hass).async_get_issue(DOMAIN, f"rolled_back_{entry.entry_id}")
    assert found is not None
    assert found.translation_placeholders is not None
    return found.translation_placeholders["error"]


async def rejected(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    files: dict[str, str],
    board: VirtualBoard | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """Install 1.1.0 = `files` on `board`; (error, repair text, failed event data)."""
    board, entry = await board_with_release(hass, proxy, files=files, board=board)
    events = async_capture_events(hass, EVENT_INSTALL)
    err = await install_fails(hass, "rolled_back")
    assert board.read("app.py") == APP_1_0_0  # the old version runs again
    assert board.read("main.py") == MAIN.encode()
    failed = events[-1].data
    assert failed["type"] == "failed"
    assert failed["reason"] == "rolled_back"
    return str(err), rollback_issue(hass, entry), failed


async def test_crash_at_import_is_rolled_back_and_named(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    files = {"app.py": app_source("1.1.0", crash=True)}
    error, repair, event = await rejected(hass, proxy, files)
    cause = "app.py line 5: RuntimeError: this version is broken"
    expected = f"{cause} \u2014 the board went back to 1.0.0"
    assert expected in error
    assert expected in repair
    assert expected in event["error"]
    assert "rejected version 1.1.0" in error


async def test_crash_5_s_after_start_is_rolled_back_and_named(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """app.py imports fine; its loop() raises 5 s later, on every trial boot."""
    crash = (
        "import time\n"
        "_STARTED = time.ticks_ms()\n"
        "def loop():\n"
        "    if time.ticks_diff(time.ticks_ms(), _STARTED) >= 5000:\n"
        "        raise RuntimeError('broke after 5 s')\n"
    )
    app = app_source("1.1.0") + crash
    line = app.splitlines().index("        raise RuntimeError('broke after 5 s')") + 1
    began = hass.loop.time()
    error, repair, event = await rejected(hass, proxy, {"app.py": app})
    cause = f"app.py line {line}: RuntimeError: broke after 5 s"
    expected = f"{cause} \u2014 the board went back to 1.0.0"
    assert expected in error
    assert expected in repair
    assert expected in event["error"]
    assert hass.loop.time() - began >= 10  # two trial boots of 5 s each


async def test_hang_with_watchdog_is_rolled_back_and_named(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """app.loop() never returns on a board whose boot.py starts an 8 s watchdog."""
    board = make_board(BOARD_ADDRESS)
    boot = board.read("boot.py").decode()
    board.write("boot.py", boot.replace("# boot_guard.WDT_MS", "boot_guard.WDT_MS"))
    board.reboot()
    assert board.module("boot_guard").WDT_MS == 8000
    hang = "import time\ndef loop():\n    while True:\n        time.sleep_ms(100)\n"
    began = hass.loop.time()
    files = {"app.py": app_source("1.1.0") + hang}
    error, repair, event = await rejected(hass, proxy, files, board)
    expected = "watchdog: hung: not fed \u2014 the board went back to 1.0.0"
    assert expected in error
    assert expected in repair
    assert expected in event["error"]
    assert board.read("boot.py").decode().count("\nboot_guard.WDT_MS = 8000") == 1
    assert hass.loop.time() - began >= 16  # two trial boots hung 8 s each
    assert [r.outcome for r in board.restarts[-2:]] == ["watchdog", "watchdog"]


async def test_broken_main_py_is_rolled_back_and_named(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    files = {"app.py": app_source("1.1.0"), "main.py": BROKEN_MAIN}
    error, repair, _ = await rejected(hass, proxy, files)
    cause = f"main.py line {BROKEN_MAIN_LINE}: NameError: name 'sensr' is not defined"
    assert cause in error
    assert cause in repair


async def test_syntax_error_never_reaches_the_board(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    broken = app_source("1.1.0").replace("def handle(line):", "def handle(line:")
    line = broken.splitlines().index("def handle(line:") + 1
    board, _ = await board_with_release(hass, proxy, files={"app.py": broken})
    writes = board.fs.ops
    events = async_capture_events(hass, EVENT_INSTALL)
    err = await install_fails(hass, "script_error")
    assert str(err).startswith(f"app.py line {line}: '(' was never closed.")
    assert "nothing was sent to ESP32-OTA-0001" in str(err)
    assert board.read("app.py") == APP_1_0_0
    assert not board.fs.exists("app.py.new")  # not even staged
    assert events == []  # refused before the install began
    assert board.fs.ops == writes  # no file written on the board
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["installed_version"] == "1.0.0"


def test_script_check_names_file_line_and_message() -> None:
    ok = {"app.py": b"x = 1\n", "data.json": b"{not python"}
    assert first_script_error(ok) is None
    bad = {"app.py": b"x = 1\n", "main.py": b"if x\n    pass\n", "z.py": b"("}
    error = first_script_error(bad)
    assert error is not None
    assert (error.file, error.line, error.message) == ("main.py", 1, "expected ':'")
    assert error.where == "main.py line 1"
    nul = first_script_error({"a.py": b"x = 1\x00\n"})
    assert nul is not None
    assert nul.file == "a.py"
    indent = first_script_error({"a.py": b"def f():\nreturn 1\n"})
    assert indent is not None
    assert indent.line == 2
