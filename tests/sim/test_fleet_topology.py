"""The fleet topology helper: seeded, within its bounds, with one clear API."""

from __future__ import annotations

import pytest
from esp32_ota_sim.fleet import RSSI_RANGE, board_address, fleet_topology

PROXIES = ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02", "AA:BB:CC:DD:EE:03"]


def test_seeded_and_repeatable() -> None:
    first = fleet_topology(100, PROXIES, seed=15)
    assert first == fleet_topology(100, PROXIES, seed=15)
    assert first != fleet_topology(100, PROXIES, seed=16)
    rssi = [spot.rssi for spot in first.boards]
    assert rssi == [spot.rssi for spot in fleet_topology(100, PROXIES, seed=15).boards]


def test_every_board_is_heard_within_bounds() -> None:
    topo = fleet_topology(300, PROXIES, seed=3)
    low, high = RSSI_RANGE
    counts = topo.summary()["heard_by"]
    assert set(counts) == {1, 2, 3}  # 1 to all proxies, each case drawn
    assert sum(counts.values()) == 300
    for spot in topo.boards:
        assert len(set(spot.hearers)) == len(spot.hearers)
        assert set(spot.rssi) == set(spot.hearers)
        assert all(low <= value <= high for value in spot.rssi.values())
        assert spot.rssi[spot.strongest] == max(spot.rssi.values())
    assert len({spot.address for spot in topo.boards}) == 300
    for proxy in PROXIES:
        assert topo.heard_by(proxy) == [s for s in topo.boards if proxy in s.hearers]
    everyone = fleet_topology(20, PROXIES, seed=3, hearing=(3, 3))
    assert all(len(spot.hearers) == 3 for spot in everyone.boards)
    alone = fleet_topology(20, 3, seed=3, hearing=(1, 1), rssi_range=(-60, -60))
    assert alone.proxies == ("proxy-1", "proxy-2", "proxy-3")
    assert all(spot.rssi == {spot.hearers[0]: -60} for spot in alone.boards)


def test_indices_and_addresses() -> None:
    topo = fleet_topology(3, PROXIES, seed=1, first=255)
    assert [spot.index for spot in topo.boards] == [255, 256, 257]
    assert [spot.address for spot in topo.boards] == [
        "24:0A:C4:00:00:FF",
        "24:0A:C4:00:01:00",
        "24:0A:C4:00:01:01",
    ]
    assert board_address(1) == "24:0A:C4:00:00:01"
    with pytest.raises(ValueError, match="out of range"):
        board_address(70_000)


@pytest.mark.parametrize(
    ("proxies", "options"),
    [
        ([], {}),
        (PROXIES, {"hearing": (0, 2)}),
        (PROXIES, {"hearing": (2, 4)}),
        (PROXIES, {"hearing": (3, 2)}),
        (PROXIES, {"rssi_range": (-40, -90)}),
    ],
)
def test_bad_arguments_are_refused(proxies: list[str], options: dict) -> None:
    with pytest.raises(ValueError):
        fleet_topology(5, proxies, seed=1, **options)
