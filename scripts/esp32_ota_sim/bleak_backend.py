"""A bleak backend that connects to virtual boards.

    register_board(board, "proxy")
    async with BleakClient(board.address, backend=SimBleakClient) as client: ...

Home Assistant picks the same class through habluetooth: a scanner's
`HaBluetoothConnector(client=SimBleakClient, source=..., can_connect=...)`
(see tests/bluetooth_helpers.py). The device's `details["source"]` names the
proxy (or adapter) the connection goes through; each source has a number of
connection slots (3 by default, like an ESPHome proxy). Connecting when all
are taken fails with a BleakError whose text bleak-retry-connector classifies
as out-of-slots, so `establish_connection` raises
`BleakOutOfConnectionSlotsError` as it does for a full ESPHome proxy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from .link import (
    ATT_HEADER,
    LinkClosedError,
    LinkError,
    LinkProfile,
    LinkStats,
    SimLink,
    get_profile,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from bleak.args import SizedBuffer

    from .board import VirtualBoard

__all__ = [
    "CCCD_UUID",
    "DEFAULT_SLOTS",
    "LOCAL_SOURCE",
    "NUS_RX_UUID",
    "NUS_SERVICE_UUID",
    "NUS_TX_UUID",
    "SimBleakClient",
    "add_slot_listener",
    "connection_slots",
    "register_board",
    "registered_board",
    "reset_registry",
    "set_connection_slots",
    "unregister_board",
]

_LOGGER = logging.getLogger(__name__)

NUS_SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"

LOCAL_SOURCE = "local"
DEFAULT_SLOTS = 3
DEFAULT_MTU = 23

# GATT layout as NimBLE numbers it for the NUS server (after GAP and GATT).
_SERVICE_HANDLE = 17
_TX_HANDLE = 19
_TX_CCCD_HANDLE = 20
_RX_HANDLE = 22


@dataclass
class _Registration:
    board: VirtualBoard
    profile: LinkProfile


_boards: dict[str, _Registration] = {}
_slot_limits: dict[str, int] = {}
_in_use: dict[str, set[SimBleakClient]] = {}
_slot_listeners: list[Callable[[str], None]] = []


def register_board(board: VirtualBoard, profile: LinkProfile | str = "fast") -> None:
    """Make `board` reachable at its address with the given link profile."""
    _boards[board.address.upper()] = _Registration(board, get_profile(profile))


def unregister_board(address: str) -> None:
    """Forget a board (connections already open stay open)."""
    _boards.pop(address.upper(), None)


def registered_board(address: str) -> VirtualBoard | None:
    """The board registered at `address`, if any."""
    registration = _boards.get(address.upper())
    return None if registration is None else registration.board


def reset_registry() -> None:
    """Forget all boards, slot limits, slot use and listeners (between tests)."""
    _boards.clear()
    _slot_limits.clear()
    _in_use.clear()
    _slot_listeners.clear()


def set_connection_slots(source: str, slots: int) -> None:
    """How many connections `source` (a proxy or adapter) can hold at once."""
    _slot_limits[source] = slots
    _notify_slots(source)


def connection_slots(source: str) -> tuple[int, int, list[str]]:
    """(free, limit, connected addresses) of `source`."""
    limit = _slot_limits.get(source, DEFAULT_SLOTS)
    clients = _in_use.get(source, set())
    return max(0, limit - len(clients)), limit, sorted(c.address for c in clients)


def add_slot_listener(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call `listener(source)` whenever a source's slot use changes."""
    _slot_listeners.append(listener)
    return lambda: (
        _slot_listeners.remove(listener) if listener in _slot_listeners else None
    )


def _notify_slots(source: str) -> None:
    for listener in _slot_listeners:
        listener(source)


