"""Connections to one board: one conversation at a time.

Every conversation with a board (an install, or a short read of what it
runs) is first admitted by the fleet scheduler, then holds the board's own
lock; installs and reads take them in that order. Home Assistant's
Bluetooth wrapper picks the adapter or proxy of each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import bleak_retry_connector
from bleak_retry_connector import (
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
    establish_connection,
)
from homeassistant.components import bluetooth

from .const import CONNECT_ATTEMPTS
from .fleet import connection_path, get_fleet
from .nus_ota.client import OTAClient
from .nus_ota.transport import BleakTransport, Transport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from bleak.backends.device import BLEDevice
    from bleak.exc import BleakError
    from homeassistant.core import HomeAssistant

    from .nus_ota.board_info import BoardInfo


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
        self, on_queued: Callable[[], None] | None = None, *, first: bool = False
    ) -> AsyncIterator[None]:
        """Hold a connection slot, then the board; `on_queued` if it waits.

        `first`: ahead of the boards that have not started yet (a board in
        the middle of an update that only needs a short look).
        """
        async with (
            get_fleet(self.hass).slot(self.address, on_queued, first=first),
            self.lock,
        ):
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

    async def read(
        self, key: str | None = None
    ) -> tuple[BoardInfo | None, str | None, bool]:
        """One short connection: the board's HELLO, or a v1 app's VERSION.

        Returns (HELLO, None, signed) for a v2 board, (None, app version,
        False) for v1; the version is None when the application does not say
        (in time). With the board's `key` the HELLO is challenged, and
        `signed` says whether the board proved it knows the key.
        """
        client = OTAClient(await self.connect())
        try:
            await client.start()
            if (info := await client.hello(key=key)) is not None:
                return info, None, client.authenticated
            return None, await client.ask_v1_version(), False
        finally:
            await client.close()
