"""The link between client and board: a protocol, and its bleak implementation.

`Transport` is all the client needs: one line per write, notifications as
bytes, a disconnect signal. `BleakTransport` implements it over a connected
bleak `BleakClient` (local adapter, ESPHome proxy, or HA's wrapper of both).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, Protocol

from bleak.exc import BleakError

from .errors import DisconnectedError, OTAError, TransportError

if TYPE_CHECKING:
    from bleak import BleakClient
    from bleak.backends.characteristic import BleakGATTCharacteristic

NUS_SERVICE_UUID: Final = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX_UUID: Final = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"  # client → board
NUS_TX_UUID: Final = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"  # board → client

# bleak reports 20 until the MTU exchange is known on some stacks; wait a
# little for a real value before settling for it.
DEFAULT_WRITE_SIZE: Final = 20
MTU_WAIT: Final = 2.0
MTU_POLL: Final = 0.1
# A stack that never completes an unsubscribe or disconnect must not hold
# the caller (and its proxy slot) forever.
CLOSE_TIMEOUT: Final = 5.0

type DataCallback = Callable[[bytes], None]
type DisconnectCallback = Callable[[], None]


class Transport(Protocol):
    """What OTAClient needs from a link."""

    @property
    def max_write(self) -> int:
        """Largest write without response, in bytes (MTU - 3)."""

    @property
    def is_connected(self) -> bool:
        """False once the link dropped or was closed."""

    async def start(
        self, on_data: DataCallback, on_disconnect: DisconnectCallback
    ) -> None:
        """Subscribe to the board's lines; `on_disconnect` fires once on link loss."""

    async def write(self, data: bytes, *, response: bool) -> None:
        """Write one line; with response waits for the link-layer acknowledgement."""

    async def close(self) -> None:
        """Stop notifications and disconnect; safe to call twice."""


class BleakTransport:
    """NUS over a connected bleak client.

    Bleak only reports a disconnect to the callback given when the client is
    created, so build the client with `transport.handle_disconnect` as its
    `disconnected_callback` (see `open`).
    """

    def __init__(self, client: BleakClient | None = None) -> None:
        """Client may be set later (see `open`)."""
        self._client = client
        self._rx: BleakGATTCharacteristic | None = None
        self._on_data: DataCallback | None = None
        self._on_disconnect: DisconnectCallback | None = None
        self._lost = False

    @classmethod
    async def open(
        cls, connect: Callable[[Callable[[BleakClient], None]], Awaitable[BleakClient]]
    ) -> BleakTransport:
        """Connect with `connect(disconnected_callback)` and wrap the client.

        In Home Assistant: `await BleakTransport.open(lambda cb:
        establish_connection(BleakClientWithServiceCache, device, name, cb))`.
        """
        transport = cls()
        transport._client = await connect(transport.handle_disconnect)
        return transport

    @property
    def client(self) -> BleakClient:
        """The wrapped bleak client."""
        if self._client is None:
            raise DisconnectedError("transport has no client")
        return self._client

    def handle_disconnect(self, _client: BleakClient | None = None) -> None:
        """Bleak's disconnected_callback: tell the OTA client once."""
        if self._lost:
            return
        self._lost = True
        if self._on_disconnect is not None:
            self._on_disconnect()

    @property
    def is_connected(self) -> bool:
        """False once the link dropped or was closed."""
        return not self._lost and self._client is not None and self._client.is_connected

    @property
    def max_write(self) -> int:
        """Return RX's `max_write_without_response_size` (not `mtu_size`)."""
        if self._rx is None:
            return DEFAULT_WRITE_SIZE
        return int(self._rx.max_write_without_response_size)

    async def start(
        self, on_data: DataCallback, on_disconnect: DisconnectCallback
    ) -> None:
        """Find the NUS characteristics and subscribe to TX."""
        client = self.client
        self._on_data = on_data
        self._on_disconnect = on_disconnect
        try:
            rx = client.services.get_characteristic(NUS_RX_UUID)
            tx = client.services.get_characteristic(NUS_TX_UUID)
            if rx is None or tx is None:
                raise TransportError("the device has no Nordic UART Service")
            self._rx = rx
            await client.start_notify(tx, self._notified)
        except BleakError as err:
            raise self._error(err) from err
        # Some stacks report 20 until the MTU exchange completed.
        loop = asyncio.get_running_loop()
        until = loop.time() + MTU_WAIT
        while self._rx.max_write_without_response_size <= DEFAULT_WRITE_SIZE:
            if loop.time() >= until or not self.is_connected:
                break
            await asyncio.sleep(MTU_POLL)

    def _notified(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        if self._on_data is not None:
            self._on_data(bytes(data))

    async def write(self, data: bytes, *, response: bool) -> None:
        """Write one line to RX."""
        if self._rx is None:
            raise TransportError("transport not started")
        if not self.is_connected:
            raise DisconnectedError("link is down")
        try:
            await self.client.write_gatt_char(self._rx, data, response=response)
        except BleakError as err:
            raise self._error(err) from err

    def _error(self, err: BleakError) -> OTAError:
        if not self.is_connected:
            return DisconnectedError(f"link dropped: {err}")
        return TransportError(str(err))

    async def close(self) -> None:
        """Stop notifications and disconnect; never raises on a dead link."""
        client = self._client
        self._on_data = None
        self._on_disconnect = None
        self._lost = True
        if client is None:
            return
        with contextlib.suppress(BleakError, OSError, TimeoutError):
            if client.is_connected:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await client.stop_notify(NUS_TX_UUID)
        with contextlib.suppress(BleakError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await client.disconnect()
