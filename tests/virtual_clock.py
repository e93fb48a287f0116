"""Home Assistant tests on simulated time: `@pytest.mark.virtual_clock`.

A marked test runs on `esp32_ota_sim.clock.VirtualTimeLoop`: when nothing is
ready, the loop's clock jumps to the next timer, so the minutes a fleet of
boards spends transferring, waiting for slots or for trial confirmation take
only the CPU time the code needs. Home Assistant's timers (`async_call_later`,
`asyncio.sleep`, timeouts) follow the loop's clock.

pytest-asyncio makes each test's loop with the global event loop policy
(Home Assistant's test plugin pins it), so the hooks below swap the policy's
loop class for marked tests only. tests/conftest.py imports them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from esp32_ota_sim.clock import VirtualTimeLoop

if TYPE_CHECKING:
    import pytest

MARKER = "virtual_clock"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker."""
    config.addinivalue_line(
        "markers", f"{MARKER}: run the test on a virtual-time event loop"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Make the loop of a marked test a VirtualTimeLoop."""
    if item.get_closest_marker(MARKER) is not None:
        policy = asyncio.get_event_loop_policy()
        make = type(policy).new_event_loop

        def new_event_loop() -> asyncio.AbstractEventLoop:
            policy._loop_factory = VirtualTimeLoop  # type: ignore[attr-defined]
            try:
                loop = make(policy)
            finally:
                del policy._loop_factory  # type: ignore[attr-defined]
            # Home Assistant's policy binds time.monotonic as loop.time.
            vars(loop).pop("time", None)
            return loop

        policy.new_event_loop = new_event_loop  # type: ignore[method-assign]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Back to Home Assistant's own loop."""
    if item.get_closest_marker(MARKER) is not None:
        vars(asyncio.get_event_loop_policy()).pop("new_event_loop", None)
