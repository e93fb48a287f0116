"""A board waiting for its program to confirm a new version holds no slot.

With trial confirmation on, an install is not over until the board's program
confirms the new version (here: 30 s after it started). Meanwhile the board
needs no connection, so other boards use the slot; it reconnects, through the
queue like everyone, only to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from esp32_ota_sim.bleak_backend import set_connection_slots

from tests.common import board_entity, setup_board
from tests.fleet_house import CONFIRM_AFTER_S, ON_TRIAL, install_files, trial_board

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner


async def test_a_board_waiting_for_its_trial_holds_no_slot(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    set_connection_slots(proxy.source, 1)
    boards = [trial_board(index) for index in (1, 2)]
    for board in boards:
        await setup_board(hass, proxy, board)

    results = await install_files(hass, [board_entity(1), board_entity(2)], ON_TRIAL)

    assert {r["result"] for r in results.values()} == {"installed"}
    assert {r["trial"] for r in results.values()} == {False}  # both confirmed
    # The second board got the slot while the first waited for its program.
    assert max(r["queued_seconds"] for r in results.values()) < CONFIRM_AFTER_S
