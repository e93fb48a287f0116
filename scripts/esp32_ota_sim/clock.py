"""A virtual-time asyncio event loop.

When nothing is ready to run, the loop jumps its clock straight to the next
timer instead of sleeping, so an hour of simulated BLE traffic takes as long
as the Python code needs. Real I/O (the loop's self-pipe, executors) still
works: the selector is polled without waiting first, and with no timer at all
it blocks for real. While executor jobs are running the loop waits in real
time (up to the next timer), so a thread's result is never overtaken by a jump.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

T = TypeVar("T")

__all__ = ["VirtualTimeLoop", "run_virtual"]


class _VirtualSelector(selectors.BaseSelector):
    """Delegates to a real selector but turns timed waits into clock jumps."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(
        self, fileobj: Any, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: Any, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None or self._loop.executor_jobs:
            return self._real.select(timeout)
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` only moves when the loop would wait."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        super().__init__(selector=_VirtualSelector(self))
        # Timers due within the clock resolution run in the same iteration;
        # the jump lands exactly on them, so no resolution slack is needed.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._virtual_now

    executor_jobs = 0

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.executor_jobs += 1
        future.add_done_callback(self._executor_job_done)
        return future

    def _executor_job_done(self, _future: asyncio.Future[Any]) -> None:
        self.executor_jobs -= 1

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Join the default executor's threads without a (virtual) timeout."""
        executor = getattr(self, "_default_executor", None)
        self._executor_shutdown_called = True
        if executor is not None:
            executor.shutdown(wait=True)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never backward)."""
        if seconds > 0:
            self._virtual_now += seconds


def run_virtual[T](coro: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """`asyncio.run` on a fresh VirtualTimeLoop."""
    with asyncio.Runner(debug=debug, loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
