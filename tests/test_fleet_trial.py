"""A board waiting for its program to confirm a new version holds no slot.

With trial confirmation on, an install is not over until the board's program
confirms the new version (here: 30 s after it started). Meanwhile the board
needs no connection, so other boards use the slot; it reconnects, through the
queue like everyone, only to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esp32_ota_sim.bleak_backend import set_connection_slots
from esp32_ota_sim.board import FIRMWARE_DIR
from homeassistant.const import ATTR_ENTITY_ID

from custom_components.esp32_ota.const import DOMAIN
from tests.common import (
    app_source,
    board_address,
    board_entity,
    make_board,
    setup_board,
)
from tests.test_trial import UNCONFIRMED_MAIN

if TYPE_CHECKING:
    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

CONFIRM_AFTER_S = 30
GUARD = (FIRMWARE_DIR / "boot_guard.py").read_text()
GUARD_CONFIRMS_AT_30_S = GUARD.replace(
    "CONFIRM_AFTER_MS = 60000", f"CONFIRM_AFTER_MS = {CONFIRM_AFTER_S * 1000}"
)
assert GUARD_CONFIRMS_AT_30_S != GUARD
# The new version: its main.py leaves confirming to the boot guard.
ON_TRIAL = {"app.py": app_source("2.0.0"), "main.py": UNCONFIRMED_MAIN}


def trial_board(index: int) -> VirtualBoard:
    """A board whose new versions count as healthy after 30 s up."""
    board = make_board(board_address(index))
    board.write("boot_guard.py", GUARD_CONFIRMS_AT_30_S)
    board.reboot()
    return board


async def test_a_board_waiting_for_its_trial_holds_no_slot(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    set_connection_slots(proxy.source, 1)
    boards = [trial_board(index) for index in (1, 2)]
    for board in boards:
        await setup_board(hass, proxy, board)

    response = await hass.services.async_call(
        DOMAIN,
        "install_files",
        {ATTR_ENTITY_ID: [board_entity(1), board_entity(2)], "content": ON_TRIAL},
        blocking=True,
        return_response=True,
    )

    assert response is not None
    results: dict[str, Any] = response["boards"]  # type: ignore[assignment]
    assert {r["result"] for r in results.values()} == {"installed"}
    assert {r["trial"] for r in results.values()} == {False}  # both confirmed
    # The second board got the slot while the first waited for its program.
    assert max(r["queued_seconds"] for r in results.values()) < CONFIRM_AFTER_S
