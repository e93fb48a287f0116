"""The BLE link between a central (client or proxy) and a virtual board.

Timing model (only `loop.time()` and `loop.call_at`, so it runs on a real
loop and on `clock.VirtualTimeLoop` alike):

- Connecting plus service discovery takes `connect_ms` (+ up to
  `connect_spread_ms`, seeded): 1-3 s through an ESPHome proxy.
- Connection events happen every `interval_ms`. In each event at most
  `packets_per_event` packets go each way (one ATT write or notification each).
- The proxy's Wi-Fi hop: every packet takes `latency_ms`, ± `jitter_ms`
  (uniform), and with probability `spike_rate` a spike of `spike_ms` to
  2 x `spike_ms` more (Wi-Fi retries, power save). The hop keeps order, like
  TCP: a packet never overtakes the one before it, so a spike also delays
  everything behind it. A link never reorders.
- A client write crosses the hop, then waits in the proxy's bounded queue
  (`queue_limit`) for a connection event. A full queue drops a write without
  response silently, as a congested ESP-IDF does. `write_loss` loses a share
  of writes without response at their connection event: the packet still
  used its place in the event's budget, the board never sees it (seeded, so
  runs repeat exactly).
- A write with response completes one interval after its event (the ATT
  response rides the next event) plus the hop back.
- Notifications the board sends wait in its stack's bounded queue
  (`notify_queue_limit`; a full queue drops them) for an event, then cross
  the hop; `notify_loss` drops a share of them at the event (after they used
  the budget), `notify_dup` delivers a share twice (a proxy or stack that
  repeats a notification).
- `stall(seconds)` holds every connection event for a while, as a proxy
  whose Wi-Fi hop hangs: nothing moves either way, the link stays up.
- A board that resets is noticed by the central only after the supervision
  timeout; a disconnect either side asks for takes an event plus the hop.

Profiles (`PROFILES`): `proxy` (a fixed 10 ms hop, the reference of the
benchmark's figures), `wifi-proxy` (a real house: 10 ms ± 5 ms, spikes of
100-200 ms on 0.3 % of packets, 1 % of writes and 0.5 % of notifications
lost), `lossy-proxy` (15 ms, 2 % of writes lost), `local` (an adapter in the
Home Assistant host) and `fast` (for tests that are not about timing: the
board it connects to runs fast too). Every proxy profile connects in 1-3 s
and bounds both queues.
"""

from __future__ import annotations

import asyncio
import math
import random
import weakref
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from .speed import BoardSpeed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ATT_HEADER",
    "PROFILES",
    "DelayLine",
    "LinkClosedError",
    "LinkError",
    "LinkPeer",
    "LinkProfile",
    "LinkStats",
    "SimLink",
    "get_profile",
]

ATT_HEADER = 3


class LinkError(Exception):
    """A link operation failed (oversized write, board unreachable)."""


class LinkClosedError(LinkError):
    """The link is not (or no longer) connected."""


@dataclass(frozen=True)
class LinkProfile:
    """Radio, proxy and board-speed parameters of one kind of connection."""

    mtu: int
    interval_ms: float
    packets_per_event: int
    latency_ms: float
    write_loss: float = 0.0
    notify_loss: float = 0.0
    notify_dup: float = 0.0
    # The board's speed while connected this way (None: the board's own).
    board_speed: BoardSpeed | None = None
    seed: int = 0
    queue_limit: int | None = None
    notify_queue_limit: int | None = None
    supervision_ms: float = 720.0
    connect_ms: float | None = None
    connect_spread_ms: float = 0.0
    jitter_ms: float = 0.0
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    name: str = "custom"

    @property
    def payload(self) -> int:
        """Largest write or notification: MTU minus the ATT header."""
        return self.mtu - ATT_HEADER

    @property
    def connect_time_ms(self) -> float:
        """Connecting plus service discovery, shortest (see connect_spread_ms)."""
        if self.connect_ms is not None:
            return self.connect_ms
        return 2 * self.latency_ms + 4 * self.interval_ms


_PROXY = LinkProfile(
    mtu=247,
    interval_ms=30.0,
    packets_per_event=4,
    latency_ms=10.0,
    queue_limit=32,
    notify_queue_limit=16,
    connect_ms=1000.0,
    connect_spread_ms=2000.0,
    name="proxy",
)

