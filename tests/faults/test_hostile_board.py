"""A hostile or broken board: its ota_manager.py is patched in its own flash.

Garbage replies, a huge line, wrong acknowledgements, impossible
capabilities, a flood of notifications that never answers: the real client
ends with a clear OTAError within bounded (virtual) time and holds no more
than a bounded amount of what the board sent; through Home Assistant the
entity reports a translated error and installs again once the board is sane.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from esp32_ota_sim.clock import run_virtual
from homeassistant.exceptions import HomeAssistantError

from custom_components.esp32_ota.nus_ota import (
    InvalidBoardInfoError,
    LineTooLongError,
    OTAError,
    ProtocolError,
    TooManyRetriesError,
)
from custom_components.esp32_ota.nus_ota.client import OTAClient
from tests.common import (
    ENTITY_ID,
    app_source,
    install,
    make_board,
    setup_board,
    source_folder,
    write_release,
)
from tests.faults.rig import Recorder, bundle, fault_board, release, run_install

if TYPE_CHECKING:
    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner
    from tests.faults.rig import FaultLedger

# Appended to the board's ota_manager.py; MODE picks the misbehaviour.
HOSTILE = """

_honest_handle = OTAManager.handle
_honest_frame = OTAManager.frame
_honest_send = OTAManager._send
MODE = "@MODE@"
IMPOSSIBLE = (
    'OTA:HELLO:{"proto":2,"fw":"9.9","app":null,"win":0,"line":3,'
    '"enc":["rot13"],"auth":"none","nonce":"0123456789abcdef","free":-5,'
    '"files":{},"staged":{},"trial":null,"rollback":null}'
)


def _hostile_handle(self, line):
    if MODE == "garbage":
        self._send("OTA:\\u00ff\\u0001" + "\\u2603" * 40 + ":::" + line[::-1])
    elif MODE == "huge" and line.startswith("OTA:HELLO"):
        self._send("OTA:HELLO:" + "x" * 20000)
    elif MODE == "impossible" and line.startswith("OTA:HELLO"):
        self._send(IMPOSSIBLE)
    elif MODE == "flood" and line.startswith("OTA:D:"):
        for n in range(40):
            self._send("noise " + str(n) + " that never ends")
    else:
        _honest_handle(self, line)


def _hostile_frame(self, frame):
    if MODE == "flood":
        for n in range(40):
            self._send("noise " + str(n) + " that never ends")
    else:
        _honest_frame(self, frame)


def _hostile_send(self, line):
    if MODE == "wrong_seq" and line.startswith("OTA:A:"):
        line = "OTA:A:" + str(int(line[6:]) + 99999)
    _honest_send(self, line)


OTAManager.handle = _hostile_handle
OTAManager.frame = _hostile_frame
OTAManager._send = _hostile_send
"""

MODES: dict[str, type[OTAError]] = {
    "garbage": ProtocolError,
    "huge": LineTooLongError,
    "impossible": InvalidBoardInfoError,
    "wrong_seq": ProtocolError,
    "flood": TooManyRetriesError,
}


def make_hostile(board: VirtualBoard, mode: str) -> bytes:
    """Patch the firmware in the board's flash and reboot it; the honest copy."""
    honest = board.read("ota_manager.py")
    board.write("ota_manager.py", honest + HOSTILE.replace("@MODE@", mode).encode())
    board.reboot()
    return honest


@pytest.mark.parametrize("mode", list(MODES))
def test_client_against_a_hostile_board(faults: FaultLedger, mode: str) -> None:
    # The huge line goes through a local adapter: a proxy's bounded queue
    # drops most of it, and the client then sees a reply that lost its end
    # (asked again, then NoReplyError), not a line too long.
    board = fault_board("local" if mode == "huge" else "proxy")
    honest = make_hostile(board, mode)
    old = bundle(board)
    new = release(board, size=8000)
    connect = Recorder(board)
    queued: list[int] = []
    original = OTAClient._on_data

    def watching(self: OTAClient, data: bytes) -> None:
        original(self, data)
        queued.append(self._queue.qsize())

    async def scenario() -> tuple[object, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await run_install(connect, new)
        return result, loop.time() - start

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OTAClient, "_on_data", watching)
        result, seconds = run_virtual(scenario())

    faults.add(f"hostile board ({mode})")
    connect.count_faults(faults)
    assert isinstance(result, MODES[mode]), result
    assert seconds < 120  # virtual seconds: it ended, it did not hang
    # What the client keeps of the board's output stays small.
    assert max(queued, default=0) < 64
    assert faults.check_board(board, old, new) == "old"
    # Back to honest firmware: the same client installs.
    board.write("ota_manager.py", honest)
    board.reboot()
    assert not isinstance(run_virtual(run_install(Recorder(board), new)), Exception)
    assert faults.check_board(board, old, new) == "new"


# The flood runs at the client level only: on Home Assistant's real clock
# its retransmission back-off would cost half a minute per run.
@pytest.mark.parametrize(
    ("mode", "key"), [("garbage", "invalid_reply"), ("wrong_seq", "invalid_reply")]
)
async def test_entity_against_a_hostile_board(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    faults: FaultLedger,
    mode: str,
    key: str,
) -> None:
    app = app_source("1.1.0", padding=8000)
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board()
    await setup_board(hass, proxy, board)
    honest = make_hostile(board, mode)
    proxy.inject(board)
    before = board.read("app.py")

    with pytest.raises(HomeAssistantError) as err:
        await install(hass)

    faults.add(f"hostile board ({mode})")
    assert err.value.translation_key == key, err.value
    assert board.name in str(err.value)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["in_progress"] is False
    assert board.read("app.py") == before
    board.write("ota_manager.py", honest)
    board.reboot()
    proxy.inject(board)
    await install(hass)
    assert board.read("app.py") == app.encode()
