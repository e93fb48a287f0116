"""Connection slots shared by every board: a queue per adapter or proxy.

An ESPHome Bluetooth proxy holds 3 connections by default and a local
adapter a few more; asking for more fails with an out-of-slots error. When
many boards are updated at once (one action call, or update.install on
many entities), each board waits here for a slot on an adapter or proxy
that hears it, so no source is asked for more connections than it has free.

What a source can hold comes from Home Assistant's Bluetooth manager: its
slot allocations (`slots`, and the addresses already `allocated`, which
ESPHome proxies and local adapters report). Connections we did not make
(another integration's) count against the room; ours count from the moment
a board is admitted until its update ends, including the reconnections of
the update (a v1 board resets after every file). One board holds at most one
slot: its updates and reads wait for each other.

Boards are admitted in the order they asked. A board waits only for slots
our own boards hold: when every source hearing it is full of connections
that are not ours, it goes ahead and its connection reports the full proxy.
A board that no connectable scanner hears fails at once
(`BoardOutOfReachError`); one that waits longer than `QUEUE_TIMEOUT` fails
with `QueueTimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from habluetooth import get_manager
from homeassistant.components import bluetooth
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from habluetooth import HaBluetoothSlotAllocations

_LOGGER = logging.getLogger(__name__)

# When a source reports no allocations, assume the ESPHome proxy default.
FALLBACK_SLOTS: Final = 3
# Re-check waiting boards this often even without a slot event (a board
# going out of range, a source whose slot reports lag).
RECHECK_INTERVAL: Final = 5.0
# A board that gets no slot within this long fails.
QUEUE_TIMEOUT: Final = 1800.0

DATA_FLEET: HassKey[FleetScheduler] = HassKey(f"{DOMAIN}_fleet")


class BoardOutOfReachError(Exception):
    """No connectable adapter or proxy hears the board."""


class QueueTimeoutError(Exception):
    """The board waited too long for a free connection slot."""


@dataclass(slots=True)
class _Waiter:
    address: str
    future: asyncio.Future[str]


@dataclass(slots=True)
class _SourceUse:
    """Our boards holding a slot of one source."""

    boards: set[str] = field(default_factory=set)
    peak: int = 0


class FleetScheduler:
    """Hands out connection slots per source, first come first served."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with nothing held and nobody waiting."""
        self.hass = hass
        self._waiters: list[_Waiter] = []
        self._held: dict[str, str] = {}  # board address -> source
        self._use: dict[str, _SourceUse] = {}
        self._unsub_allocations: Callable[[], None] | None = None

    # -- what the Bluetooth stack knows

    def _candidate_sources(self, address: str) -> list[str]:
        """Return the connectable sources hearing the board, best signal first."""
        devices = bluetooth.async_scanner_devices_by_address(
            self.hass, address, connectable=True
        )
        devices.sort(key=lambda device: device.advertisement.rssi, reverse=True)
        return [device.scanner.source for device in devices]

    def capacity(self, source: str) -> int:
        """Slots of `source` we may use: its slots minus connections not ours."""
        allocations = get_manager().async_current_allocations(source)
        if not allocations:
            return FALLBACK_SLOTS
        current = allocations[0]
        ours = self._use.get(source, _SourceUse()).boards
        others = [address for address in current.allocated if address not in ours]
        return max(0, current.slots - len(others))

    def _holding(self, source: str) -> int:
        """Return how many of our boards hold a slot of `source`."""
        return len(self._use.get(source, _SourceUse()).boards)

    def _room(self, source: str) -> int:
        return self.capacity(source) - self._holding(source)

    # -- admitting

    @callback
    def _admit(self) -> None:
        """Give free slots to waiting boards, in the order they asked."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            if waiter.address in self._held:
                continue  # the board's other job finishes first
            sources = self._candidate_sources(waiter.address)
            if not sources:
                self._waiters.remove(waiter)
                waiter.future.set_exception(BoardOutOfReachError(waiter.address))
                continue
            free = [source for source in sources if self._room(source) > 0]
            if not free and not any(self._holding(source) for source in sources):
                # Full with connections that are not ours: nothing of ours
                # will free a slot, so let the connection try (and fail
                # with out-of-slots after its retries) rather than wait.
                free = sources[:1]
            if free:
                self._waiters.remove(waiter)
                self._hold(waiter.address, free[0])
                waiter.future.set_result(free[0])

    def _hold(self, address: str, source: str) -> None:
        self._held[address] = source
        use = self._use.setdefault(source, _SourceUse())
        use.boards.add(address)
        use.peak = max(use.peak, len(use.boards))

    @callback
    def _release(self, address: str) -> None:
        source = self._held.pop(address, None)
        if source is not None:
            self._use[source].boards.discard(address)
        self._admit()

    def _follow_allocations(self) -> None:
        """Listen to slot changes from the first wait until Home Assistant stops.

        Never from inside an allocation callback: habluetooth iterates over
        its callbacks while calling them, so subscribing or unsubscribing
        there breaks its loop (and the proxy's report that triggered it).
        """
        if self._unsub_allocations is not None:
            return
        self._unsub_allocations = get_manager().async_register_allocation_callback(
            self._on_allocations
        )

        @callback
        def unsubscribe(_event: Event) -> None:
            if self._unsub_allocations is not None:
                self._unsub_allocations()
                self._unsub_allocations = None

        self.hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, unsubscribe)

    @callback
    def _on_allocations(self, _allocations: HaBluetoothSlotAllocations) -> None:
        self._admit()

    @contextlib.asynccontextmanager
    async def slot(
        self, address: str, on_queued: Callable[[], None] | None = None
    ) -> AsyncIterator[str]:
        """Hold a connection slot for one board; yields the source reserved.

        `on_queued` is called once if the board has to wait.
        """
        future: asyncio.Future[str] = self.hass.loop.create_future()
        self._waiters.append(_Waiter(address, future))
        self._follow_allocations()
        self._admit()
        if not future.done() and on_queued is not None:
            on_queued()
        try:
            await self._wait(future)
        except BaseException:
            if not future.done():
                future.cancel()
                self._admit()
            elif not future.cancelled() and future.exception() is None:
                self._release(address)  # admitted just as we were cancelled
            raise
        source = future.result()
        _LOGGER.debug("%s: connection slot on %s", address, source)
        try:
            yield source
        finally:
            self._release(address)

    async def _wait(self, future: asyncio.Future[str]) -> None:
        """Wait for admission, re-checking now and then; bounded."""
        try:
            async with asyncio.timeout(QUEUE_TIMEOUT):
                while not future.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(future), RECHECK_INTERVAL)
                    if not future.done():
                        self._admit()
        except TimeoutError as err:
            raise QueueTimeoutError from err

    # -- for diagnostics and tests

    def queued(self) -> list[str]:
        """Addresses of boards waiting for a slot, in order."""
        return [waiter.address for waiter in self._waiters]

    def as_dict(self) -> dict[str, object]:
        """Return what is held and waiting, per source."""
        return {
            "waiting": self.queued(),
            "sources": {
                source: {
                    "capacity": self.capacity(source),
                    "held_by": sorted(use.boards),
                    "peak": use.peak,
                }
                for source, use in self._use.items()
            },
        }


def connection_path(hass: HomeAssistant, address: str) -> str | None:
    """Return the adapter or proxy connected to `address` ("name (source)")."""
    for allocation in get_manager().async_current_allocations() or []:
        if address in allocation.allocated:
            scanner = bluetooth.async_scanner_by_source(hass, allocation.source)
            return scanner.name if scanner is not None else allocation.source
    return None


def get_fleet(hass: HomeAssistant) -> FleetScheduler:
    """Return the scheduler of this Home Assistant instance (made on first use)."""
    if (fleet := hass.data.get(DATA_FLEET)) is None:
        fleet = hass.data[DATA_FLEET] = FleetScheduler(hass)
    return fleet
