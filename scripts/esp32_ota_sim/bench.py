"""Transfer benchmark: the real client against the real firmware, simulated link.

Each case connects the project's client (`OTAClient` + `BleakTransport` over
`BleakClient(backend=SimBleakClient)`) to a `VirtualBoard` booted from
device_firmware, over a `SimLink` profile, on a `VirtualTimeLoop`, and sends
one file in one protocol mode, of random bytes or of the project's own
Python source (`content`, see esp32_ota_sim.content):

- `v1-saw`: v1 START/DATA(hex)/COMMIT, one chunk per round trip: what boards
  in the field get from the existing clients (the baseline);
- `v1-best`: the same v1 board, with the client's pipelined v1 window;
- `v2`: v2 FILE and base64 `D` lines with the board's window;
- `v2-bin`: v2 FILE and binary data frames with the board's window;
- `v2-zip`: the same, deflated frame by frame when the board offers
  `deflate` and the file compresses (what the client does by default).

v1 cases run against `V1OnlyBoard` (esp32_ota_sim.v1_board).

Figures per case:

- `seconds`: simulated time from the FILE/START line to the board's
  acknowledgement of the last byte (connecting, HELLO and COMMIT/APPLY are
  not in it); deterministic for a given seed.
- `kib_s`: file bytes per simulated second / 1024.
- `efficiency`: file bytes per second / the link's raw capacity (above 1
  when compression delivers the file faster than the link moves bytes), which is
  `packets_per_event * (MTU - 3) / interval` (bytes of ATT payload per second
  one way).
- `client_cpu_s_per_mib`: the Home Assistant side's CPU (see `CpuMeter`),
  the minimum over `repeats` runs.

`measure_heap()` adds the board's heap on MicroPython WebAssembly from the
firmware's memory scenarios (fw_perf_memory.py, fw_memory.py).
All sizes are KiB (1024 bytes) and MiB (1024 KiB).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import time
from collections.abc import (
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from bleak import BleakClient
from bleak.backends.device import BLEDevice
from nus_ota import BleakTransport, FileImage, OTAClient
from nus_ota.client import DEFAULT_V1_WINDOW, ClientOptions

from .bleak_backend import SimBleakClient, register_board, reset_registry
from .board import VirtualBoard
from .clock import run_virtual
from .content import CONTENTS, file_content
from .link import PROFILES, LinkProfile, SimLink
from .speed import ESP32, WRITE_COST_SHARES
from .v1_board import V1OnlyBoard

__all__ = [
    "DEFAULT_MODES",
    "DEFAULT_PROFILES",
    "DEFAULT_SIZES_KIB",
    "MODES",
    "BenchResult",
    "CaseResult",
    "CpuMeter",
    "HeapFigures",
    "Mode",
    "measure_heap",
    "raw_capacity",
    "render_markdown",
    "render_table",
    "run_bench",
    "run_case",
]

T = TypeVar("T")

FILE_NAME = "app.py"
ADDRESS = "24:0A:C4:00:00:B1"


@dataclass(frozen=True)
class Mode:
    """How the client sends: protocol and window."""

    key: str
    label: str
    protocol: int
    v1_window: int = 1
    encoding: str | None = None  # v2: the data encoding (None: the client's pick)
    compress: bool = False  # v2 binary frames: deflated when the board offers it


MODES: dict[str, Mode] = {
    "v1-saw": Mode("v1-saw", "v1 stop-and-wait hex", 1, 1),
    "v1-best": Mode("v1-best", "v1 best", 1, DEFAULT_V1_WINDOW),
    "v2": Mode("v2", "v2 base64 lines", 2, encoding="b64"),
    "v2-bin": Mode("v2-bin", "v2 binary frames", 2, encoding="bin"),
    "v2-zip": Mode("v2-zip", "v2 deflated frames", 2, encoding="bin", compress=True),
}
DEFAULT_PROFILES = ("proxy", "wifi-proxy", "local", "lossy-proxy")
DEFAULT_SIZES_KIB = (4, 16, 64)
DEFAULT_MODES = tuple(MODES)


def describe_profile(p: LinkProfile) -> str:
    """One line with what a profile models (on the benchmark's boards)."""
    speed = p.board_speed or ESP32
    hop = f"+{p.latency_ms:g} ms one way"
    if p.jitter_ms:
        hop += f" +- {p.jitter_ms:g} ms"
    if p.spike_rate:
        hop += (
            f", spikes of {p.spike_ms:g}-{2 * p.spike_ms:g} ms on "
            f"{100 * p.spike_rate:g} % of packets (in order)"
        )
    return (
        f"MTU {p.mtu}, {p.interval_ms:g} ms interval, "
        f"{p.packets_per_event} packets/event, {hop}, "
        f"{100 * p.write_loss:g} % writes and {100 * p.notify_loss:g} % "
        f"notifications lost, device {speed.line_cost_ms:g} ms/line"
        f" + {speed.byte_cost_us:g} us/byte; raw capacity "
        f"{raw_capacity(p) / 1024:.1f} KB/s"
    )


def raw_capacity(profile: LinkProfile) -> float:
    """Bytes per second of ATT payload one way: packets/event * (MTU-3) / interval."""
    return profile.packets_per_event * profile.payload / (profile.interval_ms / 1000)


# -- CPU accounting -----------------------------------------------------------


class _Slice:
    """A region being timed: its category, and when its current slice began."""

    __slots__ = ("began", "category")

    def __init__(self, category: str, began: float) -> None:
        self.category = category
        self.began = began


class CpuMeter:
    """Splits the process's CPU time between client, firmware, link model and loop.

    `process_time()` is read around the transfer. Regions are timed with
    `thread_time()`, this thread's CPU time, exclusively (a nested region's
    time counts for the inner one only):

    - client: every step of the client's coroutine (`OTAClient.send_file`
      and all it calls: the senders, `BleakTransport`, bleak's `BleakClient`,
      the simulated backend's GATT layer) and every notification handed to it;
    - firmware: the virtual board's entry points (IRQs, `poll()`, its timers);
    - link: the link model's connection events, proxy hop and queues, also
      when called from inside a client step (a write) or the firmware (a
      notification).

    What makes the client figure the client's alone, on a shared machine:

    - CPU time, not wall time: another process running meanwhile (the
      machine is shared) does not count;
    - the meter's own cost is taken out: reading the clock costs about a
      microsecond, several times per line, and part of it falls inside the
      regions. `calibrate()` measures what an empty region and an empty
      nested region cost, and `net()` subtracts that per region entered;
    - the garbage collector waits until the end of the span (see `start`):
      a collection of the simulator's garbage would otherwise land in
      whichever region allocates next;
    - `run_case` keeps the least of several runs.

    What no region covers is the event loop's own work: mostly scheduling
    the simulator's timers (about three per line), which Home Assistant
    would not run. `client` is the HA-side figure; `client + loop` is an
    upper bound for it.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.thread_time,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        """Clocks in seconds: `clock` times regions, `cpu_clock` the whole span."""
        self.seconds: dict[str, float] = {"client": 0.0, "firmware": 0.0, "link": 0.0}
        # Regions entered per category, and regions entered inside one.
        self.entries = dict.fromkeys(self.seconds, 0)
        self.nested = dict.fromkeys(self.seconds, 0)
        self.total = 0.0
        self.overhead = (0.0, 0.0)  # see calibrate()
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._stack: list[_Slice] = []
        self._cpu_start = 0.0
        self._gc_was_enabled = False

    def wrap(self, category: str, func: Callable[..., T]) -> Callable[..., T]:
        """`func`, with its time counted for `category` (nested regions excluded)."""
        stack = self._stack
        seconds = self.seconds
        entries = self.entries
        nested = self.nested
        clock = self._clock

        def timed(*args: Any, **kwargs: Any) -> T:
            now = clock()
            entries[category] += 1
            if stack:
                outer = stack[-1]
                seconds[outer.category] += now - outer.began
                nested[outer.category] += 1
            frame = _Slice(category, now)
            stack.append(frame)
            try:
                return func(*args, **kwargs)
            finally:
                end = clock()
                stack.pop()
                seconds[category] += end - frame.began
                if stack:
                    stack[-1].began = end

        return timed

    def calibrate(self, calls: int = 2000, rounds: int = 5) -> tuple[float, float]:
        """Measure (and keep) the meter's own cost per region, in seconds.

        Returns (what entering a region adds to its own time, what a region
        nested in another adds to the outer one's), each the least over
        `rounds` rounds of `calls` empty regions.
        """
        own = inner = math.inf
        for _ in range(rounds):
            probe = CpuMeter(self._clock, self._cpu_clock)
            empty = probe.wrap("link", _nothing)
            outer = probe.wrap("firmware", empty)
            alone = probe.wrap("client", _nothing)
            for _ in range(calls):
                alone()
                outer()
            own = min(own, probe.seconds["client"] / calls)
            inner = min(inner, probe.seconds["firmware"] / calls - own)
        self.overhead = (max(0.0, own), max(0.0, inner))
        return self.overhead

    def net(self, category: str) -> float:
        """CPU of `category`'s regions without the meter's own cost."""
        own, inner = self.overhead
        spent = self.seconds[category]
        return max(
            0.0, spent - own * self.entries[category] - inner * self.nested[category]
        )

    def start(self) -> None:
        """Begin the measured span (region times before it are forgotten)."""
        for key in self.seconds:
            self.seconds[key] = 0.0
            self.entries[key] = self.nested[key] = 0
        self._gc_was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        self._cpu_start = self._cpu_clock()

    def stop(self) -> None:
        """End the measured span."""
        self.total += self._cpu_clock() - self._cpu_start
        if self._gc_was_enabled:
            gc.enable()

    @property
    def client(self) -> float:
        """CPU spent in the client's code."""
        return self.net("client")

    @property
    def loop(self) -> float:
        """Process CPU outside every region: the event loop's own work."""
        return max(0.0, self.total - sum(self.seconds.values()))

    def timed_coroutine(
        self, category: str, coro: Coroutine[Any, Any, T]
    ) -> Coroutine[Any, Any, T]:
        """`coro` with each of its steps counted for `category`."""
        return _TimedCoroutine(
            coro, self.wrap(category, coro.send), self.wrap(category, coro.throw)
        )


@functools.cache
def _meter_overhead() -> tuple[float, float]:
    """The meter's own cost per region, measured once per process."""
    return CpuMeter().calibrate()


def _nothing() -> None:
    """An empty region (CpuMeter.calibrate)."""


class _TimedCoroutine(Coroutine[Any, Any, T]):
    """A coroutine whose steps are timed when a Task drives it (send/throw).

    asyncio.Task accepts any `Coroutine`; awaiting this object directly
    would bypass the timing, so run it with `loop.create_task`.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        send: Callable[[Any], Any],
        throw: Callable[..., Any],
    ) -> None:
        self._coro = coro
        self._send = send
        self._throw = throw

    def send(self, value: Any) -> Any:
        return self._send(value)

    def throw(self, *args: Any) -> Any:
        return self._throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return (yield from self._coro.__await__())


_BOARD_ENTRIES = (
    "receive",
    "accept",
    "central_disconnected",
    "_process",
    "_finish",
    "_release_due",
    "_housekeeping_timer",
    "boot",
)
# SimLink's own work; `_deliver_notify` hands data to the client, so it is
# wrapped as a client region (its own bookkeeping is a counter and a test).
_LINK_ENTRIES = (
    "_event",
    "_arrive_at_proxy",
    "_complete_write",
    "write_without_response",
    "board_notify",
)


def _meter_board(board: VirtualBoard, meter: CpuMeter) -> None:
    for name in _BOARD_ENTRIES:
        setattr(board, name, meter.wrap("firmware", getattr(board, name)))


@contextmanager
def _metered_links(meter: CpuMeter) -> Iterator[None]:
    """Wrap SimLink's methods for the duration (links are made on connect)."""
    saved = {
        name: SimLink.__dict__[name] for name in (*_LINK_ENTRIES, "_deliver_notify")
    }
    try:
        for name in _LINK_ENTRIES:
            setattr(SimLink, name, meter.wrap("link", saved[name]))
        SimLink._deliver_notify = meter.wrap("client", saved["_deliver_notify"])  # type: ignore[method-assign]
        yield
    finally:
        for name, func in saved.items():
            setattr(SimLink, name, func)


# -- one case -------------------------------------------------------------------


@dataclass
class CaseResult:
    """The figures of one profile x size x mode."""

    profile: str
    size: int
    mode: str
    label: str
    content: str
    seconds: float
    bytes_delivered: int
    kib_s: float
    efficiency: float
    raw_capacity: float
    writes: int
    wire_bytes: int  # bytes the client wrote for the file (FILE/START included)
    writes_lost: int
    writes_dropped: int
    resent: int
    rewinds: int
    timeouts: int
    max_stall: float
    cpu_total: float
    cpu_firmware: float
    cpu_link: float
    cpu_client: float
    cpu_loop: float
    client_cpu_s_per_mib: float
    window: int
    chunk: int


def _connect(board: VirtualBoard) -> Callable[[], Any]:
    device = BLEDevice(board.address, board.name, {"source": "local"})

    async def connect() -> BleakTransport:
        async def open_client(
            on_disconnect: Callable[[BleakClient], None],
        ) -> BleakClient:
            client = BleakClient(
                device, disconnected_callback=on_disconnect, backend=SimBleakClient
            )
            await client.connect()
            return client

        return await BleakTransport.open(open_client)

    return connect


class _Progress:
    """Times at which the acknowledged byte count moved, to find the end and stalls."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.times: list[tuple[float, int]] = []
        self.done_at: float | None = None

    def __call__(self, have: int) -> None:
        now = asyncio.get_running_loop().time()
        self.times.append((now, have))
        if have >= self.size and self.done_at is None:
            self.done_at = now

    def max_stall(self, start: float) -> float:
        """Longest simulated time without progress."""
        last = start
        worst = 0.0
        for when, _ in self.times:
            worst = max(worst, when - last)
            last = when
        return worst


async def _run_case_async(
    profile: LinkProfile,
    size: int,
    mode: Mode,
    *,
    seed: int,
    meter: CpuMeter,
    firmware: Mapping[str, int],
    kind: str,
) -> CaseResult:
    reset_registry()
    data = file_content(kind, size, seed * 1_000_003 + size)
    image = FileImage(FILE_NAME, data, "9.0.0")
    cls = V1OnlyBoard if mode.protocol == 1 else VirtualBoard
    board = cls(ADDRESS, seed=seed, boot=False)
    if firmware:
        source = board.read("ota_manager.py") + b"\n"
        for name, value in sorted(firmware.items()):
            source += f"OTAManager.{name} = {value!r}\n".encode()
        board.write("ota_manager.py", source)
    board.boot()
    _meter_board(board, meter)
    register_board(board, profile)
    transport = await _connect(board)()
    options = ClientOptions(
        encoding=mode.encoding, compress=mode.compress, v1_window=mode.v1_window
    )
    client = OTAClient(transport, options)
    await client.start()
    info = await client.hello()
    if (info is None) != (mode.protocol == 1):
        raise RuntimeError(f"board speaks the wrong protocol for {mode.key}")
    bleak_client = transport.client
    backend = bleak_client._backend
    if not isinstance(backend, SimBleakClient) or backend.link is None:
        raise RuntimeError("not connected through SimBleakClient")
    link = backend.link
    before = replace(link.stats)
    wire_before = client.stats.wire_bytes
    progress = _Progress(size)
    loop = asyncio.get_running_loop()
    started = loop.time()
    if mode.protocol == 2:
        send = client.send_file(image, progress=progress)
    else:
        send = client.send_file_v1(image, progress=progress)
    meter.start()
    try:
        await loop.create_task(meter.timed_coroutine("client", send))
    finally:
        meter.stop()
        await client.close()
    if progress.done_at is None:
        raise RuntimeError("the board never acknowledged the whole file")
    seconds = progress.done_at - started
    stats = client.stats
    after = link.stats
    if mode.protocol == 2:
        delivered = board.read(FILE_NAME + ".new")
        window = info.window if info is not None else 0
    else:
        delivered = board.read(FILE_NAME)
        window = mode.v1_window
    if delivered != data:
        raise RuntimeError(f"{mode.key}: the board holds other bytes than were sent")
    capacity = raw_capacity(profile)
    rate = size / seconds
    mib = size / (1024 * 1024)
    return CaseResult(
        profile=profile.name,
        size=size,
        mode=mode.key,
        label=mode.label,
        content=kind,
        seconds=seconds,
        bytes_delivered=len(delivered),
        kib_s=rate / 1024,
        efficiency=rate / capacity,
        raw_capacity=capacity,
        writes=after.writes - before.writes,
        wire_bytes=stats.wire_bytes - wire_before,
        writes_lost=after.writes_lost - before.writes_lost,
        writes_dropped=after.writes_dropped - before.writes_dropped,
        resent=stats.resent,
        rewinds=stats.rewinds,
        timeouts=stats.timeouts,
        max_stall=progress.max_stall(started),
        cpu_total=meter.total,
        cpu_firmware=meter.net("firmware"),
        cpu_link=meter.net("link"),
        cpu_client=meter.client,
        cpu_loop=meter.loop,
        client_cpu_s_per_mib=meter.client / mib,
        window=window,
        chunk=_chunk_of(stats.lines_sent, size, stats.resent),
    )


def _chunk_of(lines: int, size: int, resent: int) -> int:
    """Average file bytes per data line sent for the first time."""
    first = max(1, lines - resent)
    return round(size / first)


def run_case(
    profile: str | LinkProfile,
    size: int,
    mode: str | Mode,
    *,
    seed: int = 1,
    firmware: Mapping[str, int] | None = None,
    repeats: int = 1,
    content: str = "random",
) -> CaseResult:
    """Run one case on a fresh virtual-time loop, `repeats` times.

    Simulated figures must come out the same every time (else RuntimeError);
    each CPU figure is the minimum over the repeats, the usual way to keep
    the noise of a shared machine out of a CPU benchmark.
    `firmware` overrides OTAManager class constants on the board (e.g.
    {"WINDOW": 16}) to weigh a firmware change before making it; `content`
    is "random" (incompressible) or "source" (esp32_ota_sim.content).
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    prof = replace(prof, seed=seed)
    how = MODES[mode] if isinstance(mode, str) else mode
    if content not in CONTENTS:
        raise ValueError(f"unknown content {content!r}; known: {', '.join(CONTENTS)}")
    runs = [
        _run_once(prof, size, how, seed, firmware or {}, content=content)
        for _ in range(repeats)
    ]
    first = runs[0]
    for other in runs[1:]:
        if _simulated(other) != _simulated(first):
            raise RuntimeError(f"{prof.name} {how.key}: simulated figures differ")
    client = min(r.cpu_client for r in runs)
    return replace(
        first,
        cpu_total=min(r.cpu_total for r in runs),
        cpu_firmware=min(r.cpu_firmware for r in runs),
        cpu_link=min(r.cpu_link for r in runs),
        cpu_client=client,
        cpu_loop=min(r.cpu_loop for r in runs),
        client_cpu_s_per_mib=client / (size / (1024 * 1024)),
    )


def _simulated(case: CaseResult) -> dict[str, Any]:
    return {k: v for k, v in asdict(case).items() if not k.startswith(_CPU_FIELDS)}


_CPU_FIELDS = ("cpu_", "client_cpu_")


def _run_once(
    profile: LinkProfile,
    size: int,
    mode: Mode,
    seed: int,
    firmware: Mapping[str, int],
    *,
    content: str,
) -> CaseResult:
    meter = CpuMeter()
    meter.overhead = _meter_overhead()
    with _metered_links(meter):
        try:
            return run_virtual(
                _run_case_async(
                    profile,
                    size,
                    mode,
                    seed=seed,
                    meter=meter,
                    firmware=firmware,
                    kind=content,
                )
            )
        finally:
            reset_registry()


# -- heap on MicroPython ----------------------------------------------------------


@dataclass
class HeapFigures:
    """Board heap on MicroPython 1.27 WebAssembly (32-bit, firmware as .mpy).

    - `stream_peak_bytes`: fw_perf_memory.py, the whole stack (peripheral,
      OTA engine, demo app) while a client streams 64 KB of v2 D lines a
      window at a time: the most heap it needs above its state after READY,
      the queued writes included;
    - `manager_peak_bytes`: fw_memory.py, the same for the OTA engine's
      handle() alone;
    - `figures`: everything those scenarios report, by scenario and test.
    """

    ok: bool
    stream_peak_bytes: int | None = None
    manager_peak_bytes: int | None = None
    goal_bytes: int | None = None
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""


# In file order: a MicroPython instance runs the tests of a module in turn,
# and names an earlier test interned would make a later figure look smaller.
_HEAP_TESTS = {
    "fw_perf_memory": ["test_mpy_stream_peak_growth"],
    "fw_memory": ["test_mpy_resident_footprint", "test_mpy_transfer_peak_growth"],
}


def measure_heap() -> HeapFigures:
    """Run the firmware's memory scenarios on MicroPython (needs node)."""
    from tests.firmware.harness import run_on_micropython

    figures: dict[str, dict[str, Any]] = {}
    errors = []
    for module, tests in _HEAP_TESTS.items():
        for name, outcome in run_on_micropython(module, tests, mpy=True).items():
            if outcome.ok and isinstance(outcome.value, dict):
                figures[f"{module}.{name}"] = outcome.value
            else:
                errors.append(f"{module}.{name}: {outcome.error.strip()[-400:]}")
    stream = figures.get("fw_perf_memory.test_mpy_stream_peak_growth", {})
    manager = figures.get("fw_memory.test_mpy_transfer_peak_growth", {})
    peak = stream.get("stream_peak_growth_bytes")
    return HeapFigures(
        ok=not errors and isinstance(peak, int),
        stream_peak_bytes=peak if isinstance(peak, int) else None,
        manager_peak_bytes=manager.get("peak_growth_bytes"),
        goal_bytes=stream.get("goal"),
        figures=figures,
        error="; ".join(errors),
    )


# -- the whole benchmark --------------------------------------------------------


@dataclass
class BenchResult:
    """Every case, plus the heap figures when measured."""

    seed: int
    cases: list[CaseResult]
    heap: HeapFigures | None = None
    firmware: dict[str, int] = field(default_factory=dict)

    def cpu_by_mode(self) -> dict[str, tuple[float, float]]:
        """Per mode: (client CPU, client + loop CPU) in seconds per MiB sent."""
        out: dict[str, tuple[float, float]] = {}
        for key in dict.fromkeys(c.mode for c in self.cases):
            cases = [c for c in self.cases if c.mode == key]
            mib = sum(c.size for c in cases) / (1024 * 1024)
            client = sum(c.cpu_client for c in cases)
            out[key] = (client / mib, (client + sum(c.cpu_loop for c in cases)) / mib)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, for --json."""
        return {
            "seed": self.seed,
            "firmware_overrides": self.firmware,
            "profiles": {
                name: {
                    **asdict(PROFILES[name]),
                    "raw_capacity_bytes_s": raw_capacity(PROFILES[name]),
                }
                for name in dict.fromkeys(c.profile for c in self.cases)
            },
            "cases": [asdict(case) for case in self.cases],
            "client_cpu_s_per_mib": {
                key: {"client": a, "client_plus_loop": b}
                for key, (a, b) in self.cpu_by_mode().items()
            },
            "heap": None if self.heap is None else asdict(self.heap),
        }


def run_bench(
    profiles: Sequence[str] = DEFAULT_PROFILES,
    sizes_kib: Sequence[int] = DEFAULT_SIZES_KIB,
    modes: Sequence[str] = DEFAULT_MODES,
    *,
    seed: int = 1,
    heap: bool = True,
    firmware: Mapping[str, int] | None = None,
    repeats: int = 3,
    on_case: Callable[[CaseResult], None] | None = None,
    content: str = "random",
) -> BenchResult:
    """Every profile x size x mode; the heap figure from MicroPython when `heap`.

    One untimed warm-up case first, so that the first case's CPU figure does
    not pay for imports and cold caches.
    """
    for name in profiles:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    for key in modes:
        if key not in MODES:
            raise ValueError(f"unknown mode {key!r}; known: {', '.join(MODES)}")
    cases: list[CaseResult] = []
    if repeats > 0 and profiles and modes:
        run_case(profiles[0], 4096, modes[-1], seed=seed, firmware=firmware)
    for name in profiles:
        for kib in sizes_kib:
            for key in modes:
                case = run_case(
                    name,
                    kib * 1024,
                    key,
                    seed=seed,
                    firmware=firmware,
                    repeats=max(1, repeats),
                    content=content,
                )
                cases.append(case)
                if on_case is not None:
                    on_case(case)
    return BenchResult(
        seed, cases, measure_heap() if heap else None, dict(firmware or {})
    )


# -- output ---------------------------------------------------------------------

_COLUMNS = (
    "profile",
    "size",
    "mode",
    "seconds",
    "KB/s",
    "% of raw",
    "vs baseline",
    "lost/resent",
    "worst stall s",
    "HA CPU s/MB",
)


def _rows(result: BenchResult) -> list[list[str]]:
    baseline = {
        (c.profile, c.size): c.seconds for c in result.cases if c.mode == "v1-saw"
    }
    rows = []
    for c in result.cases:
        base = baseline.get((c.profile, c.size))
        rows.append(
            [
                c.profile,
                f"{c.size // 1024} KB" + ("" if c.content == "random" else " source"),
                c.label,
                f"{c.seconds:.2f}",
                f"{c.kib_s:.1f}",
                f"{100 * c.efficiency:.1f} %",
                "-" if base is None else f"{base / c.seconds:.1f}x",
                f"{c.writes_lost + c.writes_dropped}/{c.resent}",
                f"{c.max_stall:.2f}",
                f"{c.client_cpu_s_per_mib:.3f}",
            ]
        )
    return rows


def _notes(result: BenchResult) -> list[str]:
    lines = [
        "seconds: simulated time from FILE/START to the acknowledgement of the "
        f"last byte (seed {result.seed}); KB = 1024 bytes, MB = 1024 KB.",
        "% of raw: file bytes per second / (packets per event x (MTU - 3) / "
        "connection interval); with compression the file's bytes, not the "
        "wire's, so it can pass 100 %.",
        "lost/resent: writes the link lost (or the proxy queue dropped) / data "
        "lines the client sent again; worst stall: longest simulated time "
        "without the acknowledged byte count moving (a lost write costs this).",
    ]
    zipped = [c for c in result.cases if c.mode == "v2-zip"]
    if any(c.content == "source" for c in result.cases):
        lines.append(
            "size ... source: a frozen snapshot of the project's own Python "
            "(esp32_ota_sim/frozen_source.txt), repeated to the size; otherwise "
            "random bytes."
        )
    if zipped:
        lines.append(
            "v2 deflated frames, file bytes per byte written: "
            + ", ".join(
                f"{c.profile} {c.size // 1024} KB {c.content} "
                f"{c.size / c.wire_bytes:.2f}"
                for c in zipped
            )
            + "."
        )
    if result.firmware:
        changed = ", ".join(f"{k}={v}" for k, v in sorted(result.firmware.items()))
        lines.append(f"Firmware constants overridden for this run: {changed}.")
    lines.extend(
        f"{name}: {describe_profile(PROFILES[name])}."
        for name in dict.fromkeys(c.profile for c in result.cases)
    )
    flash = ESP32.flash
    lines.append(
        f"Board flash (LittleFS on ESP32): {flash.program_us_per_byte:g} us/byte + "
        f"{flash.erase_ms_per_block:g} ms per 4096-byte erase (about 42 KB/s "
        f"sustained), {flash.commit_ms:g} ms per metadata commit (flush, close, "
        "rename)."
    )
    shares = {
        kind: f"{fixed:g} and {per_byte:g}"
        for kind, (fixed, per_byte) in WRITE_COST_SHARES.items()
    }
    lines.append(
        "Board CPU per write, as shares of a base64 line's ms/line and us/byte "
        "(measured on MicroPython WebAssembly, fw_write_cost.py): "
        f"v1 hex line {shares['hex']}, binary frame {shares['frame']}, "
        f"deflated frame {shares['zframe']} "
        f"+ {ESP32.inflate_us_per_byte:g} us per file byte."
    )
    cpu = result.cpu_by_mode()
    if cpu:
        parts = ", ".join(
            f"{MODES[key].label} {a:.3f} ({b:.3f})" for key, (a, b) in cpu.items()
        )
        lines.append(
            "HA-side CPU, s per MB sent, all cases of a mode: "
            f"{parts}. Client code measured per region in this thread's CPU "
            "time (the client coroutine's steps and the notifications handed "
            "to it, minus firmware and link model, minus the meter's own cost, "
            "garbage collection held until the end; least of the repeats); in "
            "brackets the upper bound that adds the event loop's own work, most "
            "of which schedules the simulator's timers."
        )
    heap = result.heap
    if heap is not None:
        if heap.ok:
            stream = heap.figures["fw_perf_memory.test_mpy_stream_peak_growth"]
            resident = heap.figures.get("fw_memory.test_mpy_resident_footprint", {})
            lines.append(
                "Board heap (MicroPython 1.27 WebAssembly, firmware as .mpy), "
                "64 KB v2 transfer: whole stack streaming peak growth "
                f"{heap.stream_peak_bytes} B (goal {heap.goal_bytes} B; "
                f"{stream.get('window')} queued writes of the window included), "
                f"OTA engine alone {heap.manager_peak_bytes} B; OTA engine "
                f"resident {resident.get('resident_bytes')} B; RX attribute "
                f"buffer {stream.get('rx_attribute_buffer_bytes')} B allocated at "
                "boot (not growth)."
            )
            if result.firmware:
                lines.append("The heap figures are for the firmware as it is on disk.")
        else:
            lines.append(f"Board heap: not measured ({heap.error}).")
    return lines


def render_table(result: BenchResult) -> str:
    """Plain-text table and notes for a terminal."""
    rows = [list(_COLUMNS), *_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join([*out, "", *_notes(result)]) + "\n"


def render_markdown(result: BenchResult) -> str:
    """The same as a markdown table and a list of notes."""
    out = [
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---" for _ in _COLUMNS) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in _rows(result)]
    out.append("")
    out += [f"- {line}" for line in _notes(result)]
    return "\n".join(out) + "\n"
