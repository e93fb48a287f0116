"""One scan of a source folder for every board that uses it.

Boards usually share a folder (the default gives them all the same one).
A `FolderWatcher` per folder checks it every SOURCE_SCAN_INTERVAL and hands
each scan's `SourceState` to every board subscribed to it; each board then
does its own work (its repair issue, its entities). The first subscriber
starts the timer, the last one to leave stops it and drops the watcher.

Scans of one folder never overlap: `SourceFolder` keeps the last signature
and state between scans, and a scan that started later must not return the
state from before another scan's change. A rescan asked for waits for the
scan under way; a timer tick during one is skipped.

A folder that does not answer within SCAN_TIMEOUT (a network share that
hangs) is reported as unreadable, which raises the boards' repair issue and
offers nothing to install; its scan goes on in its thread and the next one
waits for it, so scans still never overlap.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, SOURCE_SCAN_INTERVAL
from .source import SourceError, SourceFolder, SourceState

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

type SourceListener = Callable[[SourceState], None]

SCAN_TIMEOUT: Final = timedelta(seconds=60)

# The watchers of this Home Assistant instance, by normalized folder path.
DATA_WATCHERS: HassKey[dict[Path, FolderWatcher]] = HassKey(f"{DOMAIN}_folders")


class FolderWatcher:
    """Scans one folder for every board subscribed to it."""

    def __init__(self, hass: HomeAssistant, folder: Path) -> None:
        """Nothing is scanned before the first subscriber."""
        self.hass = hass
        self.folder = SourceFolder(folder)
        self._listeners: list[SourceListener] = []
        self._scanning = asyncio.Lock()
        self._stop_timer: CALLBACK_TYPE | None = None

    @callback
    def async_subscribe(self, listener: SourceListener) -> CALLBACK_TYPE:
        """Hand `listener` every scan's state; return the unsubscribe call."""
        self._listeners.append(listener)
        if self._stop_timer is None:
            self._stop_timer = async_track_time_interval(
                self.hass,
                self._async_scan_timer,
                SOURCE_SCAN_INTERVAL,
                name=f"{DOMAIN} source scan {self.folder.folder}",
                cancel_on_shutdown=True,
            )

        @callback
        def unsubscribe() -> None:
            self._listeners.remove(listener)
            if not self._listeners and self._stop_timer is not None:
                # The last one left: no timer, no watcher.
                self._stop_timer()
                self._stop_timer = None
                del self.hass.data[DATA_WATCHERS][self.folder.folder]

        return unsubscribe

    async def _async_scan_timer(self, _now: datetime) -> None:
        # A tick while a scan is under way (a slow network share) ends at
        # once: that scan hands its state to everyone, and ticks never queue.
        if not self._scanning.locked():
            await self.async_scan()

    async def async_scan(self) -> SourceState:
        """Re-read the folder if it changed (a stat walk in the executor).

        Every subscriber gets the state, changed or not; an unreadable one
        when the folder does not answer within SCAN_TIMEOUT.
        """
        scan = self.hass.async_create_background_task(
            self._async_scan_in_turn(), f"{DOMAIN} scan {self.folder.folder}"
        )
        seconds = SCAN_TIMEOUT.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(scan)
        except TimeoutError:
            problem = SourceError(
                "unreadable",
                path=str(self.folder.folder),
                error=f"no answer within {seconds:.0f} s",
            )
            state = SourceState(problem=problem)
            self._tell(state)
            return state

    async def _async_scan_in_turn(self) -> SourceState:
        async with self._scanning:
            state = await self.hass.async_add_executor_job(self.folder.scan)
            self._tell(state)
        return state

    def _tell(self, state: SourceState) -> None:
        for listener in list(self._listeners):
            listener(state)


@callback
def async_watch_folder(
    hass: HomeAssistant, folder: Path, listener: SourceListener
) -> tuple[FolderWatcher, CALLBACK_TYPE]:
    """Subscribe `listener` to the watcher of `folder` (made on first use).

    Return the watcher and the unsubscribe call. The path is normalized as
    text (no file system access in the event loop): two spellings of one
    folder through a link get two watchers.
    """
    watchers = hass.data.setdefault(DATA_WATCHERS, {})
    key = Path(os.path.normpath(folder))
    if (watcher := watchers.get(key)) is None:
        watcher = watchers[key] = FolderWatcher(hass, key)
    return watcher, watcher.async_subscribe(listener)
