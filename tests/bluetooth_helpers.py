"""Bluetooth helpers for Home Assistant tests with virtual boards.

HA core's own helpers (inject_bluetooth_service_info, generate_ble_device,
FakeScanner) are not shipped with pytest-homeassistant-custom-component;
these replace them and route connections to `esp32_ota_sim` boards.

Two routes into Home Assistant's Bluetooth stack:

- `SimProxyScanner`: an ESPHome-proxy-like remote scanner
  (habluetooth's BaseHaRemoteScanner with an HaBluetoothConnector whose client
  is SimBleakClient). Devices it reports carry `details["source"]`, so
  HaBleakClientWrapper connects through the connector, checking `can_connect`
  (free slots) first, exactly as for an ESPHome proxy.
- `SimLocalScanner`: a connectable, non-remote scanner standing in for a
  local adapter. Its devices carry no `source`, so HaBleakClientWrapper takes
  the local-adapter branch (slot allocation by the manager, then the
  platform's bleak backend). That backend is BlueZ, which needs D-Bus, so
  `use_sim_for_local_adapters()` makes habluetooth's backend lookup return
  SimBleakClient instead: the only patch on this route.

The simulator's board registry and slot counts are module-level: reset them
around every test (the autouse `sim_registry` fixture in tests/conftest.py).

Usage (with the `enable_bluetooth` fixture):

    board = VirtualBoard()
    scanner = async_register_sim_proxy(hass)
    scanner.inject(board)           # registers the board and advertises it
    device = bluetooth.async_ble_device_from_address(hass, board.address, True)
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import bleak_retry_connector
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bluetooth_data_tools import monotonic_time_coarse
from esp32_ota_sim.bleak_backend import (
    LOCAL_SOURCE,
    SimBleakClient,
    add_slot_listener,
    connection_slots,
    register_board,
    set_connection_slots,
)
from habluetooth import (
    Allocations,
    BaseHaRemoteScanner,
    BaseHaScanner,
    BluetoothServiceInfoBleak,
    HaBluetoothConnector,
    get_manager,
)
from homeassistant.components import bluetooth

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from esp32_ota_sim.board import VirtualBoard
    from esp32_ota_sim.link import LinkProfile
    from homeassistant.core import HomeAssistant

PROXY_SOURCE = "AA:BB:CC:DD:EE:01"
LOCAL_ADAPTER_SOURCE = "AA:BB:CC:DD:EE:F0"


def make_ble_device(
    address: str, name: str | None = None, details: dict[str, Any] | None = None
) -> BLEDevice:
    """A BLEDevice as a scanner reports it."""
    return BLEDevice(address, name, details if details is not None else {})


def make_advertisement(
    *,
    local_name: str | None = None,
    manufacturer_data: dict[int, bytes] | None = None,
    service_data: dict[str, bytes] | None = None,
    service_uuids: list[str] | None = None,
    tx_power: int | None = None,
    rssi: int = -60,
) -> AdvertisementData:
    """AdvertisementData with defaults for what is not given."""
    return AdvertisementData(
        local_name=local_name,
        manufacturer_data=manufacturer_data or {},
        service_data=service_data or {},
        service_uuids=service_uuids or [],
        tx_power=tx_power,
        rssi=rssi,
        platform_data=(),
    )


def board_advertisement(board: VirtualBoard, rssi: int = -60) -> AdvertisementData:
    """The board's current advertisement (adv data + scan response) as bleak sees it."""
    adv = board.advertisement()
    if adv is None:
        raise RuntimeError(f"{board.address} is not advertising")
    return make_advertisement(
        local_name=adv.local_name,
        manufacturer_data=adv.manufacturer_data,
        service_data=adv.service_data,
        service_uuids=adv.service_uuids,
        tx_power=adv.tx_power,
        rssi=rssi,
    )


