"""Connections to one board: one at a time, through the best adapter or proxy.

Every conversation with a board (an install, or a short read of what it
runs) first holds a connection slot of the fleet scheduler, then the board's
own lock; installs and reads take them in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import bleak_retry_connector
from bleak_retry_connector import (
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
    establish_connection,
)
from homeassistant.components import bluetooth

from .const import CONNECT_ATTEMPTS, VERSION_REPLY_TIMEOUT
from .fleet import connection_path, get_fleet
from .nus_ota.client import OTAClient
from .nus_ota.transport import BleakTransport, Transport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from bleak.backends.device import BLEDevice
    from bleak.exc import BleakError
    from homeassistant.core import HomeAssistant

    from .nus_ota.board_info import BoardInfo

_LOGGER = logging.getLogger(__name__)


class BoardLink:
    """How Home Assistant reaches one board."""

    def __init__(self, hass: HomeAssistant, address: str, name: str) -> None:
        """Nothing connects before `connect()`."""
        self.hass = hass
        self.address = address
        self.name = name
        # The adapter or proxy of the last connection: "name (source)".
        self.connection: str | None = None
        self.lock = asyncio.Lock()
        self._gave_up: BleakError | None = None

    @property
    def busy(self) -> bool:
        """Whether a conversation with the board is under way."""
        return self.lock.locked()

    def heard_now(self) -> bool:
        """Whether a connectable adapter or proxy hears the board right now."""
        return bool(
            bluetooth.async_scanner_devices_by_address(
                self.hass, self.address, connectable=True
            )
        )

    @contextlib.asynccontextmanager
    async def claim(
        self, on_queued: Callable[[], None] | None = None
    ) -> AsyncIterator[None]:
        """Hold a connection slot, then the board; `on_queued` if it waits."""
        async with get_fleet(self.hass).slot(self.address, on_queued), self.lock:
            self._gave_up = None
            yield

    async def connect(self) -> Transport:
        """Connect through whichever adapter or proxy hears the board best."""
        if self._gave_up is not None:
            # establish_connection already retried for half a minute.
            raise self._gave_up
        device = bluetooth.async_ble_device_from_address(
            self.hass, self.address, connectable=True
        )
        if device is None:
            raise BleakNotFoundError(f"{self.name} ({self.address}) is not in range")

        def fresh_device() -> BLEDevice:
            return (
                bluetooth.async_ble_device_from_address(
                    self.hass, self.address, connectable=True
                )
                or device
            )

        try:
            transport = await get_fleet(self.hass).connect(
                self.address, lambda: self._open(device, fresh_device)
            )
        except (BleakOutOfConnectionSlotsError, BleakNotFoundError) as err:
            self._gave_up = err
            raise
        if (path := connection_path(self.hass, self.address)) is not None:
            self.connection = path
        return transport

    async def _open(
        self, device: BLEDevice, fresh_device: Callable[[], BLEDevice]
    ) -> Transport:
        return await BleakTransport.open(
            lambda disconnected: establish_connection(
                # Looked up now: Home Assistant's Bluetooth integration swaps
                # in its wrapper (adapter or proxy, by signal and free slots).
                bleak_retry_connector.BleakClientWithServiceCache,
                device,
                self.name,
                disconnected,
                max_attempts=CONNECT_ATTEMPTS,
                ble_device_callback=fresh_device,
            )
        )

    async def read(self) -> tuple[BoardInfo | None, str | None]:
        """One short connection: the board's HELLO, or a v1 app's VERSION.

        Returns (HELLO, None) for a v2 board, (None, app version) for v1; the
        version is None when the application does not say (in time).
        """
        replies: asyncio.Queue[str] = asyncio.Queue()
        client = OTAClient(await self.connect(), on_app_line=replies.put_nowait)
        try:
            await client.start()
            if (info := await client.hello()) is not None:
                return info, None
            await client.transport.write(b"VERSION\n", response=True)
            try:
                async with asyncio.timeout(VERSION_REPLY_TIMEOUT):
                    while not (line := await replies.get()).startswith("VERSION:"):
                        pass
            except TimeoutError:
                _LOGGER.debug("%s: no VERSION reply from the application", self.name)
                return None, None
            version = line.removeprefix("VERSION:").strip()
            return None, None if version in ("", "unknown") else version
        finally:
            await client.close()