class SimBleakClient(BaseBleakClient):
    """bleak backend client for `VirtualBoard`s (see module docstring)."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 10.0)
        super().__init__(address_or_ble_device, **kwargs)
        source: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            details = address_or_ble_device.details
            if isinstance(details, dict):
                source = details.get("source")
        self.source = source or LOCAL_SOURCE
        self.link: SimLink | None = None
        self.last_link: SimLink | None = None
        self._board: VirtualBoard | None = None
        self._notify_callbacks: dict[int, NotifyCallback] = {}
        self._cccd = bytearray(2)
        self._holds_slot = False

    def __str__(self) -> str:
        return f"SimBleakClient ({self.address} via {self.source})"

    # -- properties ----------------------------------------------------------

    @property
    def name(self) -> str:
        board = self._board or registered_board(self.address)
        return (board.name if board is not None else None) or self.address

    @property
    def mtu_size(self) -> int:
        link = self.link
        return link.mtu if link is not None and link.connected else DEFAULT_MTU

    @property
    def stats(self) -> LinkStats | None:
        """Counters of the current (or last) connection, for the benchmark."""
        link = self.link or self.last_link
        return None if link is None else link.stats

    @property
    def is_connected(self) -> bool:
        return self.link is not None and self.link.connected

    # -- connecting ----------------------------------------------------------

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            return
        registration = _boards.get(self.address.upper())
        if registration is None:
            raise BleakDeviceNotFoundError(
                self.address, f"No virtual board at {self.address}"
            )
        free, limit, _ = connection_slots(self.source)
        if not free:
            raise BleakError(
                f"{self.source}: no available connection slot "
                f"(all {limit} in use); ESP_GATT_CONN_CONN_CANCEL"
            )
        if pair:
            _LOGGER.debug(
                "%s: pairing is not simulated; connecting without it", self.address
            )
        board = registration.board
        link = SimLink(
            board,
            registration.profile,
            on_notify=self._on_notify,
            on_disconnect=self._on_link_lost,
        )
        self._take_slot()
        timeout = float(kwargs.get("timeout", self._timeout))
        try:
            async with asyncio.timeout(timeout):
                await link.open()
        except TimeoutError:
            self._release_slot()
            raise
        except LinkError as err:
            self._release_slot()
            raise BleakDeviceNotFoundError(
                self.address, f"{self.address}: {err}"
            ) from err
        except BaseException:
            self._release_slot()
            raise
        self._board = board
        self.link = link
        self.last_link = link
        self._cccd = bytearray(2)
        self._notify_callbacks.clear()
        self.services = self._build_services()

    def _take_slot(self) -> None:
        _in_use.setdefault(self.source, set()).add(self)
        self._holds_slot = True
        _notify_slots(self.source)

    def _release_slot(self) -> None:
        if not self._holds_slot:
            return
        self._holds_slot = False
        _in_use.get(self.source, set()).discard(self)
        _notify_slots(self.source)

    async def disconnect(self) -> None:
        link = self.link
        if link is None:
            self._release_slot()
            return
        self._cleanup()
        await link.close()

    def _cleanup(self) -> None:
        self.link = None
        self._notify_callbacks.clear()
        self.services = BleakGATTServiceCollection()
        self._release_slot()

    def _on_link_lost(self) -> None:
        if self.link is None:
            return
        self._cleanup()
        callback = self._disconnected_callback
        if callback is not None:
            callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("Pairing is not simulated")

    async def unpair(self) -> None:
        raise NotImplementedError("Pairing is not simulated")

    async def clear_cache(self) -> bool:
        """Nothing is cached; kept for HaBleakClientWrapper.clear_cache."""
        return True

    # -- GATT ----------------------------------------------------------------

    def _build_services(self) -> BleakGATTServiceCollection:
        services = BleakGATTServiceCollection()
        service = BleakGATTService(None, _SERVICE_HANDLE, NUS_SERVICE_UUID)
        services.add_service(service)

        def max_write() -> int:
            return self.mtu_size - ATT_HEADER

        tx = BleakGATTCharacteristic(
            None, _TX_HANDLE, NUS_TX_UUID, ["read", "notify"], max_write, service
        )
        rx = BleakGATTCharacteristic(
            None,
            _RX_HANDLE,
            NUS_RX_UUID,
            ["write-without-response", "write"],
            max_write,
            service,
        )
        services.add_characteristic(tx)
        services.add_characteristic(rx)
        services.add_descriptor(
            BleakGATTDescriptor(None, _TX_CCCD_HANDLE, CCCD_UUID, tx)
        )
        return services

    def _require_link(self) -> SimLink:
        link = self.link
        if link is None or not link.connected:
            raise BleakError("Not connected")
        return link

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        self._require_link()
        if "read" not in characteristic.properties:
            raise BleakError(f"Characteristic {characteristic.uuid} is not readable")
        board = self._board
        if board is None or board.ble is None or board.peripheral is None:
            raise BleakError("Board is not running")
        value_handle = getattr(board.peripheral, "_tx", None)
        return bytearray(board.ble.gatts_read(value_handle) if value_handle else b"")

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        self._require_link()
        if descriptor.handle != _TX_CCCD_HANDLE:
            raise BleakError(f"Descriptor {descriptor.handle} is not readable")
        return bytearray(self._cccd)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        link = self._require_link()
        if characteristic.uuid != NUS_RX_UUID:
            raise BleakError(
                f"Characteristic {characteristic.uuid} does not support write"
            )
        try:
            if response:
                await link.write_with_response(bytes(data))
            else:
                link.write_without_response(bytes(data))
        except LinkClosedError as err:
            raise BleakError(f"{self.address}: Disconnected") from err
        except LinkError as err:
            raise BleakError(f"{self.address}: {err}") from err

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        await self._round_trip()
        if descriptor.handle != _TX_CCCD_HANDLE:
            raise BleakError(f"Descriptor {descriptor.handle} is not writable")
        self._cccd = bytearray(bytes(data)[:2].ljust(2, b"\0"))

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: Any,
    ) -> None:
        self._require_link()
        if "notify" not in characteristic.properties:
            raise BleakError(f"Characteristic {characteristic.uuid} does not notify")
        if characteristic.handle in self._notify_callbacks:
            raise BleakError(
                f"Notifications are already enabled on {characteristic.uuid}"
            )
        await self._round_trip()  # writing the CCCD
        self._notify_callbacks[characteristic.handle] = callback
        self._cccd = bytearray(b"\x01\x00")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_link()
        self._notify_callbacks.pop(characteristic.handle, None)
        self._cccd = bytearray(2)
        await self._round_trip()

    async def _round_trip(self) -> None:
        link = self._require_link()
        profile = link.profile
        await asyncio.sleep((profile.interval_ms * 2 + profile.latency_ms * 2) / 1000)

    def _on_notify(self, data: bytes) -> None:
        callback = self._notify_callbacks.get(_TX_HANDLE)
        if callback is not None:
            callback(bytearray(data))
