"""Heap of the RX ring: a whole frame window of the longest frames streams in.

Read with support/heap.py, as fw_perf_memory.py reads it. The client writes
`fwin` frames of `fmax` bytes (MTU 517, 249 file bytes a frame), the most
the board lets be in flight at once, while a 64 KB file streams in. The ring
that queues them is allocated at boot, so the streaming growth is what
poll() and the engine allocate; the ring itself is reported, and
fw_demo_memory.py counts it in the stack after boot.

Budget (issue 18): streaming peak growth <= 6 KB with a window of 12 or
more; fw_deflate_cost.py holds deflated frames to the same goal.
"""

from fwtest import Chunks
from heap import expect_ready, measured_stream, started_stack

PEAK_GOAL = 6 * 1024


def _stream(central, name, size, win, fmax):
    """Generator: FILE `name` (bin), then stream it in windows of `win`
    frames of `fmax` bytes; its StreamHeap."""
    data = Chunks(size, fmax - 7, 13)
    expect_ready(central, f"OTA:FILE:{name}:{size}:{data.crc_hex()}:9.0.0:bin:-:")
    return (yield from measured_stream(central, data, win, frames=True))


def test_mpy_stream_peak_growth_full_window_of_longest_frames():
    c, info = started_stack(mtu=517)
    win = info["fwin"]
    fmax = info["fmax"]
    assert win >= 12, win
    one = yield from _stream(c, "main.py", 16 * 1024, 1, fmax)
    heap = yield from _stream(c, "app.py", 64 * 1024, win, fmax)
    assert c.p.dropped == 0
    # Queued writes wait in the ring: a whole window costs no more heap
    # than one frame at a time (up to the collector's noise).
    assert heap.peak - one.peak < 2 * fmax, (heap.peak, one.peak)
    return heap.report(
        PEAK_GOAL,
        stream_peak_growth_window_1_bytes=one.peak,
        window=win,
        frame_bytes=fmax,
        rx_ring_bytes=c.p.rxring,
        rx_attribute_buffer_bytes=c.p.rxbuf,
    )
