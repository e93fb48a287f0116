"""Heap growth of the whole stack while a client streams binary data frames.

The figure of fw_perf_memory.py (read the same way) for `bin` transfers in
the board's frame window (HELLO `fwin`). Its own module, so it runs in a
MicroPython of its own: the line stream's board would still hold its heap.
"""

from fwtest import Chunks
from heap import expect_ready, measured_stream, started_stack

FRAME_PEAK_GOAL = 6 * 1024  # issue 18: <= 6 KB with a window of 12 or more


def test_mpy_stream_peak_growth_binary_frames():
    """Frames of 237 bytes (a 244-byte write) in the board's frame window."""
    c, info = started_stack()
    size = 64 * 1024
    data = Chunks(size, 237, 11)
    expect_ready(c, f"OTA:FILE:app.py:{size}:{data.crc_hex()}:9.0.0:bin:-:")
    heap = yield from measured_stream(c, data, info["fwin"], frames=True)
    return heap.report(FRAME_PEAK_GOAL, window=info["fwin"])
