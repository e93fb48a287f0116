"""Boots of a board as MicroPython on an ESP32 does them (MicroPython-compatible).

ports/esp32/main.c: a start runs boot.py, then main.py (whatever boot.py
did), then the REPL. An exception escaping main.py prints a traceback and
ends at the REPL: nothing resets, and the Bluetooth code stops with it.
machine.reset() and the watchdog start the next boot; a soft reset (Ctrl-D)
runs boot.py and main.py again. machine.reset_cause() tells the next boot
why: power-on, watchdog, or soft reset for machine.reset() (ESP_RST_SW);
a soft reboot does not reset the chip, so the cause stays.

Every boot forgets the firmware modules and runs the scripts from the
board's filesystem (the working directory, first on the import path) or the
firmware directory, on the virtual clock of vclock.py: a test gives each
boot `run_ms` of board time, then looks at it.
"""

import sys

import machine
import vclock

# Firmware and stand-in modules a reset forgets (machine stays: it counts resets).
FIRMWARE = (
    "boot",
    "boot_guard",
    "boot_crash",
    "main",
    "app",
    "config",
    "nus_peripheral",
    "nus_rx",
    "bluetooth",
)

# How a boot ended: the board runs its program, sits at the REPL, or reset.
RUNNING = "running"
REPL = "repl"
RESET = "reset"  # machine.reset()
WATCHDOG = "watchdog"
_CAUSE = {RESET: machine.SOFT_RESET, WATCHDOG: machine.WDT_RESET}


def forget_modules():
    for name in list(sys.modules):
        if name in FIRMWARE or name.startswith("ota_"):
            del sys.modules[name]
    try:
        import importlib

        importlib.invalidate_caches()  # CPython: see files written just now
    except ImportError:
        pass


def clock():
    """The virtual clock `import time` gives the firmware (installed once)."""
    t = sys.modules.get("time")
    if not isinstance(t, vclock.VirtualTime):
        t, _ = vclock.install()
    return t


def board_files_first():
    """Put the working directory first on the import path; returns the undo."""
    saved = list(sys.path)
    cpython = sys.implementation.name == "cpython"
    if sys.path[0] != "":
        sys.path.insert(0, "")
    if cpython:
        sys.dont_write_bytecode = True  # no stale .pyc of a rewritten file

    def undo():
        sys.path[:] = saved
        if cpython:
            sys.dont_write_bytecode = False
        forget_modules()

    return undo


def on_board_files(test):
    """Decorator: `test` runs with board_files_first(), undone after it.

    For tests that return (not generators: their steps run later)."""

    def run():
        undo = board_files_first()
        try:
            return test()
        finally:
            undo()

    return run


class Boot:
    """One start: guard status, how it ended, the running peripheral."""

    def __init__(self):
        self.status = None  # boot_guard.status
        self.outcome = None  # RUNNING, REPL, RESET or WATCHDOG
        self.p = None  # the NUSPeripheral main.py made, while RUNNING
        self.error = None  # what escaped main.py (REPL)

    def __repr__(self):
        return f"Boot({self.status}, {self.outcome}, {self.error!r})"


def _find(name):
    for d in sys.path:
        path = (d + "/" + name) if d else name
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            pass
    return None


def _run_script(name, b):
    """pyexec_file_if_exists(name): None when it finished or raised."""
    src = _find(name)
    if src is None:
        return None
    try:
        exec(compile(src, name, "exec"), {"__name__": "__main__"})
    except machine.Reset:
        return RESET
    except vclock.WatchdogReset:
        return WATCHDOG
    except vclock.Halt:
        return RUNNING
    except Exception as e:  # printed at the console; the boot goes on
        print("Traceback of", name, repr(e))
        b.error = e
    return None


def _watch_peripherals(made):
    import nus_peripheral

    cls = nus_peripheral.NUSPeripheral
    init = cls.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    cls.__init__ = record


def boot(run_ms=0, cause=None, soft=False, **settings):
    """Start the board and let it run run_ms of board time; returns a Boot.

    settings are boot_guard attributes, set before boot.py runs (as a
    boot.py of the user's would). cause: what machine.reset_cause() says
    (default: what the last boot's end left). soft: a Ctrl-D soft reboot.
    """
    t = clock()
    if cause is not None:
        machine.cause = cause
    forget_modules()
    b = Boot()
    made = []
    _watch_peripherals(made)
    import boot_guard

    for key, value in settings.items():
        setattr(boot_guard, key, value)
    t.stop_at = t.ms() + run_ms
    try:
        b.outcome = _run_script("boot.py", b) or _run_script("main.py", b)
        if b.outcome is None:  # main.py ended or raised: the REPL prompt
            b.outcome = REPL
            try:
                t.idle(t.stop_at - t.ms())  # only a watchdog can reset it
            except vclock.WatchdogReset:
                b.outcome = WATCHDOG
            except vclock.Halt:
                pass
    finally:
        t.stop_at = None
    b.status = sys.modules["boot_guard"].status
    if b.outcome in _CAUSE:
        machine.cause = _CAUSE[b.outcome]
    elif b.outcome == RUNNING and made:
        b.p = made[-1]
    return b


def until_settled(run_ms=0, max_boots=8, **settings):
    """Boot again after every reset until the board runs or stops; the Boots."""
    seen = []
    while len(seen) < max_boots:
        b = boot(run_ms, **settings)
        seen.append(b)
        if b.outcome not in _CAUSE:
            break
    return seen


def run_boot_py(fresh=True, **settings):
    """Reset, then only boot.py's boot guard; settings as for boot().

    fresh=False keeps modules the test has already imported (and rigged).
    """
    if fresh:
        forget_modules()
    import boot_guard

    for key, value in settings.items():
        setattr(boot_guard, key, value)
    boot_guard.boot()
    return boot_guard


def power_on(**settings):
    """A power-on: (guard status, the running peripheral, or how it ended)."""
    b = boot(cause=machine.PWRON_RESET, **settings)
    return b.status, b.p if b.outcome == RUNNING else b.outcome


def read_firmware(name):
    """The text of a script as the board would run it now."""
    return _find(name)


def write(name, text):
    with open(name, "w") as f:
        f.write(text)


def read(name):
    with open(name) as f:
        return f.read()
