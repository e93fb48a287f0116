"""A board made of the real firmware engine, behind the simulator's link model.

`LoopbackBoard` runs `device_firmware/ota_manager.py` (imported through
`tests.firmware.harness.cpython_board`, so the board's filesystem is a temp
directory) and boots through the real boot guard. `LoopbackTransport`
implements the client's `Transport` protocol over an `esp32_ota_sim` `SimLink`
(the one link model: connection events, the hop's latency, in-order
delivery): the board handles one line at a time with a per-line cost, and
replies go back as notifications cut to `mtu_payload`. On top of the link,
tests script faults by content: drop a write or a notification, hold a
notification back (and, as a link keeps order, everything after it),
disconnect after a line. Run it on esp32_ota_sim's virtual-time loop so
timeouts cost no real time.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esp32_ota_sim.link import (
    ATT_HEADER,
    DelayLine,
    LinkClosedError,
    LinkProfile,
    LinkStats,
    SimLink,
)
from esp32_ota_sim.v1_board import V1_OTA_MANAGER

from custom_components.esp32_ota.nus_ota import DisconnectedError, TransportError

if TYPE_CHECKING:
    from collections.abc import Callable


LOOPBACK_INTERVAL_MS = 1.0


@dataclass
class Link:
    """How the in-memory link behaves."""

    latency: float = 0.02  # one way, seconds
    line_cost: float = 0.004  # board time per received line
    max_write: int = 244
    mtu_payload: int = 244  # notification size
    # Return True to drop a write without response / a notification.
    drop_write: Callable[[bytes], bool] = lambda _line: False
    drop_notify: Callable[[str], bool] = lambda _line: False
    # Extra seconds a notification takes (it may overtake none: it is late).
    delay_notify: Callable[[str], float] = lambda _line: 0.0
    # Called with each line the board handled; may return "disconnect".
    after_line: Callable[[str], str | None] = lambda _line: None
    start_fails: int = 0  # the next starts fail (e.g. service discovery)

    def profile(self) -> LinkProfile:
        """The SimLink profile: short connection events, this latency.

        The board's own cost is `line_cost` (LoopbackTransport), not the
        profile's; a reset is noticed half a latency after the radio stops.
        """
        return LinkProfile(
            mtu=self.max_write + ATT_HEADER,
            interval_ms=LOOPBACK_INTERVAL_MS,
            packets_per_event=64,
            latency_ms=self.latency * 1000,
            supervision_ms=self.latency * 500,
            connect_ms=0.0,
            name="loopback",
        )


def lossy(rate: float, seed: int = 1) -> Callable[[bytes], bool]:
    """Drop data lines (`OTA:D:` / `OTA:DATA:`) at random with `rate`."""
    rng = random.Random(seed)

    def drop(line: bytes) -> bool:
        return line.startswith((b"OTA:D:", b"OTA:DATA:")) and rng.random() < rate

    return drop


def drop_first(
    prefix: str, dropped: list[str], count: int = 1
) -> Callable[[str], bool]:
    """Drop the first `count` notifications that start with `prefix`.

    The dropped lines are appended to `dropped`.
    """

    def drop(line: str) -> bool:
        if line.startswith(prefix) and len(dropped) < count:
            dropped.append(line)
            return True
        return False

    return drop


def disconnect_after(prefix: str, nth: int) -> Callable[[str], str | None]:
    """Drop the link once, right after the board handled the `nth` line
    that starts with `prefix` (an `after_line`)."""
    seen = 0

    def after_line(line: str) -> str | None:
        nonlocal seen
        if not line.startswith(prefix):
            return None
        seen += 1
        return "disconnect" if seen == nth else None

    return after_line


class LoopbackBoard:
    """The firmware engine on a filesystem that survives resets."""

    def __init__(
        self,
        *,
        allowed: set[str] | None = None,
        auth_key: str | None = None,
        token: str | None = None,
        v1_only: bool = False,
        app_crashes: bool = False,
    ) -> None:
        import boot_guard
        import machine
        import ota_manager

        self._boot_guard: Any = boot_guard
        self._machine: Any = machine
        base: Any = _v1_engine() if v1_only else ota_manager.OTAManager
        base.ALLOWED_FILES = allowed or {"main.py", "app.py"}
        base.AUTH_KEY = auth_key
        base.AUTH_TOKEN = token
        base.RESET_DELAY_MS = 0
        self._manager_class = base
        self.app_crashes = app_crashes
        self.on_boot: Callable[[], None] | None = None
        self.boots = 0
        self.resets = 0
        self.transport: LoopbackTransport | None = None
        self.manager: Any = None
        self.boot()

    def boot(self) -> None:
        """What boot.py and main.start() do, as far as OTA is concerned."""
        if self.on_boot is not None:
            self.on_boot()
        while True:
            self.boots += 1
            self._boot_guard.boot()
            if not (self.app_crashes and self._boot_guard.on_trial()):
                break
            self.resets += 1  # the new app.py fails on import: main.py resets
        if self._boot_guard.status != "rolled-back" and not self.app_crashes:
            self._boot_guard.confirm()
        self.manager = self._manager_class(self._reply)

    def _reply(self, line: str) -> None:
        if self.transport is not None:
            self.transport.notify(line)

    def handle(self, line: str) -> None:
        """One received line, as the peripheral's poll() hands it over."""
        try:
            if line.startswith("OTA:"):
                self.manager.handle(line)
            elif line == "PING":
                self._reply("PONG")
        except self._machine.Reset:
            # The OK is on its way (the firmware waits RESET_DELAY_MS); the
            # radio goes silent once it has left.
            self.resets += 1
            transport = self.transport
            self.transport = None
            if transport is not None:
                asyncio.get_running_loop().call_later(
                    transport.link.latency + 2 * LOOPBACK_INTERVAL_MS / 1000,
                    transport.board_reset,
                )
            self.boot()

    def connect(self, transport: LoopbackTransport) -> None:
        if self.transport is not None:
            raise TransportError("board already connected")
        self.transport = transport

    def disconnect(self, transport: LoopbackTransport) -> None:
        if self.transport is transport:
            self.transport = None
            self.manager.abort()


