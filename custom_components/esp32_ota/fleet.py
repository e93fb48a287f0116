"""Connection slots shared by every board: when each board may connect.

An ESPHome Bluetooth proxy holds 3 connections by default and a local
adapter a few more; asking for more fails with an out-of-slots error. When
many boards are updated at once (one action call, or update.install on many
entities), each board waits here until it may connect.

The fleet decides *when* a board connects, never *through which scanner*
(adapter or proxy): Home Assistant's Bluetooth wrapper picks the path of
every connection itself, among the scanners that hear the board, by signal,
free slots, recent failures and connections in progress; the `BLEDevice`
passed does not pin it. So a board is admitted when the free slots of the
scanners that hear it can take it *together with our other admitted boards
that are not connected yet*: each of those needs a free slot on one of the
scanners that hear it (a matching of boards to free slots). A connected
board already counts in its scanner's allocations, as do connections of
other integrations. Free slots come from Home Assistant's Bluetooth manager
(the allocations ESPHome proxies and local adapters report).

A board stays admitted from its admission until its transfer ends,
including the reconnections of the transfer (a v1 board resets after every
file); while it waits for its program to confirm a new version it holds
nothing, and each look at it is admitted anew, `first`: ahead of the boards
that have not started. One board is admitted at most once: its updates and
reads wait for each other. Otherwise boards are admitted in the order they
asked; a later board goes first only when the earlier ones cannot be placed.

Reports lag and the wrapper may pick a scanner we counted for another of our
boards, so a connection can still be refused for lack of slots. That is not
a failure: `connect()` waits for a slot to free on a scanner that hears the
board and tries again. A board that no connectable scanner hears fails at
once (`BoardOutOfReachError`); waiting is bounded by `QUEUE_TIMEOUT` for the
admission (`QueueTimeoutError`) and again for a connection's retries (the
out-of-slots error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from bleak_retry_connector import BleakOutOfConnectionSlotsError
from habluetooth import get_manager
from homeassistant.components import bluetooth
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from habluetooth import HaBluetoothSlotAllocations

_LOGGER = logging.getLogger(__name__)

# When a scanner reports no allocations, assume the ESPHome proxy default.
FALLBACK_SLOTS: Final = 3
# Re-check waiting boards this often even without a slot event (a board
# going out of range, a scanner whose slot reports lag).
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
    future: asyncio.Future[None]
    first: bool  # ahead of the others (a board in the middle of its update)


class _Matching:
    """Boards placed on free slots of the scanners that hear them."""

    def __init__(
        self, free: Callable[[str], int], hearing: Callable[[str], list[str]]
    ) -> None:
        self._free = free
        self._hearing = hearing
        self._placed: dict[str, str] = {}  # board -> scanner

    def place(self, board: str) -> bool:
        """Place `board`, moving placed boards to other scanners if that helps."""
        return self._place(board, set())

    def _place(self, board: str, tried: set[str]) -> bool:
        for scanner in self._hearing(board):
            if scanner in tried:
                continue
            tried.add(scanner)
            users = [other for other, on in self._placed.items() if on == scanner]
            if len(users) < self._free(scanner) or any(
                self._place(other, tried) for other in users
            ):
                self._placed[board] = scanner
                return True
        return False


class FleetScheduler:
    """Admits boards to connect while the scanners that hear them have room."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with nobody admitted and nobody waiting."""
        self.hass = hass
        self._waiters: list[_Waiter] = []
        self._admitted: set[str] = set()
        self._changes: list[asyncio.Future[None]] = []  # waiting for a slot event
        self._peak: dict[str, int] = {}  # scanner -> most connections seen
        self.refusals = 0  # connections refused for lack of slots, then retried
        self._unsub_allocations: Callable[[], None] | None = None

    # -- what the Bluetooth stack knows

    def _hearing(self, address: str) -> list[str]:
        """Return the connectable scanners hearing the board, best signal first."""
        devices = bluetooth.async_scanner_devices_by_address(
            self.hass, address, connectable=True
        )
        devices.sort(key=lambda device: device.advertisement.rssi, reverse=True)
        return [device.scanner.source for device in devices]

    def _allocations(self) -> dict[str, HaBluetoothSlotAllocations]:
        current = get_manager().async_current_allocations() or []
        return {allocations.source: allocations for allocations in current}

    def _matching(self) -> _Matching:
        """Our admitted boards that are not connected, placed on free slots."""
        allocations = self._allocations()
        connected = {
            address for current in allocations.values() for address in current.allocated
        }

        def free(scanner: str) -> int:
            current = allocations.get(scanner)
            return FALLBACK_SLOTS if current is None else current.free

        matching = _Matching(free, self._hearing)
        for address in self._admitted - connected:
            matching.place(address)
        return matching

    # -- admitting

    @callback
    def _admit(self) -> None:
        """Admit waiting boards that fit, in the order they asked."""
        matching = self._matching()
        for waiter in sorted(self._waiters, key=lambda waiter: not waiter.first):
            if waiter.future.done():
                self._waiters.remove(waiter)
            elif waiter.address in self._admitted:
                continue  # the board's other job finishes first
            elif not self._hearing(waiter.address):
                self._waiters.remove(waiter)
                waiter.future.set_exception(BoardOutOfReachError(waiter.address))
            elif matching.place(waiter.address):
                self._waiters.remove(waiter)
                self._admitted.add(waiter.address)
                waiter.future.set_result(None)

    @callback
    def _release(self, address: str) -> None:
        self._admitted.discard(address)
        self._admit()

    def _follow_allocations(self) -> None:
        """Listen to slot changes from the first use until Home Assistant stops.

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
    def _on_allocations(self, allocations: HaBluetoothSlotAllocations) -> None:
        scanner = allocations.source  # habluetooth names a scanner by its source
        self._peak[scanner] = max(
            self._peak.get(scanner, 0), len(allocations.allocated)
        )
        for change in self._changes:
            if not change.done():
                change.set_result(None)
        self._admit()

    @contextlib.asynccontextmanager
    async def slot(
        self,
        address: str,
        on_queued: Callable[[], None] | None = None,
        *,
        first: bool = False,
    ) -> AsyncIterator[None]:
        """Be admitted to connect `address` until the block ends.

        `on_queued` is called once if the board has to wait; `first` puts it
        ahead of the boards waiting without it.
        """
        self._follow_allocations()
        future: asyncio.Future[None] = self.hass.loop.create_future()
        self._waiters.append(_Waiter(address, future, first))
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
        future.result()  # out of reach
        _LOGGER.debug("%s: admitted to connect", address)
        try:
            yield
        finally:
            self._release(address)

    async def _wait(self, future: asyncio.Future[None]) -> None:
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

    async def connect[T](self, address: str, open_: Callable[[], Awaitable[T]]) -> T:
        """Open a connection of an admitted board; out of slots, wait and retry.

        Raises the last out-of-slots error once no scanner hears the board
        or after `QUEUE_TIMEOUT` of retrying.
        """
        deadline = self.hass.loop.time() + QUEUE_TIMEOUT
        while True:
            try:
                return await open_()
            except BleakOutOfConnectionSlotsError:
                left = deadline - self.hass.loop.time()
                if left <= 0 or not self._hearing(address):
                    raise
                self.refusals += 1
                _LOGGER.debug("%s: no free slot after all; waiting for one", address)
                await self._next_change(min(left, RECHECK_INTERVAL))

    async def _next_change(self, seconds: float) -> None:
        """Wait for the next slot report of any scanner, at most `seconds`."""
        change: asyncio.Future[None] = self.hass.loop.create_future()
        self._changes.append(change)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(change, seconds)
        finally:
            self._changes.remove(change)

    # -- for diagnostics and tests

    def queued(self) -> list[str]:
        """Addresses of boards waiting for admission, in order."""
        return [waiter.address for waiter in self._waiters]

    def as_dict(self) -> dict[str, object]:
        """Return who is admitted and waiting, and each scanner's slots."""
        return {
            "admitted": sorted(self._admitted),
            "waiting": self.queued(),
            "refusals": self.refusals,
            "scanners": {
                scanner: {
                    "slots": current.slots,
                    "free": current.free,
                    "ours": sorted(self._admitted & set(current.allocated)),
                    "peak": self._peak.get(scanner, 0),
                }
                for scanner, current in self._allocations().items()
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
