"""bleak-esphome's scanner and client on a real aioesphomeapi connection.

What Home Assistant's esphome integration does for a Bluetooth proxy
(homeassistant/components/esphome: manager.py `on_connect`/`on_disconnect`,
bluetooth.py `async_connect_scanner`), without the rest of that integration
(its voice, dashboard and ffmpeg dependencies are not installed for tests):

- an `APIClient` kept connected by aioesphomeapi's `ReconnectLogic`;
- on connect: device info, `bleak_esphome.connect_scanner` (slots, raw
  advertisements, the ESPHomeClient connector), the scanner registered with
  the Bluetooth manager;
- on disconnect: the device marked unavailable, the disconnect callbacks run
  (open BLE clients learn that the proxy is gone), the scanner unregistered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aioesphomeapi.client import APIClient
from aioesphomeapi.reconnect_logic import ReconnectLogic
from bleak_esphome import connect_scanner
from habluetooth import get_manager

if TYPE_CHECKING:
    from collections.abc import Callable

    from bleak_esphome.backend.device import ESPHomeBluetoothDevice
    from habluetooth import BaseHaRemoteScanner

__all__ = ["ProxyScannerLink"]

_LOGGER = logging.getLogger(__name__)

type RegisterScanner = Callable[[BaseHaRemoteScanner], Callable[[], None]]


def _register_with_manager(scanner: BaseHaRemoteScanner) -> Callable[[], None]:
    return get_manager().async_register_scanner(scanner)


class ProxyScannerLink:
    """Keeps a proxy's scanner registered while its API connection is up."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        register: RegisterScanner = _register_with_manager,
        client_info: str = "esp32_ota tests",
    ) -> None:
        self.client = APIClient(host, port, None, client_info=client_info)
        self._register = register
        self._logic = ReconnectLogic(
            client=self.client,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            name=host,
        )
        self._disconnect_callbacks: set[Callable[[], None]] = set()
        self._device: ESPHomeBluetoothDevice | None = None
        self.scanner: BaseHaRemoteScanner | None = None
        self.connects = 0
        self.disconnects = 0
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        """Connect (in the background, retrying) and wait for the first connection."""
        await self._logic.start()
        await self.wait_connects(1)

    async def stop(self) -> None:
        """Stop reconnecting, disconnect, unregister the scanner."""
        await self._logic.stop()
        await self.client.disconnect()
        self._teardown()

    async def wait_connects(self, count: int) -> None:
        """Wait until the link has connected `count` times in all."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.connects >= count)

    async def wait_disconnects(self, count: int) -> None:
        """Wait until the link has lost its connection `count` times in all."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.disconnects >= count)

    async def _on_connect(self) -> None:
        device_info = await self.client.device_info()
        data = connect_scanner(self.client, device_info, True)
        data.disconnect_callbacks = self._disconnect_callbacks
        scanner = data.scanner
        assert scanner is not None
        self._device = data.bluetooth_device
        self.scanner = scanner
        self._disconnect_callbacks.add(self._register(scanner))
        self._disconnect_callbacks.add(scanner.async_setup())
        _LOGGER.debug("scanner %s registered", scanner.source)
        async with self._changed:
            self.connects += 1
            self._changed.notify_all()

    async def _on_disconnect(self, expected_disconnect: bool) -> None:
        _LOGGER.debug("proxy API disconnected (expected=%s)", expected_disconnect)
        self._teardown()
        async with self._changed:
            self.disconnects += 1
            self._changed.notify_all()

    def _teardown(self) -> None:
        if self._device is not None:
            self._device.available = False
        callbacks = list(self._disconnect_callbacks)
        self._disconnect_callbacks.clear()
        for callback in callbacks:
            callback()
        self.scanner = None