PROFILES: dict[str, LinkProfile] = {
    profile.name: profile
    for profile in (
        _PROXY,
        replace(
            _PROXY,
            jitter_ms=5.0,
            spike_rate=0.003,
            spike_ms=100.0,
            write_loss=0.01,
            notify_loss=0.005,
            name="wifi-proxy",
        ),
        LinkProfile(
            mtu=256, interval_ms=15.0, packets_per_event=6, latency_ms=0.0, name="local"
        ),
        replace(_PROXY, latency_ms=15.0, write_loss=0.02, name="lossy-proxy"),
        LinkProfile(
            mtu=256,
            interval_ms=1.0,
            packets_per_event=64,
            latency_ms=0.0,
            board_speed=BoardSpeed(line_cost_ms=0.05, byte_cost_us=0.0),
            supervision_ms=5.0,
            name="fast",
        ),
    )
}


def get_profile(profile: LinkProfile | str) -> LinkProfile:
    """A profile by name, or the profile itself."""
    if isinstance(profile, LinkProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise LinkError(
            f"unknown link profile {profile!r}; known: {sorted(PROFILES)}"
        ) from None


@dataclass
class LinkStats:
    """Counters for the benchmark."""

    writes: int = 0
    writes_with_response: int = 0
    writes_lost: int = 0
    writes_dropped: int = 0
    writes_delivered: int = 0
    notifications: int = 0
    notifications_lost: int = 0
    notifications_dropped: int = 0
    notifications_delivered: int = 0
    notifications_duplicated: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    events: int = 0
    max_queue: int = 0
    spikes: int = 0
    max_hop_ms: float = 0.0


# Connections made to each peer so far (peers are forgotten with their board).
_connections: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class LinkPeer(Protocol):
    """The board side of a link (VirtualBoard implements it)."""

    address: str

    @property
    def connectable(self) -> bool:
        """True while the peer advertises and accepts a connection."""
        ...

    def accept(self, link: SimLink) -> int:
        """A central connected; returns the connection handle."""
        ...

    def receive(self, link: SimLink, data: bytes) -> None:
        """A write arrived at a connection event."""
        ...

    def central_disconnected(self, link: SimLink, conn: int | None) -> None:
        """The central disconnected."""
        ...


class DelayLine:
    """A FIFO of items due at non-decreasing times, on one timer.

    One `call_at` per item would not do: asyncio does not keep the order of
    timers due at the same instant, and the link must keep packet order.
    """

    def __init__(
        self,
        get_loop: Callable[[], asyncio.AbstractEventLoop],
        deliver: Callable[[Any], None],
    ) -> None:
        self._get_loop = get_loop
        self._deliver = deliver
        self._items: deque[tuple[float, Any]] = deque()
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, when: float, item: Any) -> None:
        self._items.append((when, item))
        if self._handle is None:
            self._handle = self._get_loop().call_at(self._items[0][0], self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self._get_loop().time()
        while self._items and self._items[0][0] <= now:
            self._deliver(self._items.popleft()[1])
        if self._items and self._handle is None:
            self._handle = self._get_loop().call_at(self._items[0][0], self._fire)

    def clear(self) -> list[Any]:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        items = [item for _, item in self._items]
        self._items.clear()
        return items


class _Write:
    __slots__ = ("data", "done")

    def __init__(self, data: bytes, done: asyncio.Future[None] | None) -> None:
        self.data = data
        self.done = done


class SimLink:
    """One connection between a central and a `VirtualBoard`."""

    def __init__(
        self,
        board: LinkPeer,
        profile: LinkProfile | str = "fast",
        *,
        on_notify: Callable[[bytes], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.board = board
        self.profile = get_profile(profile)
        self.on_notify = on_notify
        self.on_disconnect = on_disconnect
        self.stats = LinkStats()
        self.mtu = 23
        self.conn_handle: int | None = None
        self._loop = loop
        # Seeded per board and per connection: runs repeat exactly, and a
        # new connection does not replay the last one's faults.
        number = _connections[board] = _connections.get(board, 0) + 1
        seed = f"{self.profile.seed}:{board.address}:{number}"
        self._rng = random.Random(seed)
        self._hop_rng = random.Random(seed + ":hop")
        self._hop_free = dict.fromkeys(("up", "down", "response"), -math.inf)
        self._up: deque[_Write] = deque()
        self._down: deque[bytes] = deque()
        self._to_proxy = DelayLine(lambda: self.loop, self._arrive_at_proxy)
        self._to_central = DelayLine(lambda: self.loop, self._deliver_notify)
        self._responses = DelayLine(lambda: self.loop, self._complete_write)
        self._anchor = 0.0
        self._last_event = -math.inf
        self._stalled_until = -math.inf
        self._event_handle: asyncio.TimerHandle | None = None
        self._state = "idle"

    # -- helpers -------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _in_state(self, state: str) -> bool:
        # A call, not an attribute test: callbacks may change the state.
        return self._state == state

    @property
    def connected(self) -> bool:
        """True from the end of `open()` until either side disconnects."""
        return self._state == "open"

    @property
    def _interval(self) -> float:
        return self.profile.interval_ms / 1000

    @property
    def _latency(self) -> float:
        return self.profile.latency_ms / 1000

    def _hop(self, direction: str, enter: float | None = None) -> float:
        """When a packet entering the Wi-Fi hop (now) comes out, in order.

        `direction`: "up", "down" (notifications) or "response" (ATT write
        responses, which leave at the event after their write).
        """
        profile = self.profile
        delay = profile.latency_ms
        if profile.jitter_ms:
            delay += (2 * self._hop_rng.random() - 1) * profile.jitter_ms
        if profile.spike_rate and self._hop_rng.random() < profile.spike_rate:
            self.stats.spikes += 1
            delay += profile.spike_ms * (1 + self._hop_rng.random())
        delay = max(0.0, delay)
        self.stats.max_hop_ms = max(self.stats.max_hop_ms, delay)
        start = self.loop.time() if enter is None else enter
        when = max(start + delay / 1000, self._hop_free[direction])
        self._hop_free[direction] = when
        return when

    async def _sleep_until(self, when: float) -> None:
        future: asyncio.Future[None] = self.loop.create_future()
        handle = self.loop.call_at(when, _resolve, future)
        try:
            await future
        finally:
            handle.cancel()

    # -- connecting ----------------------------------------------------------

    async def open(self) -> None:
        """Connect to the board and negotiate the MTU."""
        if self._state != "idle":
            raise LinkError("a SimLink connects once; make a new one")
        if not _reachable(self.board):
            raise LinkError(f"{self.board.address} is not advertising")
        self._state = "connecting"
        connect_ms = self.profile.connect_time_ms
        if self.profile.connect_spread_ms:
            connect_ms += self._hop_rng.random() * self.profile.connect_spread_ms
        await self._sleep_until(self.loop.time() + connect_ms / 1000)
        if not self._in_state("connecting"):
            raise LinkClosedError("disconnected while connecting")
        if not _reachable(self.board):
            self._state = "closed"
            raise LinkError(
                f"{self.board.address} stopped advertising while connecting"
            )
        self._anchor = self.loop.time()
        self._state = "open"
        self.mtu = self.profile.mtu
        self.conn_handle = self.board.accept(self)

    # -- central -> board ----------------------------------------------------

    def _check_write(self, data: bytes) -> None:
        if not self.connected:
            raise LinkClosedError("not connected")
        if len(data) > self.mtu - ATT_HEADER:
            raise LinkError(
                f"write of {len(data)} bytes exceeds MTU - 3 = "
                f"{self.mtu - ATT_HEADER} bytes"
            )

    def write_without_response(self, data: bytes) -> None:
        """Queue a write; it may be lost silently (seeded loss, full proxy queue)."""
        data = bytes(data)
        self._check_write(data)
        self.stats.writes += 1
        self.stats.bytes_up += len(data)
        self._send_up(_Write(data, None))

    async def write_with_response(self, data: bytes) -> None:
        """Write and wait for the ATT write response."""
        data = bytes(data)
        self._check_write(data)
        self.stats.writes += 1
        self.stats.writes_with_response += 1
        self.stats.bytes_up += len(data)
        done: asyncio.Future[None] = self.loop.create_future()
        self._send_up(_Write(data, done))
        await done

    def _send_up(self, write: _Write) -> None:
        self._to_proxy.put(self._hop("up"), write)

    def _arrive_at_proxy(self, write: _Write) -> None:
        if not self.connected:
            if write.done is not None and not write.done.done():
                write.done.set_exception(LinkClosedError("disconnected"))
            return
        limit = self.profile.queue_limit
        if write.done is None and limit is not None and len(self._up) >= limit:
            self.stats.writes_dropped += 1
            return
        self._up.append(write)
        self.stats.max_queue = max(self.stats.max_queue, len(self._up))
        self._schedule_event()

    @property
    def queued(self) -> int:
        """Writes on their way or waiting in the proxy queue."""
        return len(self._up) + len(self._to_proxy)

    # -- board -> central ----------------------------------------------------

    def board_notify(self, data: bytes) -> None:
        """Called by the board: a notification is ready to go out."""
        if not self.connected:
            return
        self.stats.notifications += 1
        limit = self.profile.notify_queue_limit
        if limit is not None and len(self._down) >= limit:
            self.stats.notifications_dropped += 1
            return
        self._down.append(bytes(data))
        self._schedule_event()

    # -- connection events ---------------------------------------------------

    def _schedule_event(self) -> None:
        if (
            self._event_handle is not None
            or not (self._up or self._down)
            or not self.connected
        ):
            return
        now = self.loop.time()
        interval = self._interval
        steps = max(0.0, math.ceil((now - self._anchor) / interval - 1e-9))
        when = max(self._anchor + steps * interval, self._last_event + interval)
        when = max(when, self._stalled_until)
        self._event_handle = self.loop.call_at(when, self._event)

    def stall(self, seconds: float) -> None:
        """No connection event for `seconds` from now (the link stays up)."""
        self._stalled_until = self.loop.time() + seconds
        if self._event_handle is not None:
            self._event_handle.cancel()
            self._event_handle = None
        self._schedule_event()

    def _event(self) -> None:
        self._event_handle = None
        if not self.connected:
            return
        now = self.loop.time()
        self._last_event = now
        self.stats.events += 1
        budget = self.profile.packets_per_event
        for _ in range(min(budget, len(self._up))):
            write = self._up.popleft()
            if (
                write.done is None
                and self.profile.write_loss
                and self._rng.random() < self.profile.write_loss
            ):
                self.stats.writes_lost += 1  # sent in this event, never received
                continue
            self.stats.writes_delivered += 1
            self.board.receive(self, write.data)
            if write.done is not None:
                self._responses.put(
                    self._hop("response", now + self._interval), write.done
                )
            if not self._in_state("open"):
                return
        for _ in range(min(budget, len(self._down))):
            data = self._down.popleft()
            if (
                self.profile.notify_loss
                and self._rng.random() < self.profile.notify_loss
            ):
                self.stats.notifications_lost += 1
                continue
            self.stats.bytes_down += len(data)
            self._to_central.put(self._hop("down"), data)
            if self.profile.notify_dup and self._rng.random() < self.profile.notify_dup:
                self.stats.notifications_duplicated += 1
                self._to_central.put(self._hop("down"), data)
        self._schedule_event()

    def _complete_write(self, done: asyncio.Future[None]) -> None:
        if done.done():
            return
        if self._state == "open":
            done.set_result(None)
        else:
            done.set_exception(
                LinkClosedError("disconnected before the write response")
            )

    def _deliver_notify(self, data: bytes) -> None:
        if self._state != "open":
            return
        self.stats.notifications_delivered += 1
        if self.on_notify is not None:
            self.on_notify(data)

    # -- disconnecting -------------------------------------------------------

    def _drop(self) -> None:
        self._state = "closed"
        if self._event_handle is not None:
            self._event_handle.cancel()
            self._event_handle = None
        for write in [*self._up, *self._to_proxy.clear()]:
            if write.done is not None and not write.done.done():
                write.done.set_exception(LinkClosedError("disconnected"))
        for done in self._responses.clear():
            if not done.done():
                done.set_exception(LinkClosedError("disconnected before the response"))
        self._to_central.clear()
        self._up.clear()
        self._down.clear()

    async def close(self) -> None:
        """Disconnect from the central's side (no disconnect callback)."""
        if self._state == "connecting":
            self._state = "closed"
            return
        if self._state != "open":
            return
        conn = self.conn_handle
        self._drop()
        self.board.central_disconnected(self, conn)
        await self._sleep_until(self.loop.time() + self._interval + self._latency)

    def board_dropped(self, *, reset: bool) -> None:
        """Called by the board: it reset (silent) or terminated the connection."""
        if self._state != "open":
            return
        self._drop()
        delay = (
            self.profile.supervision_ms / 1000
            if reset
            else self._interval + self._latency
        )
        self.loop.call_at(self.loop.time() + delay, self._notice_disconnect)

    def _notice_disconnect(self) -> None:
        if self.on_disconnect is not None:
            self.on_disconnect()


def _reachable(peer: LinkPeer) -> bool:
    """Asked afresh each time: a board stops advertising when it connects or resets."""
    return peer.connectable


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
