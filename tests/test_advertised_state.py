"""Home Assistant follows the OTA state boards advertise, without connecting.

The boards run the real firmware in the simulator and advertise every
ADVERTISING_INTERVAL through the proxy (SimProxyScanner.advertise_every);
connections are counted by the boards (`VirtualBoard.connections`). All on
the virtual clock: a simulated day takes only the CPU time its events need.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import pytest
from bluetooth_data_tools import monotonic_time_coarse
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from custom_components.esp32_ota.const import (
    CONF_AUTH_KEY,
    CONF_PROBE_MINUTES,
    DOMAIN,
)
from custom_components.esp32_ota.repairs import ISSUE_ROLLED_BACK, issue_id
from tests.common import (
    ENTITY_ID,
    app_source,
    board_with_release,
    make_board,
    setup_board,
    setup_fleet,
    wait,
)

if TYPE_CHECKING:
    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.esp32_ota.coordinator import BoardCoordinator
    from tests.bluetooth_helpers import SimProxyScanner

pytestmark = pytest.mark.virtual_clock

ADVERTISING_INTERVAL = 10.0  # s, the simulated boards'
DAY = 24 * 3600.0
KEY = "0123456789abcdef0123456789abcdef"


def coordinator_of(entry: MockConfigEntry) -> BoardCoordinator:
    coordinator: BoardCoordinator = entry.runtime_data
    return coordinator


def installed(hass: HomeAssistant) -> str | None:
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    version: str | None = state.attributes["installed_version"]
    return version


def rollback_issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(
        DOMAIN, issue_id(ISSUE_ROLLED_BACK, entry.entry_id)
    )


async def advertising_board(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> tuple[VirtualBoard, MockConfigEntry, int]:
    """A board on 1.0.0 advertising, 1.1.0 in its folder; its connections so far."""
    board, entry = await board_with_release(hass, proxy, "1.1.0")
    proxy.advertise_every(board, ADVERTISING_INTERVAL)
    return board, entry, board.connections


def reflash(board: VirtualBoard, files: dict[str, str]) -> None:
    """Someone changes the board's files over USB and resets it."""
    for name, text in files.items():
        board.write(name, text)
    board.reboot()


