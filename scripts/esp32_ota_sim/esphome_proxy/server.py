"""A virtual ESPHome Bluetooth proxy: the native API (plaintext) over TCP.

What a real ESPHome `bluetooth_proxy` node does, for the virtual boards it
"hears":

- Hello / Connect / DeviceInfo (feature flags: passive scan, active
  connections, remote caching, cache clearing, raw advertisements),
  ListEntities (none), Ping, Disconnect; other subscriptions are accepted
  and stay silent.
- Raw advertisements of every advertising board (its real advertising
  payload plus scan response), every `advertise_interval` seconds.
- Connection slots (3 by default), reported on change to subscribers.
- BluetoothDeviceRequest connect (v3, with or without cache) / disconnect /
  clear cache; a connection is a `SimLink` with the proxy's `LinkProfile`,
  so MTU, connection events, the Wi-Fi hop and silent loss of writes without
  response all come from the link model.
- GATT: services (NUS), read, write with response (answered after the
  link's round trip) and without (answered by nothing, maybe lost), CCCD
  read/write, notify on/off and notifications; errors as
  BluetoothGATTErrorResponse.
- A board that resets drops its connection: connected=false is sent when
  the link notices (supervision timeout); when the API client goes away its
  BLE connections are closed, as ESPHome does.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from aioesphomeapi.model import BluetoothProxyFeature

from esp32_ota_sim.link import (
    LinkClosedError,
    LinkError,
    LinkProfile,
    SimLink,
    get_profile,
)

from .framing import (
    FrameDecoder,
    FramingError,
    Message,
    decode_message,
    encode_frame,
    pb,
)
from .gatt import CCCD_HANDLE, RX_HANDLE, TX_HANDLE, services_message

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable, Mapping

    from esp32_ota_sim.board import VirtualBoard

__all__ = ["FEATURE_FLAGS", "ProxyInfo", "VirtualProxy"]

_LOGGER = logging.getLogger(__name__)

FEATURE_FLAGS = (
    BluetoothProxyFeature.PASSIVE_SCAN
    | BluetoothProxyFeature.ACTIVE_CONNECTIONS
    | BluetoothProxyFeature.REMOTE_CACHING
    | BluetoothProxyFeature.CACHE_CLEARING
    | BluetoothProxyFeature.RAW_ADVERTISEMENTS
)
API_VERSION = (1, 12)

# BluetoothDeviceRequestType values.
_CONNECT = 0
_DISCONNECT = 1
_PAIR = 2
_UNPAIR = 3
_CONNECT_V3_WITH_CACHE = 4
_CONNECT_V3_WITHOUT_CACHE = 5
_CLEAR_CACHE = 6

# Error codes as ESPHome reports them (ESP-IDF GATT status and connection
# reasons; -1 is ESPHome's "not connected").
NOT_CONNECTED = -1
GATT_INVALID_HANDLE = 0x01
GATT_READ_NOT_PERMIT = 0x02
GATT_WRITE_NOT_PERMIT = 0x03
GATT_INVALID_ATTR_LEN = 0x0D
CONN_TIMEOUT = 0x08
CONN_TERMINATE_PEER_USER = 0x13
CONN_FAIL_ESTABLISH = 0x3E
CONN_CANCEL = 0x0100

_SUBSCRIBE_RAW = 1  # BluetoothProxySubscriptionFlag.RAW_ADVERTISEMENTS


def mac_to_int(mac: str) -> int:
    """'24:0A:C4:00:00:01' -> 0x240AC4000001."""
    return int(mac.replace(":", ""), 16)


def int_to_mac(value: int) -> str:
    """0x240AC4000001 -> '24:0A:C4:00:00:01'."""
    text = f"{value:012X}"
    return ":".join(text[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class ProxyInfo:
    """How the proxy introduces itself (DeviceInfoResponse)."""

    name: str = "virtual-proxy"
    friendly_name: str = "Virtual Bluetooth proxy"
    mac_address: str = "02:E5:00:00:60:53"
    bluetooth_mac_address: str = "02:E5:00:00:60:55"
    esphome_version: str = "2025.12.0"
    model: str = "Virtual ESP32 (esp32_ota simulator)"
    manufacturer: str = "esp32_ota"


@dataclass
class _BleConnection:
    """One BLE connection the proxy holds for an API client."""

    address: int
    board: VirtualBoard
    link: SimLink
    owner: _ApiConnection
    connected: bool = False
    notifying: set[int] = field(default_factory=set)
    cccd: bytes = b"\0\0"


class VirtualProxy:
    """An ESPHome Bluetooth proxy serving the native API for virtual boards."""

    def __init__(
        self,
        boards: Iterable[VirtualBoard] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        slots: int = 3,
        profile: LinkProfile | str = "proxy",
        info: ProxyInfo | None = None,
        advertise_interval: float = 1.0,
        rssi: int = -60,
    ) -> None:
        self.host = host
        self.port = port
        self.slots = slots
        self.profile = get_profile(profile)
        self.info = info or ProxyInfo()
        self.advertise_interval = advertise_interval
        self.rssi = rssi
        self.boards: dict[int, VirtualBoard] = {}
        for board in boards:
            self.add_board(board)
        self._server: asyncio.Server | None = None
        self._api: set[_ApiConnection] = set()
        self._connections: dict[int, _BleConnection] = {}
        self._adv_task: asyncio.Task[None] | None = None
        self.api_connections_seen = 0

    # -- life cycle ----------------------------------------------------------

    def add_board(self, board: VirtualBoard) -> None:
        """Make the proxy hear `board`."""
        self.boards[mac_to_int(board.address)] = board

    async def start(self) -> None:
        """Listen (port 0 picks a free port, then `self.port` tells which)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ApiConnection(self), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._adv_task = asyncio.create_task(self._advertise_forever())
        _LOGGER.info("virtual proxy listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Power the proxy off: API clients are cut, BLE connections dropped."""
        if self._adv_task is not None:
            self._adv_task.cancel()
            await asyncio.gather(self._adv_task, return_exceptions=True)
            self._adv_task = None
        server = self._server
        self._server = None
        if server is not None:
            server.close()
        for api in list(self._api):
            api.abort()
        for connection in list(self._connections.values()):
            await self._drop(connection, notify=False)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- slots ---------------------------------------------------------------

    @property
    def allocated(self) -> list[int]:
        """Addresses holding a slot (connecting or connected)."""
        return list(self._connections)

    @property
    def free(self) -> int:
        """Free connection slots."""
        return max(0, self.slots - len(self._connections))

    def _slots_changed(self) -> None:
        message = pb.BluetoothConnectionsFreeResponse(
            free=self.free, limit=self.slots, allocated=self.allocated
        )
        for api in list(self._api):
            if api.wants_slots:
                api.send(message)

    # -- advertisements ------------------------------------------------------

    def advertisements(self) -> Message:
        """What the radio hears now: every advertising board."""
        entries = []
        for address, board in self.boards.items():
            payload = board.advertising_payload
            if payload is None:
                continue
            entries.append(
                pb.BluetoothLERawAdvertisement(
                    address=address,
                    rssi=self.rssi,
                    address_type=0,  # public (Espressif OUI)
                    data=payload + board.scan_response_payload,
                )
            )
        message: Message = pb.BluetoothLERawAdvertisementsResponse(
            advertisements=entries
        )
        return message

    def _advertise_now(self) -> None:
        listeners = [api for api in self._api if api.wants_advertisements]
        if not listeners:
            return
        message = self.advertisements()
        for api in listeners:
            api.send(message)

    async def _advertise_forever(self) -> None:
        while True:
            self._advertise_now()
            await asyncio.sleep(self.advertise_interval)

    # -- BLE connections -----------------------------------------------------

    async def connect(self, api: _ApiConnection, address: int) -> None:
        """BluetoothDeviceRequest connect (the v3 request types)."""
        existing = self._connections.get(address)
        if existing is not None:
            if existing.owner is not api:  # another API client holds it
                api.send_connection(address, False, 0, CONN_CANCEL)
            elif existing.connected:
                api.send_connection(address, True, existing.link.mtu)
            return  # else: the pending connect answers
        board = self.boards.get(address)
        if not self.free:
            _LOGGER.info("%s: no free connection slot", int_to_mac(address))
            api.send_connection(address, False, 0, CONN_CANCEL)
            return
        if board is None or not board.connectable:
            api.send_connection(address, False, 0, CONN_FAIL_ESTABLISH)
            return
        connection = _BleConnection(address, board, SimLink(board, self.profile), api)
        connection.link.on_notify = lambda data: self._on_notify(connection, data)
        connection.link.on_disconnect = lambda: self._on_link_lost(connection)
        self._connections[address] = connection
        api.owned.add(address)
        self._slots_changed()
        try:
            await connection.link.open()
        except LinkError as err:
            _LOGGER.debug("%s: connect failed: %s", int_to_mac(address), err)
            self._release(connection)
            api.send_connection(address, False, 0, CONN_FAIL_ESTABLISH)
            return
        if self._connections.get(address) is not connection:
            await connection.link.close()  # disconnected while connecting
            return
        connection.connected = True
        _LOGGER.info(
            "%s connected (MTU %s, %s of %s slots used)",
            int_to_mac(address),
            connection.link.mtu,
            len(self._connections),
            self.slots,
        )
        api.send_connection(address, True, connection.link.mtu)

    async def disconnect(self, api: _ApiConnection, address: int) -> None:
        """BluetoothDeviceRequest disconnect."""
        connection = self._connections.get(address)
        if connection is None:
            api.send_connection(address, False, 0)
            return
        await self._drop(connection, notify=True)

    async def _drop(self, connection: _BleConnection, *, notify: bool) -> None:
        _LOGGER.info("%s disconnected", int_to_mac(connection.address))
        self._release(connection)
        await connection.link.close()
        if notify:
            connection.owner.send_connection(connection.address, False, 0)

    def _release(self, connection: _BleConnection) -> None:
        if self._connections.get(connection.address) is connection:
            del self._connections[connection.address]
            connection.owner.owned.discard(connection.address)
            connection.connected = False
            self._slots_changed()

    def _on_link_lost(self, connection: _BleConnection) -> None:
        """The board went away (reset, or it terminated the connection)."""
        if self._connections.get(connection.address) is not connection:
            return
        _LOGGER.info(
            "%s dropped the connection (boots so far: %s)",
            int_to_mac(connection.address),
            len(connection.board.boots),
        )
        self._release(connection)
        connection.owner.send_connection(
            connection.address, False, 0, CONN_TERMINATE_PEER_USER
        )

    def _on_notify(self, connection: _BleConnection, data: bytes) -> None:
        if TX_HANDLE in connection.notifying:
            connection.owner.send(
                pb.BluetoothGATTNotifyDataResponse(
                    address=connection.address, handle=TX_HANDLE, data=data
                )
            )

    def connection_for(
        self, api: _ApiConnection, address: int
    ) -> _BleConnection | None:
        """The connected connection `api` holds to `address`, if any."""
        connection = self._connections.get(address)
        if (
            connection is None
            or not connection.connected
            or connection.owner is not api
        ):
            return None
        return connection

    async def api_closed(self, api: _ApiConnection) -> None:
        """An API client went away: its BLE connections go too."""
        self._api.discard(api)
        for address in list(api.owned):
            connection = self._connections.get(address)
            if connection is not None:
                await self._drop(connection, notify=False)


class _ApiConnection(asyncio.Protocol):
    """One API client (Home Assistant, or aioesphomeapi in a test)."""

    def __init__(self, proxy: VirtualProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.wants_advertisements = False
        self.wants_slots = False
        self.owned: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proxy._api.add(self)
        self.proxy.api_connections_seen += 1
        _LOGGER.info(
            "API client connected from %s", transport.get_extra_info("peername")
        )

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FramingError as err:
            _LOGGER.warning("virtual proxy: closing API connection: %s", err)
            self.abort()
            return
        for msg_type, payload in frames:
            message = decode_message(msg_type, payload)
            if message is None:
                _LOGGER.debug("virtual proxy: unknown message type %s", msg_type)
                continue
            self.handle(message)

    def connection_lost(self, exc: Exception | None) -> None:
        _LOGGER.info("API client disconnected")
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        self.spawn_detached(self.proxy.api_closed(self))

    # -- sending -------------------------------------------------------------

    def send(self, message: Any) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(encode_frame(message))

    def send_connection(
        self, address: int, connected: bool, mtu: int, error: int = 0
    ) -> None:
        self.send(
            pb.BluetoothDeviceConnectionResponse(
                address=address, connected=connected, mtu=mtu, error=error
            )
        )

    def send_gatt_error(self, address: int, handle: int, error: int) -> None:
        self.send(
            pb.BluetoothGATTErrorResponse(address=address, handle=handle, error=error)
        )

    def abort(self) -> None:
        """Cut the TCP connection (the proxy rebooted or the client misbehaved)."""
        if self.transport is not None:
            self.transport.abort()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a request handler; starts at once, so requests keep their order."""
        task = asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
        if not task.done():
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def spawn_detached(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
        if not task.done():
            _detached.add(task)
            task.add_done_callback(_detached.discard)

    # -- requests ------------------------------------------------------------

    def handle(self, message: Any) -> None:
        handler = _HANDLERS.get(type(message).__name__)
        if handler is None:
            _LOGGER.debug("virtual proxy: ignoring %s", type(message).__name__)
            return
        handler(self, message)

    def _hello(self, message: Any) -> None:
        info = self.proxy.info
        self.send(
            pb.HelloResponse(
                api_version_major=API_VERSION[0],
                api_version_minor=API_VERSION[1],
                server_info=f"{info.name} (esp32_ota virtual proxy)",
                name=info.name,
            )
        )

    def _authenticate(self, message: Any) -> None:
        # No password configured: like ESPHome, nothing to answer.
        return

    def _device_info(self, message: Any) -> None:
        info = self.proxy.info
        self.send(
            pb.DeviceInfoResponse(
                uses_password=False,
                name=info.name,
                friendly_name=info.friendly_name,
                mac_address=info.mac_address,
                bluetooth_mac_address=info.bluetooth_mac_address,
                esphome_version=info.esphome_version,
                compilation_time="",
                model=info.model,
                manufacturer=info.manufacturer,
                bluetooth_proxy_feature_flags=int(FEATURE_FLAGS),
                api_encryption_supported=False,
            )
        )

    def _list_entities(self, message: Any) -> None:
        self.send(pb.ListEntitiesDoneResponse())

    def _ping(self, message: Any) -> None:
        self.send(pb.PingResponse())

    def _disconnect_request(self, message: Any) -> None:
        self.send(pb.DisconnectResponse())
        if self.transport is not None:
            self.transport.close()

    def _get_time(self, message: Any) -> None:
        return  # a GetTimeResponse to our (never sent) request

    def _subscribe_advertisements(self, message: Any) -> None:
        if not message.flags & _SUBSCRIBE_RAW:
            _LOGGER.warning(
                "virtual proxy: only raw advertisements are offered (flags=%s)",
                message.flags,
            )
            return
        self.wants_advertisements = True
        self.send(self.proxy.advertisements())

    def _unsubscribe_advertisements(self, message: Any) -> None:
        self.wants_advertisements = False

    def _subscribe_slots(self, message: Any) -> None:
        self.wants_slots = True
        proxy = self.proxy
        self.send(
            pb.BluetoothConnectionsFreeResponse(
                free=proxy.free, limit=proxy.slots, allocated=proxy.allocated
            )
        )

    def _device_request(self, message: Any) -> None:
        address = int(message.address)
        kind = int(message.request_type)
        if kind in (_CONNECT_V3_WITH_CACHE, _CONNECT_V3_WITHOUT_CACHE):
            self.spawn(self.proxy.connect(self, address))
        elif kind == _DISCONNECT:
            self.spawn(self.proxy.disconnect(self, address))
        elif kind == _CLEAR_CACHE:
            self.send(
                pb.BluetoothDeviceClearCacheResponse(
                    address=address, success=True, error=0
                )
            )
        elif kind in (_PAIR, _UNPAIR):
            # Not offered (no PAIRING feature flag).
            self.send_connection(address, False, 0, CONN_CANCEL)
        else:  # the old CONNECT (v1/v2 proxies); aioesphomeapi no longer sends it
            self.send_connection(address, False, 0, CONN_CANCEL)

    def _get_services(self, message: Any) -> None:
        address = int(message.address)
        if self._connected(address, 0) is None:
            return
        self.send(services_message(address))
        self.send(pb.BluetoothGATTGetServicesDoneResponse(address=address))

    def _gatt_read(self, message: Any) -> None:
        self.spawn(self._read(int(message.address), int(message.handle), False))

    def _gatt_read_descriptor(self, message: Any) -> None:
        self.spawn(self._read(int(message.address), int(message.handle), True))

    def _connected(self, address: int, handle: int) -> _BleConnection | None:
        """This client's connection to `address`, or None (NOT_CONNECTED sent)."""
        connection = self.proxy.connection_for(self, address)
        if connection is None:
            self.send_gatt_error(address, handle, NOT_CONNECTED)
        return connection

    def _connected_at(
        self, message: Any, target: int, refusals: Mapping[int, int] | None = None
    ) -> _BleConnection | None:
        """The connection of a request that only attribute `target` serves.

        None once the error is sent: NOT_CONNECTED, or for another handle the
        error `refusals` names for it (else GATT_INVALID_HANDLE).
        """
        address, handle = int(message.address), int(message.handle)
        connection = self._connected(address, handle)
        if connection is None or handle == target:
            return connection
        code = (refusals or {}).get(handle, GATT_INVALID_HANDLE)
        self.send_gatt_error(address, handle, code)
        return None

    async def _after_round_trip(
        self, address: int, handle: int
    ) -> _BleConnection | None:
        """The connection once an ATT request made its round trip, or None.

        None means the board is not (or no longer) connected, and the GATT
        error has been sent.
        """
        connection = self.proxy.connection_for(self, address)
        if connection is not None:
            await _round_trip(connection.link)
            if connection.connected:
                return connection
        self.send_gatt_error(address, handle, NOT_CONNECTED)
        return None

    async def _read(self, address: int, handle: int, descriptor: bool) -> None:
        connection = await self._after_round_trip(address, handle)
        if connection is None:
            return
        if descriptor and handle == CCCD_HANDLE:
            data = connection.cccd
        elif not descriptor and handle == TX_HANDLE:
            data = _read_tx(connection.board)
        elif handle == RX_HANDLE:
            self.send_gatt_error(address, handle, GATT_READ_NOT_PERMIT)
            return
        else:
            self.send_gatt_error(address, handle, GATT_INVALID_HANDLE)
            return
        self.send(
            pb.BluetoothGATTReadResponse(address=address, handle=handle, data=data)
        )

    def _gatt_write(self, message: Any) -> None:
        connection = self._connected_at(
            message, RX_HANDLE, {TX_HANDLE: GATT_WRITE_NOT_PERMIT}
        )
        if connection is None:
            return
        data = bytes(message.data)
        if message.response:
            self.spawn(self._write_with_response(connection, data))
            return
        try:
            connection.link.write_without_response(data)
        except LinkClosedError:
            self.send_gatt_error(connection.address, RX_HANDLE, NOT_CONNECTED)
        except LinkError:
            self.send_gatt_error(connection.address, RX_HANDLE, GATT_INVALID_ATTR_LEN)

    async def _write_with_response(
        self, connection: _BleConnection, data: bytes
    ) -> None:
        address = connection.address
        try:
            await connection.link.write_with_response(data)
        except LinkClosedError:
            self.send_gatt_error(address, RX_HANDLE, NOT_CONNECTED)
            return
        except LinkError:
            self.send_gatt_error(address, RX_HANDLE, GATT_INVALID_ATTR_LEN)
            return
        self.send(pb.BluetoothGATTWriteResponse(address=address, handle=RX_HANDLE))

    def _gatt_write_descriptor(self, message: Any) -> None:
        self.spawn(
            self._write_descriptor(
                int(message.address), int(message.handle), bytes(message.data)
            )
        )

    async def _write_descriptor(self, address: int, handle: int, data: bytes) -> None:
        connection = await self._after_round_trip(address, handle)
        if connection is None:
            return
        if handle != CCCD_HANDLE:
            self.send_gatt_error(address, handle, GATT_INVALID_HANDLE)
            return
        connection.cccd = data[:2].ljust(2, b"\0")
        self.send(pb.BluetoothGATTWriteResponse(address=address, handle=handle))

    def _gatt_notify(self, message: Any) -> None:
        connection = self._connected_at(message, TX_HANDLE)
        if connection is None:
            return
        if message.enable:
            connection.notifying.add(TX_HANDLE)
        else:
            connection.notifying.discard(TX_HANDLE)
        self.send(
            pb.BluetoothGATTNotifyResponse(address=connection.address, handle=TX_HANDLE)
        )


async def _round_trip(link: SimLink) -> None:
    """An ATT request and its response: two connection events and the hop twice."""
    profile = link.profile
    await asyncio.sleep((profile.interval_ms * 2 + profile.latency_ms * 2) / 1000)


def _read_tx(board: VirtualBoard) -> bytes:
    ble = board.ble
    handle = getattr(board.peripheral, "_tx", None)
    if ble is None or not handle:
        return b""
    return bytes(ble.gatts_read(handle))


_detached: set[asyncio.Task[None]] = set()

_HANDLERS: dict[str, Callable[[_ApiConnection, Any], None]] = {
    "HelloRequest": _ApiConnection._hello,
    "AuthenticationRequest": _ApiConnection._authenticate,
    "DeviceInfoRequest": _ApiConnection._device_info,
    "ListEntitiesRequest": _ApiConnection._list_entities,
    "PingRequest": _ApiConnection._ping,
    "DisconnectRequest": _ApiConnection._disconnect_request,
    "GetTimeResponse": _ApiConnection._get_time,
    "SubscribeBluetoothLEAdvertisementsRequest": (
        _ApiConnection._subscribe_advertisements
    ),
    "UnsubscribeBluetoothLEAdvertisementsRequest": (
        _ApiConnection._unsubscribe_advertisements
    ),
    "SubscribeBluetoothConnectionsFreeRequest": _ApiConnection._subscribe_slots,
    "BluetoothDeviceRequest": _ApiConnection._device_request,
    "BluetoothGATTGetServicesRequest": _ApiConnection._get_services,
    "BluetoothGATTReadRequest": _ApiConnection._gatt_read,
    "BluetoothGATTReadDescriptorRequest": _ApiConnection._gatt_read_descriptor,
    "BluetoothGATTWriteRequest": _ApiConnection._gatt_write,
    "BluetoothGATTWriteDescriptorRequest": _ApiConnection._gatt_write_descriptor,
    "BluetoothGATTNotifyRequest": _ApiConnection._gatt_notify,
}
