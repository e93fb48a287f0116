"""The virtual-time event loop."""

from __future__ import annotations

import asyncio

import pytest
from esp32_ota_sim.clock import VirtualTimeLoop, run_virtual


def test_sleeps_jump_straight_to_the_next_timer() -> None:
    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []

        async def sleeper(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            seen.append((name, loop.time()))

        await asyncio.gather(
            sleeper("hour", 3600), sleeper("ms", 0.001), sleeper("s", 1)
        )
        return seen

    assert run_virtual(scenario()) == [("ms", 0.001), ("s", 1.0), ("hour", 3600.0)]


def test_call_at_order_and_timeouts() -> None:
    async def scenario() -> tuple[list[int], float, bool]:
        loop = asyncio.get_running_loop()
        order: list[int] = []
        for n, at in ((3, 0.3), (1, 0.1), (2, 0.2)):
            loop.call_at(at, order.append, n)
        await asyncio.sleep(0.5)
        timed_out = False
        try:
            async with asyncio.timeout(2):
                await asyncio.Event().wait()
        except TimeoutError:
            timed_out = True
        return order, loop.time(), timed_out

    order, now, timed_out = run_virtual(scenario())
    assert order == [1, 2, 3]
    assert now == pytest.approx(2.5)
    assert timed_out


def test_executor_results_are_not_overtaken_by_jumps() -> None:
    async def scenario() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, sum, [1, 2, 3])
        return result, loop.time()

    result, now = run_virtual(scenario())
    assert result == 6
    assert now < 1  # no 300 s jump while the thread ran


def test_loop_reports_its_own_time() -> None:
    loop = VirtualTimeLoop(start=100.0)
    try:
        assert loop.time() == 100.0
        loop.advance(2.5)
        loop.advance(-10)  # never backwards
        assert loop.time() == 102.5
        assert loop.run_until_complete(asyncio.sleep(1, result="done")) == "done"
        assert loop.time() == 103.5
    finally:
        loop.close()
