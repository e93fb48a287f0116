"""Stand-in for MicroPython's `machine` module on CPython and WebAssembly.

`reset()` never returns on a board; here it raises `Reset` (a BaseException,
so firmware `except Exception` blocks cannot swallow it) after counting it.
`reset_cause()` answers what the test or simulator last set in `cause`.
"""

import time

# ESP32 values of machine.reset_cause().
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

resets = 0
cause = PWRON_RESET  # test hook: the cause the next boot reports
watchdog = None  # the started WDT; only a reset stops it (the simulator clears it)


class Reset(BaseException):
    pass


def reset():
    global resets  # noqa: PLW0603 - module state, as on a board
    resets += 1
    raise Reset


def soft_reset():
    reset()


def reset_cause():
    return cause


class WDT:
    """Records feeds; `overdue()` tells whether a board would have reset.

    The simulator resets a board whose started watchdog is overdue
    (reset_cause() then answers WDT_RESET).
    """

    def __init__(self, id=0, timeout=5000):  # noqa: A002 - MicroPython's signature
        global watchdog  # noqa: PLW0603 - module state, as on a board
        watchdog = self
        self.timeout = timeout
        self.feeds = 0
        self.last_feed = _now_ms()

    def feed(self):
        self.feeds += 1
        self.last_feed = _now_ms()

    def overdue(self):
        return _now_ms() - self.last_feed > self.timeout


def _now_ms():
    # MicroPython (and the firmware tests' CPython) have ticks_ms; plain CPython not.
    ticks_ms = getattr(time, "ticks_ms", None)
    if ticks_ms is None:
        return int(time.monotonic() * 1000)
    return ticks_ms()


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"
