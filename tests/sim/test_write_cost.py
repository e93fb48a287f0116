"""A virtual board charges each kind of write its measured share of a D line.

speed.py: a base64 D line costs line_cost_ms + byte_cost_us per byte; a v1
hex line, a plain and a deflated frame their WRITE_COST_SHARES of these,
which tests/firmware/scenarios/fw_write_cost.py measured on MicroPython.
Flash and decoder costs are off here, so the time from a write to its reply
is the write's CPU cost alone.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

import pytest
from esp32_ota_sim.board import FIRMWARE_DIR, VirtualBoard
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.memfs import FlashSpeed
from esp32_ota_sim.speed import WRITE_COST_SHARES, BoardSpeed

from custom_components.esp32_ota.nus_ota.lines import data_frame

from .test_board import Central, connect, deflated_frame, send

if TYPE_CHECKING:
    from collections.abc import Callable

LINE_MS = 1.0
BYTE_US = 10.0  # large, so that the fixed and the per-byte part both show
SOURCE = (FIRMWARE_DIR / "ota_data.py").read_bytes()


def _reply_after(setup: str, write: bytes) -> tuple[float, bytes]:
    """(ms from `write` to its reply, the reply) on a board in a transfer."""

    async def scenario() -> tuple[float, bytes]:
        speed = BoardSpeed(
            line_cost_ms=LINE_MS,
            byte_cost_us=BYTE_US,
            inflate_us_per_byte=0.0,
            flash=FlashSpeed(),
        )
        board = VirtualBoard(speed=speed)
        central = Central()
        connect(board, central)
        send(board, central, setup.encode() + b"\n")
        await asyncio.sleep(0.5)
        assert central.lines()[-1].startswith(b"OTA:READY"), central.lines()
        loop = asyncio.get_running_loop()
        start = loop.time()
        send(board, central, write)
        await asyncio.sleep(0.5)
        return (central.notified[-1][0] - start) * 1000, central.lines()[-1]

    return run_virtual(scenario())


def _file(enc: str) -> str:
    return f"OTA:FILE:app.py:4096:00000000:9.0.0:{enc}:-:"


def _d_line() -> tuple[str, bytes, bytes]:
    payload = base64.b64encode(SOURCE[:120])
    return _file("b64"), b"OTA:D:0:" + payload + b"\n", b"OTA:A:120"


def _hex_line() -> tuple[str, bytes, bytes]:
    start = "OTA:START:app.py:4096:00000000:9.0.0:128"
    return start, b"OTA:DATA:0:" + SOURCE[:78].hex().encode() + b"\n", b"OTA:ACK:0"


def _frame() -> tuple[str, bytes, bytes]:
    payload = SOURCE[:162]
    return _file("bin"), data_frame(0, payload), b"OTA:A:%d" % len(payload)


def _zframe() -> tuple[str, bytes, bytes]:
    """A deflated frame of 300 bytes of real source."""
    return _file("bin"), deflated_frame(0, SOURCE[:300]), b"OTA:A:300"


def _expected_ms(fixed: float, per_byte: float, size: int) -> float:
    return fixed * LINE_MS + per_byte * BYTE_US * size / 1000


def test_a_d_line_costs_the_anchor() -> None:
    setup, write, reply = _d_line()
    ms, got = _reply_after(setup, write)
    assert got == reply
    assert ms == pytest.approx(_expected_ms(1.0, 1.0, len(write)))


@pytest.mark.parametrize(
    ("make", "fixed", "per_byte"),
    [
        (_hex_line, *WRITE_COST_SHARES["hex"]),
        (_frame, *WRITE_COST_SHARES["frame"]),
    ],
    ids=["v1 hex line", "plain frame"],
)
def test_other_writes_cost_their_share_of_a_d_line(
    make: Callable[[], tuple[str, bytes, bytes]], fixed: float, per_byte: float
) -> None:
    setup, write, reply = make()
    ms, got = _reply_after(setup, write)
    assert got == reply
    assert ms == pytest.approx(_expected_ms(fixed, per_byte, len(write)))
    # measured: both take less than a base64 line of the same length
    assert ms < _expected_ms(1.0, 1.0, len(write))


def test_a_deflated_frame_costs_its_share_by_its_own_length() -> None:
    setup, write, reply = _zframe()
    ms, got = _reply_after(setup, write)
    assert got == reply
    assert ms == pytest.approx(_expected_ms(*WRITE_COST_SHARES["zframe"], len(write)))
