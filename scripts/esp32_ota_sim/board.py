"""A virtual ESP32 running the real firmware files from its own flash.

Each board owns a `MemFS` seeded with `device_firmware/*.py`. Booting runs
`boot.py`, then imports `main` and calls `main.start()` (which returns the
NUS peripheral), exactly in the board's own namespace: every module is
executed from the board's filesystem with a private module table and a
private `__import__` (runtime.py), so `os`, `open`, `time`, `machine`,
`bluetooth`, `gc`, `sys` and `micropython` are this board's, and two boards
never share a class attribute or a file.

Running: the link hands received writes to the `bluetooth` stand-in (the IRQ
copies bytes), then the board calls `peripheral.poll()` once per queued line
and `main.tick()` (the rest of main.run()'s loop: boot_guard.poll, app.loop)
after it, and every `HOUSEKEEPING_MS` during a trial. Each write costs the
board's `speed` (speed.BoardSpeed): `line_cost_ms + byte_cost_us * size`
of loop time for a line, the measured shares of these for a v1 hex line or
a binary frame, plus any `time.sleep_ms` the firmware does, plus the
flash's time (about 42 KB/s of writes, see memfs), plus, for a deflated
frame, `inflate_us_per_byte` per file byte; its notifications leave when
the work is done.
`machine.reset()`, a power cut and the watchdog reboot the board
(the firmware's boot guard decides what runs next), up to `MAX_FAILED_BOOTS`
boots in a row that end that way. An exception escaping boot.py or main.py
ends at the REPL, as on MicroPython: no reset, Bluetooth stops (not
advertising, not connectable) until `reboot()`. During a trial the sim does what
boot_guard.run_main() would (it runs main.py itself on a real board): the
exception goes to `boot_guard.fail()`, which saves it and resets.

A hang is firmware that keeps spending time (`time.sleep_ms` in a loop that
never ends): once a started `machine.WDT` is overdue the board stops, its
links stay silent for the time spent, then it resets with WDT_RESET.
"""

from __future__ import annotations

import asyncio
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .memfs import MemFS, PowerLoss
from .runtime import STAND_INS_DIR, Runtime, load_machine, make_time_module
from .speed import ESP32, BoardSpeed, backlog_bytes, next_write_kind

if TYPE_CHECKING:
    import types
    from collections.abc import Callable, Mapping

    from .link import SimLink

__all__ = [
    "FIRMWARE_DIR",
    "STAND_INS_DIR",
    "Advertisement",
    "BootRecord",
    "VirtualBoard",
    "parse_advertisement",
]

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "device_firmware"

# machine.reset_cause() values (ESP32) for the next boot, by how the last ended:
# a power cut is a power-on, machine.reset() a soft reset (ESP_RST_SW),
# reboot() the reset button. A crash does not reset (the board is at the REPL).
PWRON_RESET, HARD_RESET, WDT_RESET, SOFT_RESET = 1, 2, 3, 5
_RESET_CAUSES = {
    "power": PWRON_RESET,
    "reset": SOFT_RESET,
    "reboot": HARD_RESET,
    "watchdog": WDT_RESET,
}


class WatchdogTimeout(BaseException):
    """The board hung until its watchdog fired (firmware cannot catch it)."""


@dataclass(frozen=True)
class Advertisement:
    """A board's advertising payload, decoded as a scanner sees it."""

    raw: bytes
    local_name: str | None
    service_uuids: list[str]
    service_data: dict[str, bytes]
    manufacturer_data: dict[int, bytes]
    tx_power: int | None


def parse_advertisement(raw: bytes) -> Advertisement:
    """Decode raw AD structures (the payload given to `gap_advertise`)."""
    from bluetooth_data_tools import parse_advertisement_data_bytes

    name, uuids, service_data, manufacturer_data, tx_power = (
        parse_advertisement_data_bytes(raw)
    )
    return Advertisement(
        bytes(raw),
        name,
        list(uuids),
        dict(service_data),
        dict(manufacturer_data),
        tx_power,
    )


@dataclass(frozen=True)
class BootRecord:
    """How a boot attempt ended, or why a running board restarted.

    `outcome`: ok, crash (the board is left at the REPL), reset
    (machine.reset), watchdog (a hang), power (power cut) or reboot
    (`VirtualBoard.reboot`).
    `number` is the boot it belongs to (1-based).
    """

    number: int
    outcome: str
    detail: str = ""


