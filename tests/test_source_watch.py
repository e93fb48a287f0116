"""Boards that share a source folder share its scans.

Scans are counted by folder (SourceFolder.scan); time is the virtual clock,
so an interval is SOURCE_SCAN_INTERVAL of simulated time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from esp32_ota_sim.fleet import board_address
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from custom_components.esp32_ota.const import (
    CONF_SOURCE_DIR,
    DOMAIN,
    SOURCE_SCAN_INTERVAL,
)
from custom_components.esp32_ota.source import SourceFolder, SourceState
from custom_components.esp32_ota.source_watch import DATA_WATCHERS, SCAN_TIMEOUT
from tests.common import (
    SOURCE_DIR,
    app_source,
    board_entity,
    make_board,
    set_options,
    setup_board,
    wait,
    write_release,
)

if TYPE_CHECKING:
    from esp32_ota_sim.clock import VirtualTimeLoop
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from tests.bluetooth_helpers import SimProxyScanner

OTHER_DIR = "esp32_ota/other"
INTERVALS = 10  # counted at a time


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Counter[Path]:
    """How often each folder was scanned, by its path."""
    counts: Counter[Path] = Counter()
    scan = SourceFolder.scan

    def counted(folder: SourceFolder) -> SourceState:
        counts[folder.folder] += 1
        return scan(folder)

    monkeypatch.setattr(SourceFolder, "scan", counted)
    return counts


def hold_reads(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """From now on a folder's files are read once the returned event is set."""
    reading = threading.Event()
    read_state = SourceFolder._read_state

    def held(folder: SourceFolder) -> SourceState:
        assert reading.wait(timeout=60)  # a bound, never reached
        return read_state(folder)

    monkeypatch.setattr(SourceFolder, "_read_state", held)
    return reading


def path_of(hass: HomeAssistant, folder: str) -> Path:
    return Path(hass.config.path(folder))


def offer(hass: HomeAssistant, folder: str, version: str) -> None:
    """Put app.py of `version` into `folder`, declared in a manifest."""
    files = {"app.py": app_source(version)}
    write_release(path_of(hass, folder), files, {"version": version})


async def boards_on(
    hass: HomeAssistant, proxy: SimProxyScanner, folders: list[str]
) -> list[MockConfigEntry]:
    """Boards 1..n, the n-th one's source folder `folders[n - 1]`."""
    return [
        await setup_board(
            hass,
            proxy,
            make_board(board_address(index)),
            options={CONF_SOURCE_DIR: folder},
        )
        for index, folder in enumerate(folders, 1)
    ]


def offered(hass: HomeAssistant, *boards: int) -> list[str | None]:
    """The latest version the entities of these boards (1, 2, ...) offer."""
    versions: list[str | None] = []
    for index in boards:
        state = hass.states.get(board_entity(index))
        assert state is not None
        versions.append(state.attributes["latest_version"])
    return versions


async def scans_over_intervals(
    hass: HomeAssistant, scans: Counter[Path]
) -> dict[Path, int]:
    """Scans per folder while INTERVALS scan intervals pass."""
    scans.clear()
    await wait(hass, INTERVALS * SOURCE_SCAN_INTERVAL.total_seconds())
    return dict(scans)


async def test_boards_sharing_a_folder_share_its_scans(
    hass: HomeAssistant, proxy: SimProxyScanner, scans: Counter[Path]
) -> None:
    offer(hass, SOURCE_DIR, "1.1.0")
    await boards_on(hass, proxy, [SOURCE_DIR] * 3)
    assert offered(hass, 1, 2, 3) == ["1.1.0"] * 3
    offer(hass, SOURCE_DIR, "1.2.0")
    folder = path_of(hass, SOURCE_DIR)
    assert await scans_over_intervals(hass, scans) == {folder: INTERVALS}
    assert offered(hass, 1, 2, 3) == ["1.2.0"] * 3


async def test_each_folder_is_scanned_once_per_interval(
    hass: HomeAssistant, proxy: SimProxyScanner, scans: Counter[Path]
) -> None:
    offer(hass, SOURCE_DIR, "1.1.0")
    offer(hass, OTHER_DIR, "2.0.0")
    await boards_on(hass, proxy, [SOURCE_DIR, OTHER_DIR, SOURCE_DIR])
    assert offered(hass, 1, 2, 3) == ["1.1.0", "2.0.0", "1.1.0"]
    offer(hass, OTHER_DIR, "2.1.0")
    assert await scans_over_intervals(hass, scans) == {
        path_of(hass, SOURCE_DIR): INTERVALS,
        path_of(hass, OTHER_DIR): INTERVALS,
    }
    assert offered(hass, 1, 2, 3) == ["1.1.0", "2.1.0", "1.1.0"]


