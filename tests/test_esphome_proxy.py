"""End to end through the real ESPHome proxy stack, over TCP.

Home Assistant -> our update entity -> habluetooth's wrapper -> bleak-esphome's
ESPHomeClient -> aioesphomeapi APIClient -> TCP -> the virtual ESPHome proxy
(esp32_ota_sim.esphome_proxy) -> SimLink -> a VirtualBoard running the real
firmware. Discovery comes the same way: the proxy streams the boards' raw
advertisements, bleak-esphome's scanner feeds them to Home Assistant, and
Bluetooth discovery starts our config flow.

HA's esphome integration itself is not loaded: it needs voice, dashboard and
ffmpeg packages that the test environment does not install. `ProxyScannerLink`
does what its manager does for a proxy (connect_scanner, register, tear down
on disconnect, reconnect with ReconnectLogic).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bleak_retry_connector
import pytest
from esp32_ota_sim.esphome_proxy import V1OnlyBoard, VirtualProxy
from esp32_ota_sim.esphome_proxy.scanner import ProxyScannerLink
from homeassistant.components import bluetooth
from homeassistant.components.update import (
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
)
from homeassistant.config_entries import SOURCE_BLUETOOTH
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.esp32_ota.const import DOMAIN
from tests.common import (
    BOARD_ADDRESS,
    ENTITY_ID,
    V1_MANAGER,
    app_source,
    install,
    make_board,
    source_folder,
    wait_until_sending,
    write_release,
)

if TYPE_CHECKING:
    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant

    from custom_components.esp32_ota.data import Esp32OtaConfigEntry

OTHER_ADDRESS = "24:0A:C4:00:00:02"
PROXY_SOURCE = "02:E5:00:00:60:55"  # the proxy's Bluetooth MAC (ProxyInfo)


@dataclass
class Rig:
    """A virtual proxy with boards, connected to Home Assistant."""

    proxy: VirtualProxy
    link: ProxyScannerLink
    boards: list[VirtualBoard]


async def _start_rig(
    hass: HomeAssistant, boards: list[VirtualBoard], slots: int = 3
) -> Rig:
    proxy = VirtualProxy(boards, profile="fast", slots=slots, advertise_interval=0.05)
    await proxy.start()
    link = ProxyScannerLink(
        "127.0.0.1",
        proxy.port,
        register=lambda scanner: bluetooth.async_register_scanner(
            hass, scanner, source_domain="esphome"
        ),
    )
    await link.start()
    return Rig(proxy, link, boards)


async def _stop_rig(rig: Rig) -> None:
    await rig.link.stop()
    await rig.proxy.stop()
    for board in rig.boards:
        board.stop()


@pytest.fixture
def esphome_env(enable_bluetooth: None, socket_enabled: None) -> None:
    """Bluetooth on and local TCP allowed."""


async def _heard(hass: HomeAssistant, address: str) -> None:
    """Wait until Home Assistant has an advertisement of `address` via the proxy."""
    heard = asyncio.Event()

    def on_advertisement(
        info: bluetooth.BluetoothServiceInfoBleak, _change: bluetooth.BluetoothChange
    ) -> None:
        if info.source == PROXY_SOURCE:
            heard.set()

    remove = bluetooth.async_register_callback(
        hass,
        on_advertisement,
        bluetooth.BluetoothCallbackMatcher(address=address),
        bluetooth.BluetoothScanningMode.ACTIVE,
    )
    try:
        await heard.wait()
    finally:
        remove()
    await hass.async_block_till_done(wait_background_tasks=True)


async def _add_discovered_board(hass: HomeAssistant, address: str) -> str:
    """Confirm the Bluetooth discovery flow of `address`; return the entry id."""
    await _heard(hass, address)
    flows = [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_BLUETOOTH
        and flow["context"].get("unique_id") == address
    ]
    assert len(flows) == 1, hass.config_entries.flow.async_progress()
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    return result["result"].entry_id


async def _unload_all(hass: HomeAssistant) -> None:
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.usefixtures("esphome_env")
async def test_discover_and_install_through_the_proxy(hass: HomeAssistant) -> None:
    app = app_source("1.1.0")
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    rig = await _start_rig(hass, [board])
    try:
        await _add_discovered_board(hass, BOARD_ADDRESS)
        device = bluetooth.async_ble_device_from_address(hass, BOARD_ADDRESS, True)
        assert device is not None
        assert device.details["source"] == PROXY_SOURCE  # heard by the proxy only
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.state == STATE_ON
        assert state.attributes[ATTR_INSTALLED_VERSION] == "1.0.0"
        assert state.attributes[ATTR_LATEST_VERSION] == "1.1.0"
        assert state.attributes["protocol"] == 2  # HELLO went through the proxy

        boots = len(board.boots)
        await install(hass)

        assert board.read("app.py") == app.encode()
        assert len(board.boots) > boots  # applied with a reset, as on hardware
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.state == STATE_OFF
        assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"
        assert rig.proxy.allocated == []  # the connection was released
        await _unload_all(hass)
    finally:
        await _stop_rig(rig)


@pytest.mark.usefixtures("esphome_env")
async def test_v1_only_board_through_the_proxy(hass: HomeAssistant) -> None:
    app = app_source("1.1.0")
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    # The proxy's v1-only board is the tests' one v1 model.
    board = V1OnlyBoard(BOARD_ADDRESS, files={"config.py": 'VERSION = "1.0.0"\n'})
    rig = await _start_rig(hass, [board])
    try:
        await _add_discovered_board(hass, BOARD_ADDRESS)
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.attributes["protocol"] == 1
        assert state.attributes[ATTR_INSTALLED_VERSION] == "1.0.0"
        await install(hass)
        assert board.read("app.py") == app.encode()
        assert board.read("ota_manager.py") == V1_MANAGER
        await _unload_all(hass)
    finally:
        await _stop_rig(rig)


@pytest.mark.usefixtures("esphome_env")
async def test_a_board_waits_while_the_proxy_slots_are_taken(
    hass: HomeAssistant,
) -> None:
    app = app_source("1.1.0")
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    other = make_board(OTHER_ADDRESS)
    rig = await _start_rig(hass, [board, other], slots=1)
    try:
        await _add_discovered_board(hass, BOARD_ADDRESS)
        await _heard(hass, OTHER_ADDRESS)
        # Something else holds the proxy's only slot.
        holder_device = bluetooth.async_ble_device_from_address(
            hass, OTHER_ADDRESS, True
        )
        assert holder_device is not None
        holder = await bleak_retry_connector.establish_connection(
            bleak_retry_connector.BleakClientWithServiceCache, holder_device, "holder"
        )
        assert rig.proxy.free == 0

        # The board waits for the slot (shown as queued) instead of failing...
        queued = _when_queued(hass)
        task = hass.async_create_task(install(hass))
        await queued
        assert not task.done()
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.attributes["install_phase"] == "queued"
        assert state.attributes["update_percentage"] is None  # a bar, no figure
        assert board.read("app.py") != app.encode()

        # ...and installs as soon as the proxy reports it free.
        await holder.disconnect()
        await task
        assert board.read("app.py") == app.encode()
        await _unload_all(hass)
    finally:
        await _stop_rig(rig)


def _when_queued(hass: HomeAssistant) -> asyncio.Future[None]:
    """Resolved once the entity shows that it waits for a connection slot."""
    queued: asyncio.Future[None] = hass.loop.create_future()

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if state is not None and state.attributes.get("queued") and not queued.done():
            queued.set_result(None)
            remove()

    remove = async_track_state_change_event(hass, ENTITY_ID, changed)
    return queued


async def _setup_discovered(hass: HomeAssistant, address: str) -> Esp32OtaConfigEntry:
    entry_id = await _add_discovered_board(hass, address)
    entry: Esp32OtaConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    assert entry is not None
    return entry


@pytest.mark.usefixtures("esphome_env")
async def test_proxy_reboot_mid_transfer_resumes(hass: HomeAssistant) -> None:
    """A proxy back within the client's reconnect attempts: the install resumes."""
    app = app_source("1.1.0", padding=40_000)
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    rig = await _start_rig(hass, [board])
    try:
        entry = await _setup_discovered(hass, BOARD_ADDRESS)

        async def reboot_proxy_while_sending() -> None:
            await wait_until_sending(entry.runtime_data)
            await rig.proxy.stop()  # the ESP32 running the proxy reboots
            await rig.proxy.start()  # same port: Home Assistant reconnects

        reboot = hass.async_create_task(reboot_proxy_while_sending())
        await install(hass)
        await reboot
        assert rig.link.disconnects == 1
        assert rig.link.connects == 2
        assert board.read("app.py") == app.encode()
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"
        await _unload_all(hass)
    finally:
        await _stop_rig(rig)