async def test_a_quiet_day_costs_our_boards_no_connection(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    boards = await setup_fleet(hass, proxy, 30)
    assert [board.connections for board in boards] == [1] * 30  # the first read
    for board in boards:
        proxy.advertise_every(board, 60.0)  # fewer callbacks; none changes anything
    await wait(hass, DAY)
    assert [board.connections for board in boards] == [1] * 30


@pytest.mark.parametrize(("minutes", "reads"), [(None, 24), (30, 48)])
async def test_a_v1_board_is_still_probed(
    hass: HomeAssistant, proxy: SimProxyScanner, minutes: int | None, reads: int
) -> None:
    board = make_board(v1=True)
    options = {} if minutes is None else {CONF_PROBE_MINUTES: minutes}
    await setup_board(hass, proxy, board, options=options)
    proxy.advertise_every(board, ADVERTISING_INTERVAL)
    before = board.connections
    await wait(hass, DAY + 60)  # the timer runs a little behind
    assert board.connections - before == reads


@pytest.mark.parametrize("v1", [False, True], ids=["v2", "v1"])
async def test_the_signal_strength_follows_the_advertisements(
    hass: HomeAssistant, proxy: SimProxyScanner, v1: bool
) -> None:
    """Also for firmware that advertises no OTA state (v1).

    Home Assistant calls back when an advertisement's content changes (not
    for its RSSI alone): here its manufacturer data.
    """
    board = make_board(v1=v1)
    signal = "sensor.esp32_ota_0001_signal_strength"
    er.async_get(hass).async_get_or_create(
        "sensor", DOMAIN, f"{board.address}_rssi", suggested_object_id=signal[7:]
    )
    await setup_board(hass, proxy, board)
    for count, rssi in enumerate((-75, -52), start=1):
        proxy._async_on_advertisement(
            board.address,
            rssi,
            board.name,
            [],
            {},
            {0x0F0F: bytes([count])},  # an id no integration matches
            None,
            {"address_type": 0},
            monotonic_time_coarse(),
        )
        await hass.async_block_till_done()
        state = hass.states.get(signal)
        assert state is not None
        assert state.state == str(rssi)


async def test_an_out_of_band_update_is_read_once(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _, before = await advertising_board(hass, proxy)
    assert installed(hass) == "1.0.0"
    reflash(board, {"app.py": app_source("1.0.5"), "config.py": 'VERSION = "1.0.5"\n'})
    await wait(hass, ADVERTISING_INTERVAL + 30)  # one interval + one connection
    assert board.connections == before + 1
    assert installed(hass) == "1.0.5"
    await wait(hass, 2 * 3600)
    assert board.connections == before + 1


async def test_a_release_installed_elsewhere_needs_no_connection(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    # The folder's release, installed by another client: its bundle is the
    # last HELLO with the release's files and version.
    board, _, before = await advertising_board(hass, proxy)
    commit_on_board(board, {"app.py": app_source("1.1.0")}, "1.1.0")
    await wait(hass, ADVERTISING_INTERVAL)
    assert installed(hass) == "1.1.0"
    assert board.connections == before


async def test_a_rollback_raises_its_repair_without_a_connection(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry, before = await advertising_board(hass, proxy)
    commit_on_board(board, {"app.py": app_source("1.1.0", crash=True)}, "1.1.0")
    assert rollback_issue(hass, entry) is None
    await wait(hass, ADVERTISING_INTERVAL)
    assert rollback_issue(hass, entry) is not None
    assert board.connections == before
    assert installed(hass) == "1.0.0"


async def test_a_forged_rollback_needs_a_confirming_connection_with_a_key(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board()
    entry = await setup_board(hass, proxy, board, options={CONF_AUTH_KEY: KEY})
    before = board.connections
    version = installed(hass)
    # Someone else advertises the board's address with the rolled-back flag
    # on the bundle the board really runs.
    forged = bytearray(board.advertising_payload or b"")
    at = forged.index(b"\x55\xfb") + 3
    forged[at] |= 2
    proxy._async_on_raw_advertisement(  # a forged payload
        board.address, -60, bytes(forged), {"address_type": 0}, 0.0
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert board.connections == before + 1  # the read that did not confirm it
    assert rollback_issue(hass, entry) is None
    assert installed(hass) == version


@pytest.mark.parametrize(("board_key", "shown"), [(KEY, True), ("another key", False)])
async def test_with_a_key_a_rollback_is_shown_once_a_signed_hello_confirms_it(
    hass: HomeAssistant, proxy: SimProxyScanner, board_key: str, shown: bool
) -> None:
    # A board with another key stands for a relay: it can answer HELLO with a
    # rollback record, but it cannot sign it with our key.
    board = make_board(config=f'VERSION = "1.0.0"\nAUTH_KEY = "{board_key}"\n')
    entry = await setup_board(hass, proxy, board, options={CONF_AUTH_KEY: KEY})
    proxy.advertise_every(board, ADVERTISING_INTERVAL)
    before = board.connections
    commit_on_board(board, {"app.py": app_source("1.1.0", crash=True)}, "1.1.0")
    await wait(hass, ADVERTISING_INTERVAL + 30)  # one interval + one connection
    assert board.connections == before + 1
    assert (rollback_issue(hass, entry) is not None) is shown


def commit_on_board(board: VirtualBoard, files: dict[str, str], version: str) -> None:
    """Another client's update: staged files committed by the firmware, a reset."""
    items = []
    for name, text in files.items():
        board.write(name + ".new", text)
        crc = f"{zlib.crc32(text.encode()):08x}"
        items.append((name, name + ".new", version, len(text), crc))
    assert board.runtime is not None
    board.runtime.load("ota_commit").apply(items)
    board.reboot()  # a crashing version boots again until the guard rolls back
