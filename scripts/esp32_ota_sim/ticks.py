"""MicroPython's tick functions (`time.ticks_ms` and friends) on any clock.

Used by `VirtualBoard` (the board's clock) and by the firmware test harness
(CPython's own clock, for firmware modules imported directly): the 30-bit
wrap-around arithmetic is written once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TICKS_MAX", "tick_functions"]

TICKS_PERIOD = 0x40000000
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALF = TICKS_PERIOD // 2


def tick_functions(
    now_ms: Callable[[], float], sleep_ms: Callable[[float], None]
) -> dict[str, Callable[..., Any]]:
    """ticks_ms/us/cpu, ticks_add, ticks_diff, sleep_ms/us on `now_ms`."""

    def ticks_ms() -> int:
        return int(now_ms()) & TICKS_MAX

    def ticks_us() -> int:
        return int(now_ms() * 1000) & TICKS_MAX

    def ticks_add(ticks: int, delta: int) -> int:
        return (ticks + delta) & TICKS_MAX

    def ticks_diff(new: int, old: int) -> int:
        return ((new - old + TICKS_HALF) & TICKS_MAX) - TICKS_HALF

    return {
        "ticks_ms": ticks_ms,
        "ticks_us": ticks_us,
        "ticks_cpu": ticks_us,
        "ticks_add": ticks_add,
        "ticks_diff": ticks_diff,
        "sleep_ms": sleep_ms,
        "sleep_us": lambda us: sleep_ms(us / 1000),
    }
