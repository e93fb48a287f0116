"""A relay in the middle: what it can no longer do, end to end through Home Assistant.

An ESPHome proxy, or anyone in the middle of the unpaired BLE link, sees and
can change every byte, and can answer in place of the board. Here a relay
sits on the board's receiving side of the simulated link, with the real
firmware on the board and the real integration in Home Assistant:

- it swaps the code: every `OTA:D` payload or binary frame (plain or
  deflated) is rewritten with a file of its own of the same size whose CRC-32
  is forged to match (4 chosen bytes). The signed FILE and APPLY pass
  untouched. The board must refuse the data (its SHA-256 is not the signed
  one), nothing may be staged or applied, and Home Assistant must say so in
  words.
- it pretends the board is old v1 firmware (`OTA:ERR:UNKNOWN_CMD` to HELLO)
  to get the v1 token or to bypass the key. A board that spoke v2 before, or
  one with a key, must get nothing after HELLO, and a repair must explain.
"""

from __future__ import annotations

import asyncio
import base64
import json
import zlib
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.esp32_ota.const import CONF_AUTH_KEY, CONF_TOKEN
from custom_components.esp32_ota.nus_ota.lines import (
    FRAME_HEAD,
    data_frame,
    deflate_frame,
)
from tests.common import (
    app_source,
    board_with_release,
    install,
    install_fails,
    make_board,
    setup_board,
    source_folder,
    write_release,
)
from tests.faults.rig import DATA_FRAME, DEFLATED_FRAME
from tests.firmware.support.crc_forge import crc32, swap_for
from tests.test_repairs import fix, issue, start_fix
from tests.test_trial import ON_TRIAL, when_on_trial

if TYPE_CHECKING:
    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner
    from tests.faults.rig import FaultLedger

KEY = "k3y-Never-On-Air"
TOKEN = "v1-secret-token"
EVIL = b"import os\nos.remove('main.py')  # the relay's code\n"


class Relay:
    """Sits between the link and the board; every write passes through it."""

    def __init__(self, board: VirtualBoard) -> None:
        """Tap `board`'s receiving side."""
        self.board = board
        self.written: list[bytes] = []
        self.swap = False
        self.fake_v1 = False
        self.swapped = 0
        self.swapped_deflated = 0
        self._forged = b""
        self._b64 = True
        receive = board.receive

        def relayed(link: Any, data: bytes) -> None:
            data = self._rewrite(link, bytes(data))
            if data:
                self.written.append(data)
                receive(link, data)

        board.receive = relayed  # type: ignore[method-assign]

    def _rewrite(self, link: Any, data: bytes) -> bytes:
        if self.fake_v1 and data.startswith(b"OTA:HELLO"):
            # Answer in the board's place, as old firmware would.
            asyncio.get_running_loop().call_soon(
                link.board_notify, b"OTA:ERR:UNKNOWN_CMD\n"
            )
            return b""
        if self.swap and data.startswith(b"OTA:FILE:"):
            fields = data.decode().split(":")
            size, crc, enc = int(fields[3]), fields[4], fields[6]
            self._forged = swap_for(EVIL, size, crc)
            assert crc32(self._forged) == int(crc, 16)
            self._b64 = enc == "b64"
        elif self.swap and self._forged and data.startswith(DATA_FRAME):
            start = int.from_bytes(data[3:FRAME_HEAD], "little")
            size = len(data) - FRAME_HEAD
            self.swapped += 1
            return data_frame(start, self._forged[start : start + size])
        elif self.swap and self._forged and data.startswith(DEFLATED_FRAME):
            start = int.from_bytes(data[3:7], "little")
            count = int.from_bytes(data[7:9], "little")
            self.swapped += 1
            self.swapped_deflated += 1
            own = zlib.compressobj(9, zlib.DEFLATED, -9)  # the board's 512 B window
            chunk = self._forged[start : start + count]
            return deflate_frame(start, count, own.compress(chunk) + own.flush())
        elif self.swap and self._forged and data.startswith(b"OTA:D:"):
            _, _, offset, payload = data.rstrip(b"\n").split(b":", 3)
            start = int(offset)
            size = len(self._decode(payload))
            own = self._forged[start : start + size]
            self.swapped += 1
            return b"OTA:D:%d:%s\n" % (start, self._encode(own))
        return data

    def _decode(self, payload: bytes) -> bytes:
        return (
            base64.b64decode(payload) if self._b64 else bytes.fromhex(payload.decode())
        )

    def _encode(self, chunk: bytes) -> bytes:
        return base64.b64encode(chunk) if self._b64 else chunk.hex().encode()


