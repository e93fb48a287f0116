"""How long a virtual board's work takes: its CPU per received write, its
flash and its deflate decoder.

A `BoardSpeed` holds one board's figures: `VirtualBoard(speed=...)` takes
one, and a `LinkProfile` may bring its own to the boards it connects to
(`fast`: tests that are not about timing). The defaults are an ESP32's, as
far as they can be known without an ESP32 to time (see the figures below).
The board measures a write's size and kind with `backlog_bytes` and
`next_write_kind` before it polls the firmware, and charges
`BoardSpeed.write_cost_ms` for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .memfs import FlashSpeed

__all__ = [
    "ESP32",
    "ESP32_FLASH",
    "INFLATE_US_PER_BYTE",
    "WRITE_COST_SHARES",
    "BoardSpeed",
    "backlog_bytes",
    "next_write_kind",
]

# LittleFS on an ESP32's flash (see memfs): 16 us per byte programmed plus a
# 30 ms erase per 4096-byte block is 95.5 ms per block, about 42 KB/s
# sustained (the published esp_littlefs benchmark: five 88 KB files in
# 10.3 s); every metadata commit (flush, close, rename, remove) 5 ms.
ESP32_FLASH = FlashSpeed(
    program_us_per_byte=16.0, erase_ms_per_block=30.0, commit_ms=5.0
)

# The board's CPU per received write, by kind, relative to a base64 D line,
# which costs `line_cost_ms` + `byte_cost_us` per byte of the write (round
# 1's anchor, 1.5 ms + 2 us/B: there is no ESP32 to time). The ratios are
# the firmware's own CPU time per write on MicroPython 1.27 WebAssembly, as
# .mpy (tests/firmware/scenarios/fw_write_cost.py: the NUS IRQ copy, poll(),
# the engine, the reply; the bluetooth stand-in's time subtracted, no flash:
# the port's filesystem is RAM), fixed part and part per byte fitted by least
# squares over write sizes. Five runs: a D line 48-50 us + 27-33 us per KB,
# a v1 hex line 40-45 us + 16-38 us/KB, a plain frame 33-35 us + 4-14 us/KB,
# a deflated frame 38-40 us + 34-74 us per KB of frame + 3-24 us per KB of
# file it expands to. The per-byte parts are a few us a write, near the
# port's millisecond clock, and vary from run to run by a factor of two and
# more; the fixed ones by +-5 %. Each share is the ratio of the means of the
# five runs. A kind's fixed cost is line_cost_ms x its first share, its cost
# per byte of the write byte_cost_us x its second.
WRITE_COST_SHARES = {
    "line": (1.0, 1.0),  # a v2 D line, or any other line
    "hex": (0.87, 0.81),  # a v1 DATA line
    "frame": (0.70, 0.25),  # a binary frame
    "zframe": (0.81, 1.8),  # a deflated frame
}
# A deflated frame's cost per byte of file it expands to (the decoder's
# output, CRC-32, the file write): 0.44 of the D line's 2 us per byte, from
# the same runs; the deflate stand-in reports every decoded byte.
INFLATE_US_PER_BYTE = 0.87


@dataclass(frozen=True)
class BoardSpeed:
    """How long a board's work takes (the defaults: an ESP32's)."""

    line_cost_ms: float = 1.5
    byte_cost_us: float = 2.0
    inflate_us_per_byte: float = INFLATE_US_PER_BYTE
    flash: FlashSpeed = ESP32_FLASH

    def write_cost_ms(self, kind: str, size: int) -> float:
        """The CPU time poll() takes for `size` received bytes of `kind`
        (a key of WRITE_COST_SHARES; a deflated frame's file bytes cost on
        top, `inflate_us_per_byte` each)."""
        fixed, per_byte = WRITE_COST_SHARES[kind]
        return fixed * self.line_cost_ms + per_byte * self.byte_cost_us * size / 1000


ESP32 = BoardSpeed()


def backlog_bytes(peripheral: Any) -> int:
    """Received bytes the peripheral has not consumed yet.

    NUSPeripheral.pending_bytes(); a peripheral without it costs per line only.
    """
    pending_bytes = getattr(peripheral, "pending_bytes", None)
    return int(pending_bytes()) if callable(pending_bytes) else 0


_FRAME_MARK = 0xFF
_ZFRAME_MARK = 0xFE
_V1_DATA = b"OTA:DATA:"


def next_write_kind(peripheral: Any) -> str:
    """What the peripheral's next poll() takes: "frame", "zframe", "hex" (a v1
    DATA line) or "line", read from NUSPeripheral's RX ring (nus_rx) where it
    starts (a line begun in an earlier write: its kept part); "line" for any
    other peripheral or nothing queued."""
    try:
        rxq = peripheral.rxq
        slot = rxq.first()
        if slot < 0:
            return "line"
        at = rxq.at[slot] + peripheral._pos
        ring = rxq.buf
        if peripheral._plen:
            start = bytes(peripheral._part[: len(_V1_DATA)])
        else:
            mark = ring[at]
            if mark == _FRAME_MARK:
                return "frame"
            if mark == _ZFRAME_MARK:
                return "zframe"
            start = bytes(ring[at : at + len(_V1_DATA)])
    except (AttributeError, IndexError, TypeError):
        return "line"
    return "hex" if start == _V1_DATA else "line"
