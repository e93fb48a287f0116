"""Home Assistant's own Bluetooth stack connects to virtual boards."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bleak_retry_connector
import pytest
from bleak_retry_connector import BleakOutOfConnectionSlotsError
from esp32_ota_sim.bleak_backend import (
    LOCAL_SOURCE,
    NUS_RX_UUID,
    NUS_TX_UUID,
    SimBleakClient,
    connection_slots,
)
from esp32_ota_sim.board import VirtualBoard
from habluetooth import HaBleakClientWrapper, get_manager
from homeassistant.components import bluetooth

from tests.bluetooth_helpers import (
    async_register_sim_local_adapter,
    async_register_sim_proxy,
    no_retry_backoff,
    use_sim_for_local_adapters,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from bleak.backends.device import BLEDevice
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimLocalScanner, SimProxyScanner


@dataclass
class Heard:
    """A virtual board that Home Assistant hears through a simulated scanner."""

    board: VirtualBoard
    scanner: SimProxyScanner | SimLocalScanner
    device: BLEDevice
    cleanup: Callable[[], None]


def _heard(
    hass: HomeAssistant,
    register: Callable[
        [HomeAssistant],
        tuple[SimProxyScanner | SimLocalScanner, Callable[[], None]],
    ],
) -> Heard:
    board = VirtualBoard()
    scanner, cleanup = register(hass)
    scanner.inject(board)
    device = bluetooth.async_ble_device_from_address(
        hass, board.address, connectable=True
    )
    assert device is not None
    return Heard(board, scanner, device, cleanup)


@pytest.fixture
async def proxied(hass: HomeAssistant, enable_bluetooth: None) -> AsyncIterator[Heard]:
    heard = _heard(hass, async_register_sim_proxy)
    yield heard
    heard.cleanup()


async def _connect(device: object, **kwargs: object) -> object:
    # Looked up at call time: habluetooth swaps in HA's wrapper class when
    # Bluetooth starts, after this module was imported.
    return await bleak_retry_connector.establish_connection(
        bleak_retry_connector.BleakClientWithServiceCache, device, "test", **kwargs
    )


async def _ping(client: object) -> list[bytes]:
    lines: list[bytes] = []
    got = asyncio.Event()

    def on_notify(_sender: object, data: bytearray) -> None:
        lines.append(bytes(data))
        got.set()

    await client.start_notify(NUS_TX_UUID, on_notify)  # type: ignore[attr-defined]
    await client.write_gatt_char(NUS_RX_UUID, b"PING\n", response=False)  # type: ignore[attr-defined]
    await asyncio.wait_for(got.wait(), 5)
    return lines


async def test_proxy_route(hass: HomeAssistant, proxied: Heard) -> None:
    board, scanner, device = proxied.board, proxied.scanner, proxied.device
    assert device.name == board.name
    assert device.details["source"] == scanner.source
    info = bluetooth.async_last_service_info(hass, board.address, connectable=True)
    assert info is not None
    assert info.name.startswith("ESP32-OTA-")

    client = await _connect(device)
    assert isinstance(client, HaBleakClientWrapper)
    assert isinstance(client._backend, SimBleakClient)  # type: ignore[attr-defined]
    assert await _ping(client) == [b"PONG\n"]
    assert scanner.get_allocations().free == 2  # type: ignore[union-attr]
    await client.disconnect()  # type: ignore[attr-defined]
    assert scanner.get_allocations().free == 3  # type: ignore[union-attr]


async def test_local_adapter_route(hass: HomeAssistant, enable_bluetooth: None) -> None:
    heard = _heard(hass, async_register_sim_local_adapter)
    device = heard.device
    assert "source" not in device.details  # HA takes its local-adapter branch

    with use_sim_for_local_adapters():
        client = await _connect(device)
    backend = client._backend  # type: ignore[attr-defined]
    assert isinstance(backend, SimBleakClient)
    assert backend.source == LOCAL_SOURCE
    assert await _ping(client) == [b"PONG\n"]
    await client.disconnect()  # type: ignore[attr-defined]
    heard.cleanup()


async def test_full_proxy_raises_out_of_slots(
    hass: HomeAssistant, enable_bluetooth: None
) -> None:
    one = VirtualBoard("24:0A:C4:00:00:01")
    two = VirtualBoard("24:0A:C4:00:00:02")
    scanner, cleanup = async_register_sim_proxy(hass, slots=1)
    scanner.inject(one)
    scanner.inject(two)
    device_one = bluetooth.async_ble_device_from_address(hass, one.address, True)
    device_two = bluetooth.async_ble_device_from_address(hass, two.address, True)

    client = await _connect(device_one)
    assert connection_slots(scanner.source)[:2] == (0, 1)
    allocations = get_manager().async_current_allocations(scanner.source)
    assert allocations is not None
    assert [a.free for a in allocations] == [0]
    with no_retry_backoff(), pytest.raises(BleakOutOfConnectionSlotsError):
        await _connect(device_two)
    await client.disconnect()  # type: ignore[attr-defined]
    second = await _connect(device_two)
    assert await _ping(second) == [b"PONG\n"]
    await second.disconnect()  # type: ignore[attr-defined]
    cleanup()


async def test_a_board_that_is_gone_is_not_found(proxied: Heard) -> None:
    proxied.board.stop()  # out of range: HA still has its last advertisement
    with no_retry_backoff(), pytest.raises(bleak_retry_connector.BleakNotFoundError):
        await _connect(proxied.device)


async def test_board_reboot_reaches_the_disconnect_callback(proxied: Heard) -> None:
    gone = asyncio.Event()
    client = await _connect(proxied.device, disconnected_callback=lambda _c: gone.set())
    proxied.board.reboot()
    await asyncio.wait_for(gone.wait(), 5)
    assert not client.is_connected  # type: ignore[attr-defined]
    assert proxied.scanner.get_allocations().free == 3  # type: ignore[union-attr]