class VirtualBoard:
    """A virtual ESP32 running the firmware from its own in-memory flash."""

    # Boots in a row that reset (or lose power) before the board is "dead".
    MAX_FAILED_BOOTS = 10
    # What gc.mem_free() and gc.mem_alloc() report.
    HEAP_SIZE = 160_000
    HEAP_FREE = HEAP_SIZE * 3 // 4
    # The firmware's housekeeping: the first of these functions it has.
    HOUSEKEEPING = (("main", "tick"), ("boot_guard", "poll"))
    HOUSEKEEPING_MS = 1000.0

    def __init__(
        self,
        address: str = "24:0A:C4:00:00:01",
        *,
        files: Mapping[str, bytes | str] | None = None,
        firmware_dir: Path | None = FIRMWARE_DIR,
        fs: MemFS | None = None,
        seed: int | None = None,
        speed: BoardSpeed = ESP32,
        boot: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        has_deflate: bool = True,
    ) -> None:
        self.address = address.upper()
        if seed is None:  # deterministic, but different for every address
            seed = int(self.address.replace(":", ""), 16)
        self.fs = fs if fs is not None else MemFS(seed=seed)
        self.fs.cost_sink = self.spend_ms
        self.own_speed = speed  # what the board costs on a link that says nothing
        self.run_at(speed)
        # MicroPython 1.21 and later have `deflate` (the firmware then offers
        # compressed frames); False: an older MicroPython without it.
        self.has_deflate = has_deflate
        self._housekeeping_handle: asyncio.TimerHandle | None = None
        self.epoch = 1_700_000_000.0
        self.console: list[str] = []
        self.boots: list[BootRecord] = []
        self.restarts: list[BootRecord] = []
        self.state = "off"
        self.peripheral: Any = None
        self.ble: Any = None
        self.runtime: Runtime | None = None
        self._loop = loop
        self._manual_ms = 0.0
        self._spent_ms = 0.0
        self._links: dict[int, SimLink] = {}
        self._next_conn = 1
        self.connections = 0  # centrals accepted, over every boot
        self._busy = False
        self._process_handle: asyncio.Handle | None = None
        self._capture: list[tuple[float, int, bytes]] | None = None
        self._out: deque[tuple[float, int, bytes]] = deque()
        self.time_module = make_time_module(self)
        self._cause = PWRON_RESET
        self.machine = load_machine(self.address, self.time_module)
        if fs is None and firmware_dir is not None:
            for path in sorted(firmware_dir.glob("*.py")):
                self.fs.write_file(path.name, path.read_bytes())
        for name, data in (files or {}).items():
            self.fs.write_file(name, data.encode() if isinstance(data, str) else data)
        if boot:
            self.boot()

    # -- time ----------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        if self._loop is not None:
            return self._loop
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def now_ms(self) -> float:
        """The board's clock: the loop's, plus work done in the current line."""
        loop = self.loop
        base = loop.time() * 1000 if loop is not None else self._manual_ms
        return base + self._spent_ms

    def spend_ms(self, ms: float) -> None:
        """The firmware is busy (sleep_ms, a flash stall): the line takes longer.

        Busy past a started watchdog's timeout without feeding it: a hang.
        """
        if ms > 0:
            self._spent_ms += ms
            if self.loop is None:
                self._manual_ms += ms
                self._spent_ms -= ms
            watchdog = getattr(self.machine, "watchdog", None)
            if watchdog is not None and watchdog.overdue():
                raise WatchdogTimeout(f"not fed for {watchdog.timeout} ms")

    def run_at(self, speed: BoardSpeed) -> None:
        """From now on the board's work takes the time `speed` says."""
        self.speed = speed
        self.fs.flash = speed.flash

    # -- stand-ins -----------------------------------------------------------

    @property
    def mac(self) -> bytes:
        """The address as 6 bytes (what `BLE().config("mac")` reports)."""
        return bytes(int(part, 16) for part in self.address.split(":"))

    @property
    def resets(self) -> int:
        """How often the firmware called machine.reset()."""
        return int(getattr(self.machine, "resets", 0))

    def console_write(self, text: str) -> None:
        """Where the board's print() goes."""
        self.console.append(text)

    # -- files ---------------------------------------------------------------

    def files(self) -> dict[str, bytes]:
        """Snapshot of every durable file (path relative to `/`)."""
        return self.fs.snapshot()

    def read(self, name: str) -> bytes:
        """Durable content of one file."""
        return self.fs.read_file(name)

    def write(self, name: str, data: bytes | str) -> None:
        """Put a file on the board's flash (like mpremote cp)."""
        self.fs.write_file(name, data.encode() if isinstance(data, str) else data)

    def module(self, name: str) -> types.ModuleType:
        """A module of the running firmware (for assertions)."""
        if self.runtime is None or name not in self.runtime.modules:
            raise KeyError(name)
        return self.runtime.modules[name]

    # -- booting -------------------------------------------------------------

    @property
    def failed_boots(self) -> int:
        """Boots that crashed (not resets, not power cuts)."""
        return sum(1 for record in self.boots if record.outcome == "crash")

    def boot(self) -> None:
        """Boot until the firmware runs or crashes to the REPL.

        A boot that resets (or loses power) boots again; after
        `MAX_FAILED_BOOTS` of them in a row the board is "dead".
        """
        failures = 0
        while True:
            outcome = self._boot_once()
            if outcome in ("ok", "crash"):
                return
            failures += 1
            if failures >= self.MAX_FAILED_BOOTS:
                self.state = "dead"
                return

    def _boot_once(self) -> str:
        if hasattr(self.machine, "cause"):  # what machine.reset_cause() reports
            self.machine.__dict__["cause"] = self._cause
        self.machine.__dict__["watchdog"] = None  # a reset stops it
        self.fs.power_on()
        self._forget_open_files()
        self.state = "booting"
        self.peripheral = None
        self.ble = None
        self._spent_ms = 0.0
        runtime = Runtime(self)
        self.runtime = runtime
        number = len(self.boots) + 1
        try:
            # The radio exists before any script runs; give it this board's MAC.
            runtime.load("bluetooth").BLE().mac = self.mac
            if self.fs.exists("boot_guard.py"):
                # This board drives main.py's loop itself (start(), then poll):
                # boot.py must not run it (boot_guard.run_main); _on_trial does.
                runtime.load("boot_guard").RUN_MAIN = False
            if self.fs.exists("boot.py"):
                runtime.run_script("/boot.py")
            if self.fs.exists("main.py"):
                main = runtime.load("main")
                start = getattr(main, "start", None)
                if start is not None:
                    self.peripheral = start()
            runtime.run_scheduled()
        except BaseException as crash:
            exc = self._on_trial(crash)
            outcome = self._classify(exc)
            self.boots.append(BootRecord(number, outcome, _describe(exc)))
            self._stop_or_reset(outcome, exc)
            return outcome
        self.ble = self._find_ble(runtime)
        if self.ble is not None:
            self.ble.on_notify = self._on_notify
            self._wrap_gap_disconnect(self.ble)
        self.boots.append(BootRecord(number, "ok"))
        self.state = "running"
        self._spent_ms = 0.0  # booting is not charged to the first line
        self._run_housekeeping()
        return "ok"

    def _classify(self, exc: BaseException) -> str:
        if isinstance(exc, PowerLoss):
            return "power"
        if isinstance(exc, WatchdogTimeout):
            return "watchdog"
        reset = getattr(self.machine, "Reset", None)
        if reset is not None and isinstance(exc, reset):
            return "reset"
        if isinstance(exc, (KeyboardInterrupt, SystemExit, Exception)):
            return "crash"
        raise exc

    @staticmethod
    def _find_ble(runtime: Runtime) -> Any:
        bluetooth = runtime.modules.get("bluetooth")
        if bluetooth is None:
            return None
        return bluetooth.BLE()

    def _wrap_gap_disconnect(self, ble: Any) -> None:
        original = ble.gap_disconnect

        def gap_disconnect(conn_handle: int) -> Any:
            result = original(conn_handle)
            link = self._links.pop(conn_handle, None)
            if link is not None:
                link.board_dropped(reset=False)
            return result

        ble.gap_disconnect = gap_disconnect

    def _forget_open_files(self) -> None:
        for handle in list(self.fs._open):
            handle._lose()
        self.fs._open.clear()

    def reboot(self) -> None:
        """Reset the board now (RAM and open files lost, links dropped)."""
        self.restarts.append(BootRecord(len(self.boots), "reboot"))
        self._cause = _RESET_CAUSES["reboot"]
        self._drop_links()
        self.boot()

    def power_loss_at(self, op_count: int) -> None:
        """Cut the power at the `op_count`-th filesystem write operation from now."""
        self.fs.cut_power_at(op_count)

    def stop(self) -> None:
        """Power the board off for good (cancels its timers)."""
        self._drop_links()
        self._stop_timers()
        self.state = "off"

    def _stop_timers(self) -> None:
        if self._process_handle is not None:
            self._process_handle.cancel()
            self._process_handle = None
        if self._housekeeping_handle is not None:
            self._housekeeping_handle.cancel()
            self._housekeeping_handle = None

    def _drop_links(self) -> None:
        self._out.clear()
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            link.board_dropped(reset=True)

    # -- advertising ---------------------------------------------------------

    @property
    def advertising_payload(self) -> bytes | None:
        """Raw payload the firmware advertises now, or None."""
        if self.state != "running" or self.ble is None:
            return None
        payload = getattr(self.ble, "advertising", None)
        return bytes(payload) if payload is not None else None

    @property
    def scan_response_payload(self) -> bytes:
        """Raw scan response (empty when there is none or no advertising)."""
        if self.advertising_payload is None:
            return b""
        return bytes(getattr(self.ble, "scan_response", None) or b"")

    @property
    def connectable(self) -> bool:
        """Running and advertising."""
        return self.advertising_payload is not None

    def advertisement(self) -> Advertisement | None:
        """Advertising data plus scan response decoded (what an active scan sees)."""
        payload = self.advertising_payload
        if payload is None:
            return None
        return parse_advertisement(payload + self.scan_response_payload)

    @property
    def name(self) -> str | None:
        """The GAP device name the firmware set (else the advertised name)."""
        if self.state == "running" and self.ble is not None:
            try:
                gap_name = self.ble.config("gap_name")
            except (OSError, ValueError, TypeError):
                gap_name = None
            if gap_name:
                return bytes(gap_name).decode(errors="replace")
        adv = self.advertisement()
        return None if adv is None else adv.local_name

    # -- link side -----------------------------------------------------------

    def accept(self, link: SimLink) -> int:
        """A central connected: fire the connect and MTU IRQs."""
        if self.state != "running" or self.ble is None:
            raise RuntimeError(f"{self.address} is not running")
        conn = self._next_conn
        self._next_conn += 1
        self.connections += 1
        self._links[conn] = link
        profile = getattr(link, "profile", None)
        # `fast` sets the board's speed for its own connection only.
        speed = profile.board_speed if profile is not None else None
        self.run_at(speed or self.own_speed)
        self._irq(lambda: self.ble.central_connect(conn_handle=conn, mtu=link.mtu))
        return conn

    def receive(self, link: SimLink, data: bytes) -> None:
        """A write arrived on RX (called by the link at its connection event)."""
        conn = link.conn_handle
        if self.state != "running" or conn is None or self._links.get(conn) is not link:
            return
        self._irq(lambda: self.ble.central_write(conn, data))

    def central_disconnected(self, link: SimLink, conn: int | None) -> None:
        """The central disconnected."""
        if conn is None or self._links.get(conn) is not link:
            return
        del self._links[conn]
        if self.state == "running":
            self._irq(lambda: self.ble.central_disconnect(conn))

    def _irq(self, action: Callable[[], Any]) -> None:
        """Run an IRQ action and scheduled callbacks, then wake the main loop.

        As on MicroPython, an exception in the IRQ handler is printed and the
        stack goes on; a reset or a power cut restarts the board.
        """
        self._capture = None
        try:
            action()
            if self.runtime is not None:
                self.runtime.run_scheduled()
        except Exception as exc:  # printed, as MicroPython does
            self.console_write(
                "Unhandled exception in IRQ callback handler\n"
                + "".join(traceback.format_exception(exc))
            )
        except BaseException as exc:
            self._after_failure(exc)
            return
        self._kick()

    def _on_notify(self, conn: int, _value_handle: int, data: bytes) -> None:
        if self._capture is not None:
            # Sent now, i.e. after the work done so far on this line.
            self._capture.append((self._spent_ms, conn, bytes(data)))
            return
        link = self._links.get(conn)
        if link is not None:
            link.board_notify(bytes(data))

    # -- main loop -----------------------------------------------------------

    def _kick(self) -> None:
        loop = self.loop
        if (
            self._busy
            or self._process_handle is not None
            or self.state != "running"
            or loop is None
        ):
            return
        self._process_handle = loop.call_soon(self._process)

    def _process(self) -> None:
        self._process_handle = None
        loop = self.loop
        if self.state != "running" or self.peripheral is None or loop is None:
            return
        self._spent_ms = 0.0
        outbox: list[tuple[float, int, bytes]] = []
        self._capture = outbox
        failure: BaseException | None = None
        did = False
        backlog = backlog_bytes(self.peripheral)
        kind = next_write_kind(self.peripheral)
        try:
            did = bool(self.peripheral.poll())
            if self.runtime is not None:
                self.runtime.run_scheduled()
        except BaseException as exc:
            failure = exc
        finally:
            self._capture = None
        spent = self._spent_ms
        self._spent_ms = 0.0
        size = max(0, backlog - backlog_bytes(self.peripheral)) if did else 0
        base_ms = self.speed.write_cost_ms(kind, size) if did else 0.0
        start = loop.time()
        when = start
        for spent_at, conn, data in outbox:
            when = start + (base_ms + spent_at) / 1000
            self._out.append((when, conn, data))
            loop.call_at(when, self._release_due)
        if not did and failure is None and not spent:
            self._release_due()
            return
        self._busy = True
        loop.call_at(start + (base_ms + spent) / 1000, self._finish, failure)

    def _release_due(self) -> None:
        """Hand notifications whose time has come to their links, in order."""
        loop = self.loop
        now = loop.time() if loop is not None else 0.0
        while self._out and self._out[0][0] <= now:
            _, conn, data = self._out.popleft()
            link = self._links.get(conn)
            if link is not None:
                link.board_notify(data)

    def _finish(self, failure: BaseException | None) -> None:
        self._busy = False
        if self.state != "running":
            return
        self._release_due()
        if failure is not None:
            self._after_failure(failure)
            return
        self._run_housekeeping()
        if self.state == "running":
            self._kick()

    def _run_housekeeping(self) -> None:
        """What main.run() does between lines besides poll(): `main.tick()`.

        The first of `HOUSEKEEPING` the firmware has (a main.py without tick:
        `boot_guard.poll()`). Called after boot and after every line; while it
        returns True (a trial is running) also every `HOUSEKEEPING_MS`.
        """
        if self.runtime is None or self.state != "running":
            return
        modules = self.runtime.modules
        found = (
            getattr(modules[module], name, None)
            for module, name in self.HOUSEKEEPING
            if module in modules
        )
        function = next((f for f in found if f is not None), None)
        if function is None:
            return
        try:
            again = bool(function())
        except BaseException as exc:
            self._after_failure(exc)
            return
        loop = self.loop
        if again and loop is not None and self._housekeeping_handle is None:
            self._housekeeping_handle = loop.call_at(
                loop.time() + self.HOUSEKEEPING_MS / 1000, self._housekeeping_timer
            )

    def _housekeeping_timer(self) -> None:
        self._housekeeping_handle = None
        if not self._busy:
            self._run_housekeeping()
        elif self.loop is not None:
            self._housekeeping_handle = self.loop.call_at(
                self.loop.time() + self.HOUSEKEEPING_MS / 1000, self._housekeeping_timer
            )

    def _on_trial(self, exc: BaseException) -> BaseException:
        """What boot_guard.run_main() does when the version on trial raises.

        It saves the exception and resets the board; returns that reset.
        """
        guard = self.runtime.modules.get("boot_guard") if self.runtime else None
        if not isinstance(exc, Exception) or getattr(guard, "status", None) != "trial":
            return exc
        try:
            guard.fail(exc)  # type: ignore[union-attr]
        except BaseException as reset:  # machine.Reset, or a power cut while saving
            return reset
        return exc

    def _after_failure(self, failure: BaseException) -> None:
        loop = self.loop
        hung = self._spent_ms  # a hang outside a line: charged here
        if isinstance(failure, WatchdogTimeout) and hung and loop is not None:
            self._spent_ms = 0.0
            self._stop_timers()
            self.state = "hung"  # links silent until the watchdog resets it
            loop.call_at(loop.time() + hung / 1000, self._watchdog_fires, failure)
            return
        exc = self._on_trial(failure)
        outcome = self._classify(exc)
        self.restarts.append(BootRecord(len(self.boots), outcome, _describe(exc)))
        self._drop_links()
        self._stop_or_reset(outcome, exc)
        if outcome != "crash":
            self.boot()

    def _watchdog_fires(self, failure: BaseException) -> None:
        if self.state == "hung":  # not rebooted or stopped meanwhile
            self._after_failure(failure)

    def _stop_or_reset(self, outcome: str, exc: BaseException) -> None:
        """A crash prints its traceback and stays at the REPL; else a reset."""
        if outcome == "crash":
            self.console_write("".join(traceback.format_exception(exc)))
            self._stop_timers()
            self.state = "repl"
        else:
            self._cause = _RESET_CAUSES[outcome]
            self.state = "off"

    def __repr__(self) -> str:
        return f"<VirtualBoard {self.address} {self.state} boots={len(self.boots)}>"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
