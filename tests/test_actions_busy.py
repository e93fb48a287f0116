"""install_files refuses a board that is installing before contacting any board.

The action checks every target before it connects to one: a board busy with
an install makes the whole call fail, so no other board of the call gets
half of a fleet update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from esp32_ota_sim.bleak_backend import add_slot_listener
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er

from custom_components.esp32_ota.const import DOMAIN
from tests.common import ENTITY_ID, app_source, make_board, setup_board
from tests.test_actions import install_files

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

OTHER_ADDRESS = "24:0A:C4:00:00:02"


async def test_a_busy_board_refuses_the_call_before_any_board_is_contacted(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    busy = await setup_board(hass, proxy, make_board())
    idle_board = make_board(OTHER_ADDRESS)
    await setup_board(hass, proxy, idle_board)
    idle = er.async_get(hass).async_get_entity_id("update", DOMAIN, OTHER_ADDRESS)
    assert idle is not None
    busy.runtime_data.installer.installing = True  # an install runs on it
    connections: list[str] = []
    remove = add_slot_listener(connections.append)
    before = idle_board.files()
    with pytest.raises(ServiceValidationError) as err:
        await install_files(
            hass,
            entity_id=[ENTITY_ID, idle],
            content={"app.py": app_source("2.0.0")},
        )
    remove()
    assert err.value.translation_key == "install_in_progress"
    assert connections == []
    assert idle_board.files() == before
    busy.runtime_data.installer.installing = False