@pytest.mark.usefixtures("esphome_env")
async def test_proxy_gone_mid_transfer_is_a_clear_error(hass: HomeAssistant) -> None:
    """A proxy that stays away: a clear error, the board untouched, then usable."""
    app = app_source("1.1.0", padding=40_000)
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    before = board.files()
    rig = await _start_rig(hass, [board])
    try:
        entry = await _setup_discovered(hass, BOARD_ADDRESS)

        async def stop_proxy_while_sending() -> None:
            await wait_until_sending(entry.runtime_data)
            await rig.proxy.stop()  # the proxy loses power

        stop = hass.async_create_task(stop_proxy_while_sending())
        with pytest.raises(HomeAssistantError) as err:
            await install(hass)
        await stop
        # Home Assistant still remembers the board's last advertisement, but no
        # connectable scanner hears it: habluetooth says "no backend with an
        # available connection slot" (out of slots to bleak-retry-connector),
        # yet the user is told the board is out of range, not to free slots.
        assert err.value.translation_key == "not_found"
        assert not bluetooth.async_scanner_devices_by_address(
            hass, BOARD_ADDRESS, connectable=True
        )
        assert board.name in str(err.value)
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.attributes["in_progress"] is False

        # Nothing was applied and nothing the board runs was touched.
        after = board.files()
        for name in ("app.py", "main.py", "config.py", "ota_manager.py"):
            assert after[name] == before[name]
        assert board.state == "running"

        # The proxy is back: the scanner registers again, the board is heard,
        # and the same entity installs.
        await rig.proxy.start()
        await rig.link.wait_connects(2)
        await _heard(hass, BOARD_ADDRESS)
        state = hass.states.get(ENTITY_ID)
        assert state is not None
        assert state.state == STATE_ON
        await install(hass)
        assert board.read("app.py") == app.encode()
        await _unload_all(hass)
    finally:
        await _stop_rig(rig)
