"""A fleet's radio topology: N boards, P proxies, who hears whom and how well.

In a real house with two or three ESPHome proxies most boards are heard by
more than one of them, each with its own signal. `fleet_topology` draws
that, seeded, so tests and benchmarks repeat exactly:

    topo = fleet_topology(30, ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02",
                               "AA:BB:CC:DD:EE:03"], seed=15)
    for spot in topo.boards:
        spot.index, spot.address      # 1..30, 24:0A:C4:00:00:01...
        spot.hearers                  # proxies hearing it, in the order drawn
        spot.rssi                     # {proxy: dBm}, e.g. -95..-45
    topo.heard_by(proxy)              # the boards one proxy hears
    topo.summary()                    # counts for a report line

- `boards`: how many; `first` is the index of the first (addresses follow
  `board_address`).
- `proxies`: the proxies' names (any hashable: Bluetooth source addresses,
  scanner objects), or a count for names `proxy-1`…; `hearing` is the
  (fewest, most) proxies that hear one board, default 1 to all;
  `rssi_range` the signal in dBm, both ends included.
- The draw per board, in order: how many proxies hear it, which ones
  (`random.sample`), then one RSSI per hearer. Nothing else uses the seed,
  so adding a consumer never changes a topology.

It is data only (no Home Assistant, no boards): tests/fleet_house.py puts
it into Home Assistant's Bluetooth stack, and it fits `VirtualProxy` and the
benchmark alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

__all__ = [
    "RSSI_RANGE",
    "BoardSpot",
    "FleetTopology",
    "board_address",
    "fleet_topology",
]

RSSI_RANGE = (-95, -45)


def board_address(index: int) -> str:
    """The address of the index-th board: 24:0A:C4:00:00:01, ... (Espressif's OUI)."""
    if not 0 <= index <= 0xFFFF:
        raise ValueError(f"board index {index} out of range 0..65535")
    return f"24:0A:C4:00:{index >> 8:02X}:{index & 0xFF:02X}"


@dataclass(frozen=True)
class BoardSpot:
    """Where one board is: the proxies that hear it and how well."""

    index: int
    address: str
    hearers: tuple[Any, ...]
    rssi: dict[Any, int] = field(compare=False)

    @property
    def strongest(self) -> Any:
        """The proxy that hears this board best (first drawn on a tie)."""
        return max(self.hearers, key=lambda proxy: self.rssi[proxy])


@dataclass(frozen=True)
class FleetTopology:
    """Every board's spot; proxies in the order given."""

    proxies: tuple[Any, ...]
    boards: tuple[BoardSpot, ...]
    seed: int

    def heard_by(self, proxy: Hashable) -> list[BoardSpot]:
        """The boards `proxy` hears."""
        return [spot for spot in self.boards if proxy in spot.rssi]

    def summary(self) -> dict[str, Any]:
        """Boards, proxies, and how many boards 1, 2, ... proxies hear."""
        by_count: dict[int, int] = {}
        for spot in self.boards:
            by_count[len(spot.hearers)] = by_count.get(len(spot.hearers), 0) + 1
        return {
            "boards": len(self.boards),
            "proxies": len(self.proxies),
            "seed": self.seed,
            "heard_by": dict(sorted(by_count.items())),
        }


def fleet_topology(
    boards: int,
    proxies: int | Sequence[Any],
    *,
    seed: int,
    hearing: tuple[int, int] | None = None,
    rssi_range: tuple[int, int] = RSSI_RANGE,
    first: int = 1,
) -> FleetTopology:
    """Draw which proxies hear each of `boards` boards, and their RSSI."""
    names = (
        tuple(f"proxy-{n}" for n in range(1, proxies + 1))
        if isinstance(proxies, int)
        else tuple(proxies)
    )
    if not names:
        raise ValueError("a fleet needs at least one proxy")
    fewest, most = hearing or (1, len(names))
    if not 1 <= fewest <= most <= len(names):
        raise ValueError(
            f"hearing={hearing}: need 1 <= fewest <= most <= {len(names)} proxies"
        )
    low, high = rssi_range
    if low > high:
        raise ValueError(f"rssi_range={rssi_range}: low end above high end")
    rng = random.Random(seed)
    spots = []
    for index in range(first, first + boards):
        hearers = tuple(rng.sample(names, rng.randint(fewest, most)))
        rssi = {proxy: rng.randint(low, high) for proxy in hearers}
        spots.append(BoardSpot(index, board_address(index), hearers, rssi))
    return FleetTopology(names, tuple(spots), seed)
