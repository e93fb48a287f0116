"""A house with several proxies: most boards are heard by more than one.

Home Assistant's Bluetooth wrapper picks the path of every connection itself
(by signal, free slots, failures and connections in progress), so the fleet
can only decide *when* a board connects, never *through which proxy*.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from bleak.backends.device import BLEDevice
from esp32_ota_sim.bleak_backend import SimBleakClient

from custom_components.esp32_ota.fleet import get_fleet
from tests.bluetooth_helpers import async_register_sim_proxy
from tests.common import board_address, make_board

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

pytestmark = pytest.mark.virtual_clock


@pytest.fixture
async def proxies(
    hass: HomeAssistant, enable_bluetooth: None
) -> AsyncIterator[list[SimProxyScanner]]:
    """Three ESPHome-proxy-like scanners with 3 connection slots each."""
    registered = [
        async_register_sim_proxy(hass, f"AA:BB:CC:DD:EE:{index:02X}", f"proxy-{index}")
        for index in (1, 2, 3)
    ]
    yield [scanner for scanner, _cleanup in registered]
    for _scanner, cleanup in registered:
        cleanup()


async def _connect_foreign(proxy: SimProxyScanner, index: int) -> SimBleakClient:
    """Another integration's connection through `proxy` (to a board of its own)."""
    board = make_board(board_address(index))
    proxy.inject(board)
    client = SimBleakClient(BLEDevice(board.address, None, {"source": proxy.source}))
    await client.connect(pair=False)
    return client


async def test_a_slot_freed_on_another_proxy_admits_a_waiting_board(
    hass: HomeAssistant, proxies: list[SimProxyScanner]
) -> None:
    first, second, _third = proxies
    fleet = get_fleet(hass)
    # Our boards 1-3 are heard by the first proxy only and hold its slots.
    for index in (1, 2, 3):
        first.inject(make_board(board_address(index)))
    held = [fleet.slot(board_address(index)) for index in (1, 2, 3)]
    for slot in held:
        await slot.__aenter__()
    # Board 4 is heard by the first and the second proxy; another
    # integration fills the second one.
    waiting = make_board(board_address(4))
    first.inject(waiting, rssi=-70)
    second.inject(waiting, rssi=-60)
    foreign = [await _connect_foreign(second, 0x40 + index) for index in range(3)]
    admitted = hass.loop.create_future()

    async def wait_for_slot() -> None:
        async with fleet.slot(waiting.address):
            admitted.set_result(True)

    task = hass.async_create_task(wait_for_slot())
    await asyncio.sleep(0)
    assert fleet.queued() == [waiting.address]

    # The other integration lets go of one connection: habluetooth tells
    # every allocation listener, and the fleet admits board 4 from there.
    await foreign[0].disconnect()

    assert await admitted
    await task
    assert fleet.queued() == []
    for slot in held:
        await slot.__aexit__(None, None, None)
    for client in foreign[1:]:
        await client.disconnect()
