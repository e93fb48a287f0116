"""A house for fleet tests and the fleet benchmark.

N boards and P ESPHome-proxy-like scanners (3 connection slots each, slot
reports 0.1 s late like any report over Wi-Fi); each board is heard by a
random subset of the proxies with random signal (seeded:
esp32_ota_sim.fleet's topology). Home Assistant's
own Bluetooth stack (habluetooth) picks the path of every connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esp32_ota_sim.bleak_backend import add_slot_listener, connection_slots
from esp32_ota_sim.board import FIRMWARE_DIR
from esp32_ota_sim.fleet import fleet_topology
from homeassistant.const import ATTR_ENTITY_ID

from custom_components.esp32_ota.const import DOMAIN
from tests.bluetooth_helpers import async_register_sim_proxy
from tests.common import app_source, board_address, make_board, setup_board
from tests.test_trial import UNCONFIRMED_MAIN

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

PROXY_SLOTS = 3
REPORT_DELAY = 0.1

# New versions count as healthy 30 s after the board started them (the boot
# guard's default confirms them), and a new version whose main.py leaves
# confirming to the boot guard: an install with trial confirmation on ends
# about 30 s after the board restarted into it.
CONFIRM_AFTER_S = 30
assert (
    f"CONFIRM_AFTER_MS = {CONFIRM_AFTER_S * 1000}"
    in (FIRMWARE_DIR / "boot_guard.py").read_text()
)
ON_TRIAL = {"app.py": app_source("2.0.0"), "main.py": UNCONFIRMED_MAIN}


def trial_board(index: int) -> VirtualBoard:
    """Board number `index`, whose new versions count as healthy after 30 s up."""
    return make_board(board_address(index))


def register_proxies(
    hass: HomeAssistant, count: int
) -> tuple[list[SimProxyScanner], Callable[[], None]]:
    """`count` proxies with PROXY_SLOTS slots each; returns them and a cleanup."""
    registered = [
        async_register_sim_proxy(
            hass,
            f"AA:BB:CC:DD:EE:{index:02X}",
            f"proxy-{index}",
            slots=PROXY_SLOTS,
            report_delay=REPORT_DELAY,
        )
        for index in range(1, count + 1)
    ]

    def cleanup() -> None:
        for _proxy, remove in registered:
            remove()

    return [proxy for proxy, _remove in registered], cleanup


class ProxyWatch:
    """The most connections each proxy held at once."""

    def __init__(self, proxies: list[SimProxyScanner]) -> None:
        """Watch every proxy's slots."""
        self.limits = {
            proxy.source: connection_slots(proxy.source)[1] for proxy in proxies
        }
        self.peak = dict.fromkeys(self.limits, 0)
        self.remove = add_slot_listener(self._changed)

    def _changed(self, source: str) -> None:
        if source in self.peak:
            _free, _limit, connected = connection_slots(source)
            self.peak[source] = max(self.peak[source], len(connected))

    def within_slots(self) -> bool:
        """Whether no proxy ever held more connections than it has slots."""
        return all(self.peak[source] <= self.limits[source] for source in self.peak)


async def setup_house(
    hass: HomeAssistant,
    proxies: list[SimProxyScanner],
    count: int,
    *,
    seed: int,
    heard_by: tuple[int, int] | None = None,
    make: Callable[[int], VirtualBoard] | None = None,
    profile: str = "fast",
    first: int = 1,
) -> list[VirtualBoard]:
    """Set up boards first..first+count-1, each heard by random proxies.

    `heard_by` is the (fewest, most) proxies hearing one board (default:
    1 to all of them); `make` builds board number i (default: make_board).
    """
    topology = fleet_topology(count, proxies, seed=seed, hearing=heard_by, first=first)
    boards = []
    for spot in topology.boards:
        board = (make or _plain_board)(spot.index)
        await setup_board(hass, spot.hearers[0], board, profile=profile)
        for proxy in spot.hearers:
            proxy.inject(board, profile, rssi=spot.rssi[proxy])
        boards.append(board)
    return boards


def _plain_board(index: int) -> VirtualBoard:
    return make_board(board_address(index))


async def install_files(
    hass: HomeAssistant, entities: list[str], content: Mapping[str, str]
) -> dict[str, Any]:
    """Push `content` to the boards through the action; its per-board results."""
    response = await hass.services.async_call(
        DOMAIN,
        "install_files",
        {ATTR_ENTITY_ID: entities, "content": dict(content)},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return response["boards"]  # type: ignore[return-value]
