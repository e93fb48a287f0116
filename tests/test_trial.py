"""Trial-boot confirmation: whether an install waits for the board's program."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from esp32_ota_sim.board import FIRMWARE_DIR
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.esp32_ota.const import CONF_CONFIRM_TRIAL, TRIAL_TIMEOUT
from custom_components.esp32_ota.history import EVENT_INSTALL
from tests.common import (
    ENTITY_ID,
    ProgressRecorder,
    app_source,
    board_with_release,
    install,
    install_fails,
    make_board,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import Event, HomeAssistant

    from custom_components.esp32_ota.coordinator import BoardCoordinator
    from tests.bluetooth_helpers import SimProxyScanner

# A new main.py that does not call confirm() (the demo's does not): the new
# version stays on trial until the boot guard confirms it after 30 s up ...
MAIN = (FIRMWARE_DIR / "main.py").read_text()
UNCONFIRMED_MAIN = MAIN + "\n# version 1.1.0\n"
assert "boot_guard.confirm()" not in MAIN
# ... unless the board is set to leave confirming to the program alone.
GUARD = (FIRMWARE_DIR / "boot_guard.py").read_text()
PROGRAM_CONFIRMS_ONLY = GUARD.replace(
    "CONFIRM_AFTER_MS = 30000", "CONFIRM_AFTER_MS = 0"
)
assert PROGRAM_CONFIRMS_ONLY != GUARD


# 1.1.0 with the main.py above: it goes on trial and stays there.
ON_TRIAL = {"app.py": app_source("1.1.0"), "main.py": UNCONFIRMED_MAIN}


async def when_on_trial(
    board: VirtualBoard, coordinator: BoardCoordinator, action: Callable[[], Any]
) -> None:
    """Do `action` on the board once Home Assistant has seen it on trial."""
    seen = asyncio.Event()

    def check() -> None:
        info = coordinator.data.board_info
        if (
            coordinator.installer.installing
            and info is not None
            and info.trial is not None
        ):
            seen.set()

    remove = coordinator.async_add_listener(check)
    await seen.wait()
    remove()
    action()


def assert_installed(
    hass: HomeAssistant, finished: Event[dict[str, Any]], *, trial: bool
) -> None:
    """1.1.0 is installed, still on trial or not, as event and entity say."""
    assert finished.data["type"] == "finished"
    assert finished.data["trial"] is trial
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["trial"] is trial
    assert state.attributes["installed_version"] == "1.1.0"


async def test_install_waits_for_the_board_to_confirm(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy, files=ON_TRIAL)
    events = async_capture_events(hass, EVENT_INSTALL)
    confirming = hass.async_create_task(
        when_on_trial(
            board, entry.runtime_data, lambda: board.module("boot_guard").confirm()
        )
    )
    await install(hass)
    await confirming
    assert_installed(hass, events[-1], trial=False)


async def test_the_boot_guard_confirms_after_30_s_up(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """The program never confirms; the firmware's own 30 s rule does."""
    await board_with_release(hass, proxy, files=ON_TRIAL)
    events = async_capture_events(hass, EVENT_INSTALL)
    progress = ProgressRecorder(hass)
    began = hass.loop.time()
    await install(hass)
    assert_installed(hass, events[-1], trial=False)
    # The 30 s on trial is a phase of its own, short of 100 %.
    assert progress.phases[-2:] == ["checking", "trial"]
    assert progress.percentages[-1] == 96
    assert 30 <= hass.loop.time() - began < TRIAL_TIMEOUT


async def test_an_unconfirmed_version_fails_the_install(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board()
    board.write("boot_guard.py", PROGRAM_CONFIRMS_ONLY)
    board.reboot()
    await board_with_release(hass, proxy, files=ON_TRIAL, board=board)
    err = await install_fails(hass, "trial_unconfirmed")
    assert f"did not confirm they started within {int(TRIAL_TIMEOUT)} seconds" in str(
        err
    )
    assert board.read("main.py") == UNCONFIRMED_MAIN.encode()


async def test_accepting_the_trial(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    options = {CONF_CONFIRM_TRIAL: False}
    await board_with_release(hass, proxy, files=ON_TRIAL, options=options)
    events = async_capture_events(hass, EVENT_INSTALL)
    await install(hass)
    assert_installed(hass, events[-1], trial=True)


async def test_a_rollback_while_waiting_fails_the_install(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy, files=ON_TRIAL)

    def crash_twice() -> None:  # the new scripts keep resetting the board
        board.reboot()
        board.reboot()

    crashing = hass.async_create_task(
        when_on_trial(board, entry.runtime_data, crash_twice)
    )
    err = await install_fails(hass, "rolled_back")
    await crashing
    assert "rejected version 1.1.0" in str(err)
    assert board.read("main.py") == MAIN.encode()