async def test_a_rescan_on_request_reaches_every_board_of_the_folder(
    hass: HomeAssistant, proxy: SimProxyScanner, scans: Counter[Path]
) -> None:
    offer(hass, SOURCE_DIR, "1.1.0")
    offer(hass, OTHER_DIR, "2.0.0")
    entries = await boards_on(hass, proxy, [SOURCE_DIR, SOURCE_DIR, OTHER_DIR])
    offer(hass, SOURCE_DIR, "1.2.0")
    offer(hass, OTHER_DIR, "2.1.0")
    scans.clear()
    state = await entries[1].runtime_data.async_rescan_source()
    assert state.latest is not None
    assert state.latest.version == "1.2.0"
    assert scans == {path_of(hass, SOURCE_DIR): 1}
    assert offered(hass, 1, 2, 3) == ["1.2.0", "1.2.0", "2.0.0"]  # no timer yet


async def test_a_rescan_never_answers_what_the_folder_held_before(
    hass: HomeAssistant, proxy: SimProxyScanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rescans asked for while another one reads the changed folder wait for it.

    The first scan is held while it reads the new release (its signature is
    already taken); a scan running alongside it would find the folder
    unchanged and answer the release from before.
    """
    offer(hass, SOURCE_DIR, "1.1.0")
    entries = await boards_on(hass, proxy, [SOURCE_DIR] * 3)
    offer(hass, SOURCE_DIR, "1.2.0")
    reading = hold_reads(monkeypatch)
    rescans = [
        hass.async_create_task(entry.runtime_data.async_rescan_source())
        for entry in entries
    ]
    await asyncio.sleep(0)  # every rescan has asked
    loop = cast("VirtualTimeLoop", hass.loop)
    # Scans running alongside the held one end (no event says so: a count).
    # Bounded: if they waited for the held read too, fail here, not at its 60 s.
    for _ in range(1_000_000):
        if loop.executor_jobs <= 1:
            break
        await asyncio.sleep(0)
    else:
        pytest.fail(f"{loop.executor_jobs - 1} scans still wait for the held one")
    reading.set()
    states = await asyncio.gather(*rescans)
    assert [state.latest.version for state in states if state.latest] == ["1.2.0"] * 3
    assert offered(hass, 1, 2, 3) == ["1.2.0"] * 3


async def test_a_folder_that_stops_answering_is_a_problem_not_a_hang(
    hass: HomeAssistant, proxy: SimProxyScanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network share that hangs: the scan ends for its callers after a bound.

    Its thread goes on; the next scan waits for it, and once the share
    answers again everything is as before.
    """
    offer(hass, SOURCE_DIR, "1.1.0")
    (entry,) = await boards_on(hass, proxy, [SOURCE_DIR])
    offer(hass, SOURCE_DIR, "1.2.0")
    reading = hold_reads(monkeypatch)
    loop = cast("VirtualTimeLoop", hass.loop)
    coordinator = entry.runtime_data
    rescans = [
        hass.async_create_task(coordinator.async_rescan_source()) for _ in range(2)
    ]
    await asyncio.sleep(0)
    loop.advance(SCAN_TIMEOUT.total_seconds())  # virtual time stands while it waits
    states = await asyncio.gather(*rescans)
    for state in states:
        assert state.latest is None
        assert state.problem is not None
        assert state.problem.key == "unreadable"
        assert "no answer" in str(state.problem)
    issue_id = f"source_problem_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    reading.set()  # the share answers again
    state = await coordinator.async_rescan_source()
    assert state.problem is None
    assert state.latest is not None
    assert state.latest.version == "1.2.0"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_each_board_has_its_own_source_issue(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    folder = path_of(hass, SOURCE_DIR)
    write_release(folder, {"app.py": app_source("1.1.0")})
    (folder / "esp32_ota.json").write_text("{")
    entries = await boards_on(hass, proxy, [SOURCE_DIR] * 2)
    issues = ir.async_get(hass)
    issue_ids = [f"source_problem_{entry.entry_id}" for entry in entries]
    assert all(issues.async_get_issue(DOMAIN, id_) for id_ in issue_ids)
    assert await hass.config_entries.async_unload(entries[0].entry_id)
    assert issues.async_get_issue(DOMAIN, issue_ids[0]) is None
    assert issues.async_get_issue(DOMAIN, issue_ids[1]) is not None
    offer(hass, SOURCE_DIR, "1.1.0")  # a valid manifest
    await wait(hass, SOURCE_SCAN_INTERVAL.total_seconds())
    assert issues.async_get_issue(DOMAIN, issue_ids[1]) is None
    assert offered(hass, 2) == ["1.1.0"]


async def test_unloading_boards_leaves_the_others_watched_until_the_last(
    hass: HomeAssistant, proxy: SimProxyScanner, scans: Counter[Path]
) -> None:
    offer(hass, SOURCE_DIR, "1.1.0")
    entries = await boards_on(hass, proxy, [SOURCE_DIR] * 3)
    folder = path_of(hass, SOURCE_DIR)
    assert await hass.config_entries.async_unload(entries[0].entry_id)
    offer(hass, SOURCE_DIR, "1.2.0")
    assert await scans_over_intervals(hass, scans) == {folder: INTERVALS}
    assert offered(hass, 2, 3) == ["1.2.0"] * 2

    assert await hass.config_entries.async_reload(entries[1].entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    offer(hass, SOURCE_DIR, "1.3.0")
    assert await scans_over_intervals(hass, scans) == {folder: INTERVALS}
    assert offered(hass, 2, 3) == ["1.3.0"] * 2

    for entry in entries[1:]:
        assert await hass.config_entries.async_unload(entry.entry_id)
    assert await scans_over_intervals(hass, scans) == {}  # no timer left
    assert hass.data[DATA_WATCHERS] == {}


async def test_a_board_moved_to_another_folder_follows_that_one(
    hass: HomeAssistant, proxy: SimProxyScanner, scans: Counter[Path]
) -> None:
    offer(hass, SOURCE_DIR, "1.1.0")
    offer(hass, OTHER_DIR, "2.0.0")
    entries = await boards_on(hass, proxy, [SOURCE_DIR] * 2)
    await set_options(hass, entries[1], {CONF_SOURCE_DIR: OTHER_DIR})
    assert offered(hass, 1, 2) == ["1.1.0", "2.0.0"]
    offer(hass, SOURCE_DIR, "1.2.0")
    assert await scans_over_intervals(hass, scans) == {
        path_of(hass, SOURCE_DIR): INTERVALS,
        path_of(hass, OTHER_DIR): INTERVALS,
    }
    assert offered(hass, 1, 2) == ["1.2.0", "2.0.0"]

    await set_options(hass, entries[1], {CONF_SOURCE_DIR: SOURCE_DIR})
    assert await scans_over_intervals(hass, scans) == {
        path_of(hass, SOURCE_DIR): INTERVALS
    }
    assert offered(hass, 1, 2) == ["1.2.0", "1.2.0"]


async def test_timer_ticks_during_a_slow_scan_are_skipped(
    hass: HomeAssistant, proxy: SimProxyScanner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that takes long to read (a hung network share) piles up nothing.

    Ticks of the interval timer that come while a scan is under way end at
    once: the scan under way hands its state to every board anyway.
    """
    (entry,) = await boards_on(hass, proxy, [SOURCE_DIR])
    offer(hass, SOURCE_DIR, "1.2.0")
    reading = hold_reads(monkeypatch)
    watcher = hass.data[DATA_WATCHERS][path_of(hass, SOURCE_DIR)]
    now = dt_util.utcnow()
    slow = hass.async_create_task(watcher.async_scan())
    await asyncio.sleep(0)  # the slow scan holds the folder
    try:
        ticks = [
            hass.async_create_task(watcher._async_scan_timer(now)) for _ in range(5)
        ]
        for _ in range(3):
            await asyncio.sleep(0)
        assert all(tick.done() for tick in ticks)  # none of them waits
    finally:
        reading.set()
    state = await slow
    assert state.latest is not None
    assert state.latest.version == "1.2.0"
    assert offered(hass, 1) == ["1.2.0"]
    assert entry.runtime_data.source is state