class _SimScanner:
    """What both simulated scanners share: a board is put on the air, then heard."""

    heard_at = -60  # the RSSI a board is heard at unless inject() is told

    def inject(
        self,
        board: VirtualBoard,
        profile: LinkProfile | str = "fast",
        *,
        rssi: int | None = None,
    ) -> None:
        """Register `board` with the simulator and report its advertisement."""
        if board.advertising_payload is None:
            raise RuntimeError(f"{board.address} is not advertising")
        register_board(board, profile)
        self._report(board, self.heard_at if rssi is None else rssi)

    def _report(self, board: VirtualBoard, rssi: int) -> None:
        """Report what `board` advertises now to Home Assistant."""
        raise NotImplementedError


class SimProxyScanner(_SimScanner, BaseHaRemoteScanner):
    """An ESPHome-proxy-like remote scanner whose connections go to virtual boards.

    Like bleak-esphome, Home Assistant sees the slot use the proxy last
    reported (`get_allocations`, `can_connect`); `report_delay` seconds pass
    between a change and its report (the Wi-Fi hop), while the proxy itself
    refuses a connection beyond its slots at once.
    """

    def __init__(
        self,
        source: str = PROXY_SOURCE,
        name: str = "sim-proxy",
        slots: int = 3,
        report_delay: float = 0.0,
    ) -> None:
        connector = HaBluetoothConnector(
            client=SimBleakClient,
            source=source,
            can_connect=lambda: self.reported.free > 0,
        )
        super().__init__(source, name, connector, True)
        set_connection_slots(source, slots)
        self.report_delay = report_delay
        self.reported = self._current()
        self.cancels: list[Callable[[], None]] = []  # advertise_every timers

    def _current(self) -> Allocations:
        free, limit, allocated = connection_slots(self.source)
        return Allocations(self.source, limit, free, allocated)

    def get_allocations(self) -> Allocations | None:
        """Slot use, as the proxy last reported it."""
        return self.reported

    def report(self) -> None:
        """Report the current slot use to Home Assistant's Bluetooth manager."""
        self.reported = self._current()
        get_manager().async_on_allocation_changed(self.reported)

    def _report(self, board: VirtualBoard, rssi: int) -> None:
        self.relay(board, rssi)  # raw, as a proxy forwards it

    def relay(self, board: VirtualBoard, rssi: int = -60) -> bool:
        """Report what `board` advertises now; False while it does not advertise."""
        payload = board.advertising_payload
        if payload is None:
            return False
        self._async_on_raw_advertisement(
            board.address,
            rssi,
            payload + board.scan_response_payload,
            {"address_type": 0},
            monotonic_time_coarse(),
        )
        return True

    def advertise_every(
        self, board: VirtualBoard, interval: float, *, rssi: int = -60
    ) -> Callable[[], None]:
        """Relay the board's advertisement every `interval` s of loop time.

        As a proxy hears a board that advertises at that interval: after a
        reset or a confirmation Home Assistant sees the new payload at the
        next tick (a board that is not advertising is skipped). Returns the
        cancel; the proxy's cleanup cancels it too.
        """
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def tick() -> None:
            nonlocal handle
            self.relay(board, rssi)
            handle = loop.call_later(interval, tick)

        def cancel() -> None:
            if handle is not None:
                handle.cancel()

        handle = loop.call_later(interval, tick)
        self.cancels.append(cancel)
        return cancel