def _v1_engine() -> Any:
    """The simulator's v1-only OTA engine (esp32_ota_sim.v1_board), freshly loaded."""
    spec = importlib.util.spec_from_file_location("ota_manager", V1_OTA_MANAGER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OTAManager


@dataclass
class Counters:
    writes: int = 0
    dropped_writes: int = 0
    notifications: int = 0
    lines_in: list[str] = field(default_factory=list)


class LoopbackTransport:
    """The client's Transport over a SimLink to a LoopbackBoard.

    The transport is also the link's board end (`LinkPeer`): what arrives is
    cut into lines for the board, what the board replies enters the link.
    """

    address = "24:0A:C4:00:00:01"
    connectable = True  # the board is already ours

    def __init__(self, board: LoopbackBoard, link: Link | None = None) -> None:
        self.board = board
        self.link = link or Link()
        self.counters = Counters()
        self._sim = SimLink(
            self,
            self.link.profile(),
            on_notify=self._deliver,
            on_disconnect=self._link_lost,
        )
        self._connected = True
        self._on_data: Callable[[bytes], None] | None = None
        self._on_disconnect: Callable[[], None] | None = None
        self._rx = bytearray()
        self._inbox: collections.deque[str] = collections.deque()
        self._board_busy_until = 0.0
        self._held_until = 0.0
        self._held = DelayLine(lambda: self.loop, self._sim.board_notify)
        board.connect(self)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def max_write(self) -> int:
        return self.link.max_write

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def link_stats(self) -> LinkStats:
        """What the link model counted."""
        return self._sim.stats

    async def start(
        self, on_data: Callable[[bytes], None], on_disconnect: Callable[[], None]
    ) -> None:
        if self.link.start_fails:
            self.link.start_fails -= 1
            raise TransportError("could not subscribe")
        self._on_data = on_data
        self._on_disconnect = on_disconnect
        if not self._sim.connected:
            await self._sim.open()

    async def write(self, data: bytes, *, response: bool) -> None:
        if not self._connected or not self._sim.connected:
            raise DisconnectedError("loopback link is down")
        if len(data) > self.link.max_write:
            raise TransportError(f"write of {len(data)} bytes > {self.link.max_write}")
        self.counters.writes += 1
        if not response and self.link.drop_write(data):
            self.counters.dropped_writes += 1
            return
        try:
            if response:
                await self._sim.write_with_response(data)
            else:
                self._sim.write_without_response(data)
        except LinkClosedError as err:
            raise DisconnectedError("link dropped during write") from err

    # -- the board end of the link (LinkPeer) ----------------------------------

    def accept(self, link: SimLink) -> int:
        return 1

    def receive(self, link: SimLink, data: bytes) -> None:
        """Bytes reach the board: reassemble lines, queue them for the board."""
        if not self._connected:
            return
        self._rx += data
        while (end := self._rx.find(b"\n")) >= 0:
            line = self._rx[:end].decode()
            del self._rx[: end + 1]
            self._inbox.append(line)
            now = self.loop.time()
            self._board_busy_until = (
                max(now, self._board_busy_until) + self.link.line_cost
            )
            self.loop.call_at(self._board_busy_until, self._process)

    def central_disconnected(self, link: SimLink, conn: int | None) -> None:
        self.board.disconnect(self)

    def _process(self) -> None:
        if not self._connected or not self._inbox or self.board.transport is not self:
            return
        line = self._inbox.popleft()
        self.counters.lines_in.append(line)
        self.board.handle(line)
        if self._connected and self.link.after_line(line) == "disconnect":
            self.drop()

    def notify(self, line: str) -> None:
        """The board sends a line: one notification per MTU payload, in order."""
        if self.link.drop_notify(line):
            return
        data = (line + "\n").encode()
        now = self.loop.time()
        self._held_until = max(self._held_until, now + self.link.delay_notify(line))
        size = self.link.mtu_payload
        for start in range(0, len(data), size):
            self.counters.notifications += 1
            if self._held_until > now:
                self._held.put(self._held_until, data[start : start + size])
            else:
                self._sim.board_notify(data[start : start + size])

    def _deliver(self, data: bytes) -> None:
        if self._connected and self._on_data is not None:
            self._on_data(data)

    # -- going down --------------------------------------------------------------

    def board_reset(self) -> None:
        """The board reset: the central notices after the supervision timeout."""
        self._inbox.clear()
        self._held.clear()
        self._sim.board_dropped(reset=True)

    def drop(self) -> None:
        """The radio link went down: both sides notice."""
        if not self._connected:
            return
        self._inbox.clear()
        self._held.clear()
        if self.board.transport is self:
            self.board.disconnect(self)
        if self._sim.connected:
            self._sim.board_dropped(reset=False)
        else:
            self._link_lost()

    def _link_lost(self) -> None:
        if not self._connected:
            return
        self._connected = False
        if self._on_disconnect is not None:
            self._on_disconnect()

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            self.board.disconnect(self)
            await self._sim.close()


class Connector:
    """A `connect()` factory for `install()`: one fresh transport per call."""

    def __init__(self, board: LoopbackBoard, link: Link | None = None) -> None:
        self.board = board
        self.link = link or Link()
        self.calls = 0
        self.transports: list[LoopbackTransport] = []
        self.fail_next = 0

    async def __call__(self) -> LoopbackTransport:
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.fail_next:
            self.fail_next -= 1
            raise TimeoutError("board not found")
        transport = LoopbackTransport(self.board, self.link)
        self.transports.append(transport)
        return transport

    @property
    def open_connections(self) -> int:
        return sum(1 for t in self.transports if t.is_connected)
