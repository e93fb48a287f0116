"""Home Assistant side faults the other HA tests do not cover.

Out of slots, the proxy gone mid-transfer and two installs at once are in
tests/test_update.py and tests/test_esphome_proxy.py; here: Home Assistant
stopping in the middle of an install, a board out of range that comes back,
and an install through a faulty link, all through the real entity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from esp32_ota_sim.bleak_backend import connection_slots
from esp32_ota_sim.board import FIRMWARE_DIR
from homeassistant.core import CoreState

from custom_components.esp32_ota.nus_ota import probe
from tests.common import (
    ENTITY_ID,
    app_source,
    install,
    install_fails,
    make_board,
    setup_board,
    source_folder,
    wait_until_sending,
    write_release,
)
from tests.faults.rig import Recorder, profile

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner
    from tests.faults.rig import FaultLedger


async def test_home_assistant_stops_mid_install(
    hass: HomeAssistant, proxy: SimProxyScanner, faults: FaultLedger
) -> None:
    app = app_source("1.1.0", padding=40_000)
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    old = {"app.py": (FIRMWARE_DIR / "app.py").read_bytes()}
    entry = await setup_board(hass, proxy, board)
    coordinator = entry.runtime_data
    task = hass.async_create_task(install(hass))
    await wait_until_sending(coordinator)

    await hass.async_stop()
    faults.add("Home Assistant stopped mid-install")

    assert hass.state is CoreState.stopped
    assert task.done()  # nothing of the install is left running
    assert not coordinator.installer.installing
    assert coordinator.installer.progress is None
    free, limit, _ = connection_slots(proxy.source)
    assert free == limit  # the connection was released
    # Home Assistant cancelled the install: the board keeps its old files
    # (the staged part waits for the next install to resume it).
    assert task.cancelled()
    assert faults.check_board(board, old, {"app.py": app.encode()}) == "old"
    assert board.state == "running"
    info = await probe(Recorder(board))
    assert info is not None
    assert info.staged["app.py"].have > 0  # resumable by the next install


@pytest.mark.virtual_clock  # retries and backoffs cost no real time
async def test_board_out_of_range_then_back(
    hass: HomeAssistant, proxy: SimProxyScanner, faults: FaultLedger
) -> None:
    app = app_source("1.1.0")
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    await setup_board(hass, proxy, board)
    board.stop()  # out of range; Home Assistant still has its advertisement
    await install_fails(hass, "not_found")
    faults.add("board out of range")
    board.boot()
    proxy.inject(board)
    await install(hass)  # the same entity, usable again
    assert board.read("app.py") == app.encode()
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["installed_version"] == "1.1.0"


@pytest.mark.virtual_clock  # lost replies' timeouts cost no real time
@pytest.mark.parametrize("seed", [11, 12, 13, 14])
async def test_install_through_a_lossy_link(
    hass: HomeAssistant, proxy: SimProxyScanner, faults: FaultLedger, seed: int
) -> None:
    app = app_source("1.1.0", padding=20_000)
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    old = {"app.py": board.read("app.py")}
    # 5 % of notifications lost: parts of the two-packet HELLO reply too,
    # which the client asks for again.
    link = profile(
        "fast", seed=seed, write_loss=0.05, notify_loss=0.05, notify_dup=0.05
    )
    await setup_board(hass, proxy, board)
    proxy.inject(board, link)
    links = []
    original = board.accept

    def accept(sim_link: object) -> int:
        links.append(sim_link)
        return original(sim_link)  # type: ignore[arg-type]

    board.accept = accept  # type: ignore[method-assign]
    await install(hass)
    injected = sum(faults.add_link(link.stats) for link in links)
    assert injected > 0
    assert faults.check_board(board, old, {"app.py": app.encode()}) == "new"
