"""A house with several proxies: most boards are heard by more than one.

Home Assistant's Bluetooth wrapper picks the path of every connection itself
(by signal, free slots, failures and connections in progress), so the fleet
can only decide *when* a board connects, never *through which proxy*.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from bleak.backends.device import BLEDevice
from esp32_ota_sim.bleak_backend import (
    SimBleakClient,
    set_connection_slots,
)

from custom_components.esp32_ota.fleet import FleetScheduler, get_fleet
from tests.common import (
    app_source,
    board_address,
    board_entity,
    make_board,
    setup_board,
)
from tests.fleet_house import (
    REPORT_DELAY,
    ProxyWatch,
    install_files,
    register_proxies,
    setup_house,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner


@pytest.fixture
async def proxies(
    hass: HomeAssistant, enable_bluetooth: None
) -> AsyncIterator[list[SimProxyScanner]]:
    """Three ESPHome-proxy-like scanners with 3 connection slots each."""
    registered, cleanup = register_proxies(hass, 3)
    yield registered
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
    await asyncio.sleep(REPORT_DELAY)  # the proxy reports it is full
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
    await asyncio.sleep(REPORT_DELAY)

    assert await admitted
    await task
    assert fleet.queued() == []
    for slot in held:
        await slot.__aexit__(None, None, None)
    for client in foreign[1:]:
        await client.disconnect()


async def _install_files(hass: HomeAssistant, entities: list[str]) -> dict[str, Any]:
    return await install_files(hass, entities, {"app.py": app_source("2.0.0")})


async def _release_later(
    hass: HomeAssistant, client: SimBleakClient, delay: float
) -> None:
    await asyncio.sleep(delay)
    await client.disconnect()


async def test_admission_counts_boards_admitted_but_not_connected(
    hass: HomeAssistant, proxies: list[SimProxyScanner]
) -> None:
    """Free slots are matched to every admitted board not connected yet."""
    first, second, _third = proxies
    for proxy in (first, second):
        set_connection_slots(proxy.source, 1)
    await asyncio.sleep(REPORT_DELAY)
    both, first_only, first_too = (make_board(board_address(i)) for i in (1, 2, 3))
    first.inject(both, rssi=-50)  # heard best by the first proxy...
    second.inject(both, rssi=-80)  # ...and by the second
    first.inject(first_only)
    first.inject(first_too)
    fleet = get_fleet(hass)
    admitted = []
    for board in (both, first_only):
        slot = fleet.slot(board.address)
        await slot.__aenter__()  # admitted at once: one slot for each
        admitted.append(slot)

    # Only the first proxy hears board 3, and the two admitted boards need
    # both free slots between them, whichever path each takes.
    waiting = hass.async_create_task(_admitted_then_leave(fleet, first_too.address))
    await asyncio.sleep(0)
    assert fleet.queued() == [first_too.address]

    await admitted[1].__aexit__(None, None, None)  # board 2 is done
    await waiting
    await admitted[0].__aexit__(None, None, None)
    assert fleet.as_dict()["admitted"] == []


async def _admitted_then_leave(fleet: FleetScheduler, address: str) -> None:
    async with fleet.slot(address):
        pass


async def test_a_board_whose_proxies_are_full_of_other_connections_waits(
    hass: HomeAssistant, proxies: list[SimProxyScanner]
) -> None:
    first, second, _third = proxies
    board = make_board()
    first.inject(board, rssi=-50)
    await setup_board(hass, second, board)
    # Other integrations hold every slot of both proxies that hear the board;
    # one of them lets go after a minute.
    foreign = [
        await _connect_foreign(proxy, 0x40 + 3 * number + index)
        for number, proxy in enumerate((first, second))
        for index in range(3)
    ]
    await asyncio.sleep(REPORT_DELAY)
    release = hass.async_create_task(_release_later(hass, foreign[4], 60))
    began = hass.loop.time()

    results = await _install_files(hass, [board_entity(1)])

    assert results[board_entity(1)]["result"] == "installed"
    assert hass.loop.time() - began >= 60
    assert board.read("app.py") == app_source("2.0.0").encode()
    await release
    for client in foreign:
        await client.disconnect()


async def test_a_connection_refused_for_slots_after_admission_is_retried(
    hass: HomeAssistant, proxies: list[SimProxyScanner]
) -> None:
    first = proxies[0]
    board = make_board()
    await setup_board(hass, first, board)
    set_connection_slots(first.source, 1)
    await asyncio.sleep(REPORT_DELAY)
    # Another integration takes the only slot just before our install: the
    # proxy's report of it is still on its way when the board is admitted.
    foreign = await _connect_foreign(first, 0x40)
    release = hass.async_create_task(_release_later(hass, foreign, 120))

    results = await _install_files(hass, [board_entity(1)])

    assert results[board_entity(1)]["result"] == "installed"
    assert results[board_entity(1)]["seconds"] >= 120
    assert get_fleet(hass).refusals > 0
    await release


async def test_thirty_boards_behind_three_shared_proxies(
    hass: HomeAssistant,
    proxies: list[SimProxyScanner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    boards = await setup_house(hass, proxies, 30, seed=15)
    watch = ProxyWatch(proxies)
    entities = [board_entity(index) for index in range(1, 31)]

    results = await _install_files(hass, entities)

    failed = {
        key: r["error"] for key, r in results.items() if r["result"] != "installed"
    }
    assert failed == {}
    for board in boards:
        assert board.read("app.py") == app_source("2.0.0").encode()
    assert watch.within_slots()
    assert sum(watch.peak.values()) > len(proxies)  # boards really ran in parallel
    assert "Error in allocation callback" not in caplog.text
    assert get_fleet(hass).queued() == []
