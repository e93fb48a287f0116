"""A virtual `time` module for firmware scenarios (MicroPython-compatible).

`install()` puts a VirtualTime into sys.modules["time"], so every firmware
module imported afterwards (boots.py forgets them at each boot) reads and
sleeps on it: `time.sleep_ms(10)` moves the clock 10 ms and returns at once.
While it moves, the clock

- runs actions the test scheduled with `at(ms, func)` (a central writing,
  a check), in order of their time;
- fires the watchdog: when boot_guard started one and it has not been fed
  for its timeout, it raises WatchdogReset, as the chip would reset;
- raises Halt once `stop_at` is reached: the test has seen enough of this
  boot, and the board was still running.

Both are BaseExceptions, so firmware `except Exception` blocks let them pass.
"""

import sys


class Halt(BaseException):
    """The test's time for this boot is over; the board was still running."""


class WatchdogReset(BaseException):
    """The hardware watchdog was not fed in time: the chip resets."""


_PERIOD = 0x40000000  # MicroPython's ticks wrap at 2**30


class VirtualTime:
    def __init__(self):
        self.now_us = 0
        self.stop_at = None  # ms
        self._actions = []
        self._fed = (None, -1, 0)  # (wdt, feeds seen, when, ms)

    # -- the `time` API the firmware uses ---------------------------------
    def ticks_ms(self):
        return (self.now_us // 1000) % _PERIOD

    def ticks_us(self):
        return self.now_us % _PERIOD

    def ticks_add(self, t, d):
        return (t + d) % _PERIOD

    def ticks_diff(self, a, b):
        return ((a - b + _PERIOD // 2) % _PERIOD) - _PERIOD // 2

    def time(self):
        return self.now_us // 1000000

    def sleep_ms(self, ms):
        self.advance(ms)

    def sleep_us(self, us):
        self.advance(us / 1000)

    def sleep(self, s):
        self.advance(s * 1000)

    # -- test side ---------------------------------------------------------
    def ms(self):
        return self.now_us // 1000

    def at(self, ms, func):
        """Run func() once the clock reaches ms (absolute)."""
        self._actions.append((ms, func))
        self._actions.sort(key=lambda a: a[0])

    def advance(self, ms):
        end = self.now_us + int(ms * 1000)
        while True:
            due = end
            if self._actions and self._actions[0][0] * 1000 < due:
                due = self._actions[0][0] * 1000
            if self.stop_at is not None and self.stop_at * 1000 < due:
                due = self.stop_at * 1000
            bite = self._bite_at()
            if bite is not None and bite < due:
                due = bite
            self.now_us = max(self.now_us, due)
            if bite is not None and self.now_us >= bite:
                self._fed = (None, -1, 0)
                raise WatchdogReset
            if self.stop_at is not None and self.now_us >= self.stop_at * 1000:
                raise Halt
            if self._actions and self._actions[0][0] * 1000 <= self.now_us:
                self._actions.pop(0)[1]()
                continue
            if self.now_us >= end:
                return

    def idle(self, ms):
        """The board sits at the REPL for ms: only the watchdog can act."""
        self.advance(ms)

    def _bite_at(self):
        guard = sys.modules.get("boot_guard")
        wdt = getattr(guard, "wdt", None)
        if wdt is None:
            return None
        seen, feeds, when = self._fed
        if seen is not wdt or feeds != wdt.feeds:
            self._fed = (wdt, wdt.feeds, self.now_us)
            when = self.now_us
        return when + wdt.timeout * 1000


def install():
    """Make `import time` return a fresh VirtualTime; returns (clock, undo)."""
    saved = sys.modules.get("time")
    clock = VirtualTime()
    sys.modules["time"] = clock

    def undo():
        if saved is not None:
            sys.modules["time"] = saved

    return clock, undo
