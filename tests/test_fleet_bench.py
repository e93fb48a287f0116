"""Fleet benchmark: many boards through the real install_files action.

A house of 3 proxies with 3 slots each (reports 0.1 s late); every board is
heard by 1, or by all 3, of them (random signal, seeded), over the `proxy`
link profile (a fixed 10 ms Wi-Fi hop) or `wifi-proxy` (jitter, spikes, 1 %
of writes and 0.5 % of notifications lost); both connect in 1-3 s. The
boards get a new version that their boot guard confirms 30 s after they
restart, with trial confirmation on: an install ends only once the board
confirmed.

Figures per case: total simulated time of the action call; the reference,
one board's transfer and reconnect on its own (trial confirmation off, same
house); the target 3 x reference x ceil(boards / 9), which trial waits must
not bound; the most connections each proxy held (never above its slots);
failed boards; boards that waited for a slot and connections refused for
lack of slots then retried; errors logged (crashes).

The suite runs the 10-board cases. `scripts/bench_fleet` runs every case
(10, 30, 100 boards) and prints the table: it sets FLEET_BENCH_ROWS to a
file that each case appends its figures to (one JSON object a line).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.esp32_ota.const import CONF_CONFIRM_TRIAL
from custom_components.esp32_ota.fleet import get_fleet
from tests.common import board_entity, setup_board
from tests.fleet_house import (
    ON_TRIAL,
    ProxyWatch,
    install_files,
    register_proxies,
    setup_house,
    trial_board,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

ROWS_ENV = "FLEET_BENCH_ROWS"
PROXIES = 3
SLOTS = 9  # 3 proxies x 3 slots
REFERENCE = 200  # the reference board's number (boards are 1..N)
SEED = 15
PROFILES = ("proxy", "wifi-proxy")
SUITE_CASES = [(10, 1, "proxy"), (10, 3, "wifi-proxy")]
BENCH_CASES = [
    (boards, heard, profile)
    for profile in PROFILES
    for boards in (10, 30, 100)
    for heard in (1, 3)
]


async def _reference_seconds(
    hass: HomeAssistant, proxy: SimProxyScanner, profile: str
) -> float:
    """One board's transfer and reconnect, alone, without the trial wait."""
    board = trial_board(REFERENCE)
    await setup_board(
        hass, proxy, board, options={CONF_CONFIRM_TRIAL: False}, profile=profile
    )
    results = await install_files(hass, [board_entity(REFERENCE)], ON_TRIAL)
    record = results[board_entity(REFERENCE)]
    assert record["result"] == "installed", record
    return float(record["seconds"])


async def _run_case(
    hass: HomeAssistant,
    proxies: list[SimProxyScanner],
    count: int,
    heard_by: int,
    profile: str,
) -> dict[str, Any]:
    reference = await _reference_seconds(hass, proxies[0], profile)
    await setup_house(
        hass,
        proxies,
        count,
        seed=SEED,
        heard_by=(heard_by, heard_by),
        make=trial_board,
        profile=profile,
    )
    watch = ProxyWatch(proxies)
    began = hass.loop.time()
    results = await install_files(
        hass, [board_entity(index) for index in range(1, count + 1)], ON_TRIAL
    )
    total = hass.loop.time() - began
    watch.remove()
    return {
        "boards": count,
        "proxies_per_board": heard_by,
        "profile": profile,
        "total_s": round(total, 1),
        "reference_s": round(reference, 2),
        "target_s": round(3 * reference * math.ceil(count / SLOTS), 1),
        "peak": list(watch.peak.values()),
        "slots": list(watch.limits.values()),
        "failed": sum(r["result"] != "installed" for r in results.values()),
        "failures": sorted({r["error"] for r in results.values() if r.get("error")}),
        "unconfirmed": sum(bool(r.get("trial")) for r in results.values()),
        "waited": sum(r.get("queued_seconds", 0) > 0 for r in results.values()),
        "refusals": get_fleet(hass).refusals,
    }


def _append_row(rows: Path, figures: dict[str, Any]) -> None:
    with rows.open("a") as out:
        out.write(json.dumps(figures) + "\n")


def _cases() -> list[tuple[int, int, str]]:
    return BENCH_CASES if os.environ.get(ROWS_ENV) else SUITE_CASES


@pytest.mark.parametrize("case", _cases(), ids=lambda case: "-".join(map(str, case)))
async def test_fleet(
    hass: HomeAssistant,
    enable_bluetooth: None,
    caplog: pytest.LogCaptureFixture,
    case: tuple[int, int, str],
) -> None:
    count, heard_by, profile = case
    proxies, cleanup = register_proxies(hass, PROXIES)
    try:
        figures = await _run_case(hass, proxies, count, heard_by, profile)
    finally:
        cleanup()
    figures["errors_logged"] = sum(
        record.levelno >= logging.ERROR
        and not record.name.startswith("habluetooth.scanner")  # no real adapter
        for record in caplog.records
    )
    if rows := os.environ.get(ROWS_ENV):
        await hass.async_add_executor_job(_append_row, Path(rows), figures)

    assert figures["failed"] == 0
    assert figures["unconfirmed"] == 0
    assert figures["errors_logged"] == 0
    assert all(
        peak <= slots
        for peak, slots in zip(figures["peak"], figures["slots"], strict=True)
    )
    assert figures["waited"] > 0  # more boards than slots: the queue was used
    if count >= 100:  # a fleet, not a handful: trial waits must not bound it
        assert figures["total_s"] <= figures["target_s"]
