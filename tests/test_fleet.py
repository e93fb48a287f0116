"""Many boards at once: each proxy is asked for no more connections than it has."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from bleak.backends.device import BLEDevice
from esp32_ota_sim.bleak_backend import (
    SimBleakClient,
    add_slot_listener,
    connection_slots,
    register_board,
)
from homeassistant.components.update import ATTR_IN_PROGRESS
from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import Event, EventStateChangedData, callback
from homeassistant.helpers.event import async_track_state_change_event
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.esp32_ota.const import DOMAIN
from custom_components.esp32_ota.fleet import (
    QUEUE_TIMEOUT,
    BoardOutOfReachError,
    FleetScheduler,
    get_fleet,
)
from custom_components.esp32_ota.history import EVENT_INSTALL
from tests.bluetooth_helpers import async_register_sim_proxy
from tests.common import (
    app_source,
    board_address,
    board_entity,
    board_with_release,
    install_fails,
    make_board,
    setup_fleet,
    source_folder,
    write_release,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner


class SlotWatch:
    """Connections a proxy holds (high-water mark) and asks it refused."""

    def __init__(self, proxy: SimProxyScanner) -> None:
        """Watch `proxy`'s slots and wrap its connector's slot check."""
        self.source = proxy.source
        self.peak = 0
        self.refused = 0
        self.remove = add_slot_listener(self._changed)
        connector = proxy.connector
        assert connector is not None
        can_connect = connector.can_connect

        def counting() -> bool:
            free = can_connect()
            self.refused += not free
            return free

        connector.can_connect = counting

    def _changed(self, source: str) -> None:
        if source == self.source:
            _free, _limit, connected = connection_slots(source)
            self.peak = max(self.peak, len(connected))


@pytest.fixture
def watch(proxy: SimProxyScanner) -> Iterator[SlotWatch]:
    """Slot use of the test's proxy."""
    slot_watch = SlotWatch(proxy)
    yield slot_watch
    slot_watch.remove()


class AttributeWatch:
    """Every value an attribute of some entities took."""

    def __init__(self, hass: HomeAssistant, entities: list[str], name: str) -> None:
        """Start listening."""
        self.seen: dict[str, list[Any]] = {entity: [] for entity in entities}

        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            if (state := event.data["new_state"]) is not None:
                self.seen[state.entity_id].append(state.attributes.get(name))

        self.remove = async_track_state_change_event(hass, entities, changed)