class SimLocalScanner(_SimScanner, BaseHaScanner):
    """A connectable local-adapter-like scanner (see module docstring)."""

    heard_at = -50

    def __init__(
        self, source: str = LOCAL_ADAPTER_SOURCE, adapter: str = "sim0"
    ) -> None:
        super().__init__(source, adapter, connectable=True)
        self.seen: dict[str, tuple[BLEDevice, AdvertisementData]] = {}

    @property
    def discovered_devices(self) -> list[BLEDevice]:
        return [device for device, _ in self.seen.values()]

    @property
    def discovered_devices_and_advertisement_data(
        self,
    ) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
        return dict(self.seen)

    @property
    def discovered_addresses(self) -> Iterable[str]:
        return list(self.seen)

    def get_discovered_device_advertisement_data(
        self, address: str
    ) -> tuple[BLEDevice, AdvertisementData] | None:
        return self.seen.get(address)

    def get_allocations(self) -> Allocations | None:
        free, limit, allocated = connection_slots(LOCAL_SOURCE)
        return Allocations(self.adapter, limit, free, allocated)

    def _report(self, board: VirtualBoard, rssi: int) -> None:
        """Report `board` like HaScanner reports a BlueZ device."""
        advertisement = board_advertisement(board, rssi)
        # No "source" (and no D-Bus "path"): the wrapper's local-adapter branch.
        device = make_ble_device(
            board.address, advertisement.local_name, {"sim_adapter": self.adapter}
        )
        self.seen[board.address] = (device, advertisement)
        info = BluetoothServiceInfoBleak(
            advertisement.local_name or board.address,
            board.address,
            rssi,
            advertisement.manufacturer_data,
            advertisement.service_data,
            advertisement.service_uuids,
            self.source,
            device,
            advertisement,
            True,
            monotonic_time_coarse(),
            advertisement.tx_power,
        )
        get_manager().scanner_adv_received(info)


@contextmanager
def use_sim_for_local_adapters() -> Iterator[None]:
    """Let HaBleakClientWrapper's local-adapter branch use SimBleakClient."""
    with patch(
        "habluetooth.wrappers.get_platform_client_backend_type",
        return_value=(SimBleakClient, "SimBleakClient"),
    ):
        yield


_BACKOFFS = (
    "BLEAK_BACKOFF_TIME",
    "BLEAK_DBUS_BACKOFF_TIME",
    "BLEAK_OUT_OF_SLOTS_BACKOFF_TIME",
    "BLEAK_TRANSIENT_BACKOFF_TIME",
    "BLEAK_TRANSIENT_MEDIUM_BACKOFF_TIME",
    "BLEAK_TRANSIENT_LONG_BACKOFF_TIME",
)


@contextmanager
def no_retry_backoff() -> Iterator[None]:
    """Make establish_connection retry without waiting (real-loop HA tests).

    A board that is gone or a full proxy otherwise costs 4 s per attempt and
    up to 9 attempts of wall time before BleakNotFoundError /
    BleakOutOfConnectionSlotsError is raised.
    """
    with ExitStack() as stack:
        for name in _BACKOFFS:
            stack.enter_context(patch.object(bleak_retry_connector, name, 0.0))
        yield


def async_register_sim_proxy(
    hass: HomeAssistant,
    source: str = PROXY_SOURCE,
    name: str = "sim-proxy",
    slots: int = 3,
    report_delay: float = 0.0,
) -> tuple[SimProxyScanner, Callable[[], None]]:
    """Create, set up and register a proxy scanner; returns it and its cleanup."""
    scanner = SimProxyScanner(source, name, slots, report_delay)
    unsetup = scanner.async_setup()
    unregister = bluetooth.async_register_scanner(hass, scanner)

    def on_slots(changed: str) -> None:
        if changed != source:
            return
        if scanner.report_delay:
            hass.loop.call_later(scanner.report_delay, scanner.report)
        else:
            scanner.report()

    remove_listener = add_slot_listener(on_slots)

    def cleanup() -> None:
        for cancel in scanner.cancels:
            cancel()
        remove_listener()
        unregister()
        unsetup()

    return scanner, cleanup


def async_register_sim_local_adapter(
    hass: HomeAssistant, source: str = LOCAL_ADAPTER_SOURCE, adapter: str = "sim0"
) -> tuple[SimLocalScanner, Callable[[], None]]:
    """Create and register a local-adapter-like scanner; returns it and its cleanup.

    Connections through it need `use_sim_for_local_adapters()` active.
    """
    scanner = SimLocalScanner(source, adapter)
    unsetup = scanner.async_setup()
    unregister = bluetooth.async_register_scanner(hass, scanner)

    def cleanup() -> None:
        unregister()
        unsetup()

    return scanner, cleanup
