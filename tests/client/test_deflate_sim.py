"""Deflated frames end to end: the real client, bleak, the real firmware.

Virtual boards (esp32_ota_sim) booted from device_firmware, reached through
`BleakClient(backend=SimBleakClient)` over the simulator's link profiles,
in virtual time. The files are real Python: the board's own app.py (so the
update boots) followed by the project's source as comments. Faults one by
one and resumed transfers: tests/faults/test_deflate_faults.py.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.bleak_backend import register_board
from esp32_ota_sim.board import VirtualBoard
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.content import source_comments
from esp32_ota_sim.link import PROFILES

from custom_components.esp32_ota.nus_ota import InstallOptions, probe
from custom_components.esp32_ota.nus_ota.lines import DEFLATE_MARK, FRAME_MARK

from .test_sim import connector, run_install

if TYPE_CHECKING:
    from esp32_ota_sim.link import LinkProfile, SimLink

KEY = "deflate-k3y"


def with_source(board: VirtualBoard, size: int = 20_000) -> dict[str, bytes]:
    """A new app.py that boots: the board's own, then real source as comments."""
    return {"app.py": board.read("app.py") + source_comments(size)}


def board_on(
    link: LinkProfile | str, *, config: str = "", **kw: Any
) -> tuple[VirtualBoard, Counter[int]]:
    """A booted board on `link`; the counter counts its writes by first byte."""
    board = VirtualBoard(boot=False, **kw)
    board.write("config.py", 'VERSION = "1.0.0"\n' + config)
    board.boot()
    register_board(board, link)
    firsts: Counter[int] = Counter()
    receive = board.receive

    def counting(link: SimLink, data: bytes) -> None:
        firsts[data[0]] += 1
        receive(link, data)

    board.receive = counting  # type: ignore[method-assign]
    return board, firsts


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def test_source_goes_deflated_and_arrives_exactly_on_a_keyed_board() -> None:
    """CRC-32 and the signed SHA-256 are of the file; the board checks both."""
    board, firsts = board_on("proxy", config=f'AUTH_KEY = "{KEY}"\n')
    files = with_source(board)
    result = run_install(board, files, options=InstallOptions(auth_key=KEY))
    assert board.read("app.py") == files["app.py"]
    assert result.board is not None
    installed = result.board.files["app.py"]
    assert installed is not None
    assert installed.crc == crc(files["app.py"])
    assert firsts[DEFLATE_MARK] > 0
    # Deflated frames carry far more than the 237 bytes of a plain one.
    assert firsts[DEFLATE_MARK] + firsts[FRAME_MARK] < 0.7 * len(files["app.py"]) / 237


def test_deflated_frames_through_a_jittery_wifi_proxy() -> None:
    """Jitter, latency spikes, lost writes and notifications at once.

    (Each fault alone on the deflated path: tests/faults/test_deflate_faults.py.)
    """
    # The profile loses 1 % of writes; the file is the project's source,
    # so which writes are lost moves with every change to it, and at 1 %
    # whether any data write is lost at all was chance (60 KB, about 150
    # frames, lost none once nus_rx.py was split off). At 5 % it is not.
    board, firsts = board_on(replace(PROFILES["wifi-proxy"], write_loss=0.05))
    files = with_source(board, 60_000)
    result = run_install(board, files)
    assert board.read("app.py") == files["app.py"]
    assert firsts[DEFLATE_MARK] > firsts[FRAME_MARK]
    assert result.retries > 0


def test_a_board_without_deflate_gets_plain_frames() -> None:
    """MicroPython before 1.21 has no `deflate`: HELLO offers none."""
    board, firsts = board_on("proxy", has_deflate=False)
    info = run_virtual(probe(connector(board)))
    assert info is not None
    assert "bin" in info.encodings
    assert info.deflate is None
    files = with_source(board)
    run_install(board, files)
    assert board.read("app.py") == files["app.py"]
    assert firsts[DEFLATE_MARK] == 0
    assert firsts[FRAME_MARK] > len(files["app.py"]) / 237


@pytest.mark.parametrize(
    ("options", "mark"),
    [
        pytest.param(InstallOptions(compress=False), FRAME_MARK, id="no-compress"),
        pytest.param(InstallOptions(encoding="b64"), ord("O"), id="base64-lines"),
    ],
)
def test_compression_off_or_lines_send_what_they_did(
    options: InstallOptions, mark: int
) -> None:
    board, firsts = board_on("proxy")
    files = with_source(board)
    run_install(board, files, options=options)
    assert board.read("app.py") == files["app.py"]
    assert firsts[DEFLATE_MARK] == 0
    assert firsts[mark] > len(files["app.py"]) / 244