def staged(board: VirtualBoard) -> dict[str, Any]:
    """What the board's state file says is staged, and its .new files."""
    state = json.loads(board.read("ota_state.json") or b"{}")
    news = [name for name in board.files() if name.endswith(".new")]
    return {"state": state.get("staged", {}), "files": news}


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflated"])
async def test_swapped_code_with_a_forged_crc_is_refused(
    hass: HomeAssistant, proxy: SimProxyScanner, faults: FaultLedger, deflate: bool
) -> None:
    write_release(
        source_folder(hass), {"app.py": app_source("1.1.0")}, {"version": "1.1.0"}
    )
    config = f'VERSION = "1.0.0"\nAUTH_KEY = "{KEY}"\n'
    board = make_board(config=config, deflate=deflate)
    entry = await setup_board(hass, proxy, board, options={CONF_AUTH_KEY: KEY})
    before = {name: board.read(name) for name in ("main.py", "app.py")}
    relay = Relay(board)
    relay.swap = True

    err = await install_fails(hass, "content_refused")

    faults.add("code swapped by a relay (CRC forged)")
    assert relay.swapped > 0  # the relay did rewrite the data
    assert (relay.swapped_deflated > 0) == deflate
    assert err.translation_placeholders == {"name": entry.title, "file": "app.py"}
    assert "did not match the signature" in str(err), str(err)
    assert staged(board) == {"state": {}, "files": []}
    assert not any(line.startswith(b"OTA:APPLY") for line in relay.written)
    assert {name: board.read(name) for name in before} == before
    assert EVIL not in board.read("app.py")


@pytest.mark.parametrize(
    ("config", "options"),
    [
        (f'AUTH_TOKEN = "{TOKEN}"\n', {CONF_TOKEN: TOKEN}),
        (
            f'AUTH_KEY = "{KEY}"\nAUTH_TOKEN = "{TOKEN}"\n',
            {CONF_AUTH_KEY: KEY, CONF_TOKEN: TOKEN},
        ),
    ],
    ids=["token, spoke v2 before", "key and token"],
)
async def test_a_relay_pretending_to_be_v1_gets_nothing(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    faults: FaultLedger,
    config: str,
    options: dict[str, str],
) -> None:
    write_release(
        source_folder(hass), {"app.py": app_source("1.1.0")}, {"version": "1.1.0"}
    )
    board = make_board(config='VERSION = "1.0.0"\n' + config)
    entry = await setup_board(hass, proxy, board, options=options)
    coordinator = entry.runtime_data
    assert coordinator.data.protocol == 2
    before = board.read("app.py")
    relay = Relay(board)
    relay.fake_v1 = True

    await install_fails(hass, "answered_like_v1")
    faults.add("relay answering like v1 firmware")
    # Reading the board again (a reload reads the stored pin) is no fallback.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    coordinator = entry.runtime_data
    assert coordinator.data.protocol == 2
    assert coordinator.data.spoke_v2

    air = b"".join(relay.written)
    assert relay.written  # HELLO went out, and nothing after it
    assert all(
        line.startswith(b"OTA:HELLO") or not line.startswith(b"OTA:")
        for line in relay.written
    ), relay.written
    assert TOKEN.encode() not in air
    assert board.read("app.py") == before
    found = issue(hass, "answered_like_v1", entry)
    assert found is not None
    assert found.is_fixable


async def test_confirming_a_reflash_releases_the_pin(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    from custom_components.esp32_ota.data import StoredBoard, board_store

    write_release(
        source_folder(hass), {"app.py": app_source("1.1.0")}, {"version": "1.1.0"}
    )
    board = make_board()
    entry = await setup_board(hass, proxy, board)
    stored = StoredBoard.from_dict(await board_store(hass, entry.entry_id).async_load())
    assert stored.spoke_v2
    relay = Relay(board)
    relay.fake_v1 = True
    await install_fails(hass, "answered_like_v1")

    result = await start_fix(hass, "answered_like_v1", entry)
    assert result["step_id"] == "confirm"
    result = await fix(hass, result["flow_id"], {})
    assert result["type"].value == "create_entry"
    assert not entry.runtime_data.data.spoke_v2
    stored = StoredBoard.from_dict(await board_store(hass, entry.entry_id).async_load())
    assert not stored.spoke_v2
    # Taken for v1 now, as the user said; the next real v2 answer pins it again.
    relay.fake_v1 = False
    await install(hass)
    assert entry.runtime_data.data.spoke_v2
    assert issue(hass, "answered_like_v1", entry) is None


async def test_a_relay_pretending_to_be_v1_during_the_trial_is_no_confirmation(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy, files=ON_TRIAL)
    relay = Relay(board)

    def fake_v1() -> None:
        relay.fake_v1 = True

    pretending = hass.async_create_task(
        when_on_trial(board, entry.runtime_data, fake_v1)
    )
    await install_fails(hass, "answered_like_v1")
    await pretending
    assert board.module("boot_guard").on_trial()  # nobody confirmed it
    assert issue(hass, "answered_like_v1", entry) is not None