async def install_files(hass: HomeAssistant, entities: list[str]) -> dict[str, Any]:
    """Push a new app.py to the boards; the response's boards."""
    response = await hass.services.async_call(
        DOMAIN,
        "install_files",
        {ATTR_ENTITY_ID: entities, "content": {"app.py": app_source("2.0.0")}},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return response["boards"]  # type: ignore[return-value]


async def test_five_boards_behind_three_slots_in_one_call(
    hass: HomeAssistant, proxy: SimProxyScanner, watch: SlotWatch
) -> None:
    boards = await setup_fleet(hass, proxy, 5)
    entities = [board_entity(index) for index in range(1, 6)]
    queued = AttributeWatch(hass, entities, "queued")
    progress = AttributeWatch(hass, entities, "update_percentage")
    events = async_capture_events(hass, EVENT_INSTALL)
    watch.peak = 0

    results = await install_files(hass, entities)

    outcome = {key: result["result"] for key, result in results.items()}
    assert outcome == dict.fromkeys(entities, "installed")
    for board in boards:
        assert board.read("app.py") == app_source("2.0.0").encode()
    assert watch.peak == 3  # the proxy was used fully...
    assert watch.refused == 0  # ...and never asked for a fourth connection
    # Two boards waited, and showed it; every board showed its progress
    # through the phases.
    assert sum(True in seen for seen in queued.seen.values()) == 2
    assert sum(result["queued_seconds"] > 0 for result in results.values()) == 2
    for seen in progress.seen.values():
        assert {80, 92} <= set(seen)  # sent everything, then was checked
    assert [e.data["type"] for e in events].count("finished") == 5
    assert get_fleet(hass).as_dict()["scanners"][proxy.source]["peak"] == 3


async def test_many_entities_installed_at_once(
    hass: HomeAssistant, proxy: SimProxyScanner, watch: SlotWatch
) -> None:
    write_release(
        source_folder(hass), {"app.py": app_source("1.1.0")}, {"version": "1.1.0"}
    )
    boards = await setup_fleet(hass, proxy, 4, slots=2)
    watch.peak = 0
    await hass.services.async_call(
        UPDATE_DOMAIN,
        "install",
        {ATTR_ENTITY_ID: [board_entity(index) for index in range(1, 5)]},
        blocking=True,
    )
    for board in boards:
        assert board.read("app.py") == app_source("1.1.0").encode()
    assert watch.peak == 2
    assert watch.refused == 0


async def test_connections_of_others_count(
    hass: HomeAssistant, proxy: SimProxyScanner, watch: SlotWatch
) -> None:
    await setup_fleet(hass, proxy, 3)
    # Another integration holds one of the proxy's three slots throughout.
    other = make_board(board_address(0x40))
    register_board(other)
    foreign = SimBleakClient(BLEDevice(other.address, None, {"source": proxy.source}))
    await foreign.connect(pair=False)
    watch.peak = 0
    results = await install_files(hass, [board_entity(index) for index in (1, 2, 3)])
    await foreign.disconnect()
    assert {result["result"] for result in results.values()} == {"installed"}
    assert watch.peak == 3  # ours: two at a time, plus the other one
    assert watch.refused == 0


async def test_a_board_out_of_reach_fails_the_others_succeed(
    hass: HomeAssistant, proxy: SimProxyScanner, watch: SlotWatch
) -> None:
    boards = await setup_fleet(hass, proxy, 5)
    boards[2].stop()  # powered off; Home Assistant still has its advertisement
    entities = [board_entity(index) for index in range(1, 6)]
    results = await install_files(hass, entities)
    gone = results.pop(board_entity(3))
    assert gone["result"] == "failed"
    assert gone["reason"] == "not_found"
    assert "ESP32-OTA-0003 is not in range" in gone["error"]
    assert {result["result"] for result in results.values()} == {"installed"}
    assert watch.refused == 0


@pytest.mark.usefixtures("enable_bluetooth")
async def test_a_board_no_scanner_hears_fails_at_once(hass: HomeAssistant) -> None:
    scanner, cleanup = async_register_sim_proxy(hass)
    await board_with_release(hass, scanner)
    cleanup()  # the proxy went away
    events = async_capture_events(hass, EVENT_INSTALL)
    await install_fails(hass, "not_found")
    assert [event.data["type"] for event in events] == ["started", "failed"]
    with pytest.raises(BoardOutOfReachError):
        async with get_fleet(hass).slot(board_address(1)):
            pass


async def test_a_board_that_waits_too_long_fails(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    await setup_fleet(hass, proxy, 2, slots=1)
    fleet = get_fleet(hass)
    queued = AttributeWatch(hass, [board_entity(2)], "queued")
    busy = AttributeWatch(hass, [board_entity(2)], ATTR_IN_PROGRESS)
    began = hass.loop.time()
    async with fleet.slot(board_address(1)):  # board 1 holds the only slot
        response = await hass.services.async_call(
            DOMAIN,
            "install_files",
            {
                ATTR_ENTITY_ID: board_entity(2),
                "content": {"app.py": app_source("2.0.0")},
            },
            blocking=True,
            return_response=True,
        )
    assert hass.loop.time() - began >= QUEUE_TIMEOUT  # the real half hour
    assert response is not None
    result = response["boards"][board_entity(2)]  # type: ignore[index]
    assert result["reason"] == "queue_timeout"
    assert "waited too long for a free Bluetooth connection slot" in result["error"]
    assert queued.seen[board_entity(2)][:2] == [False, True]
    assert busy.seen[board_entity(2)][-1] is False
    assert fleet.queued() == []


async def test_one_board_holds_one_slot(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    await setup_fleet(hass, proxy, 1)
    fleet = FleetScheduler(hass)
    async with fleet.slot(board_address(1)):
        second = hass.async_create_task(_hold(fleet, board_address(1)))
        await asyncio.sleep(0)
        assert fleet.queued() == [board_address(1)]  # its own job goes first
    await second
    assert fleet.queued() == []
    assert fleet.as_dict()["admitted"] == []


async def _hold(fleet: FleetScheduler, address: str) -> None:
    async with fleet.slot(address):
        pass


async def test_refresh_of_a_board_being_updated_waits_its_turn(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    boards = await setup_fleet(hass, proxy, 1)
    coordinator = hass.config_entries.async_entries(DOMAIN)[0].runtime_data
    fleet = get_fleet(hass)
    async with fleet.slot(boards[0].address):
        refresh = hass.async_create_task(coordinator.async_refresh_board())
        await asyncio.sleep(0)
        assert fleet.queued() == [boards[0].address]
    assert await refresh is True
