"""Heap growth of the whole stack while a client streams binary data frames.

The figure of fw_perf_memory.py (read the same way) for `bin` transfers in
the board's frame window (HELLO `fwin`). Its own module, so it runs in a
MicroPython of its own: the line stream's board would still hold its heap.
"""

import nus_central
from fw_perf_memory import MEASURED, _forget, _heap, _preload
from fwtest import Chunks
from nus_central import Central, StreamHeap, stream_measured

FRAME_PEAK_GOAL = 6 * 1024  # issue 18: <= 6 KB with a window of 12 or more


def test_mpy_stream_peak_growth_binary_frames():
    """Frames of 237 bytes (a 244-byte write) in the board's frame window."""
    _preload()
    import main

    p = main.start()
    c = Central(p, mtu=247)
    info = nus_central.hello(c)
    win = info["fwin"]
    size = 64 * 1024
    data = Chunks(size, 237, 11)
    got = c.ask(f"OTA:FILE:app.py:{size}:{data.crc_hex()}:9.0.0:bin:-:")
    assert len(got) == 1, got
    assert got[0].startswith("OTA:READY:0:"), got
    _forget(c)
    yield
    heap = StreamHeap()
    yield from stream_measured(c, data, win, _heap, heap, frames=True)
    assert heap.most_queued == win, heap.most_queued
    if not MEASURED:
        return None
    assert heap.peak <= FRAME_PEAK_GOAL, heap.peak
    return {
        "stream_peak_growth_bytes": heap.peak,
        "max_live_growth_bytes": heap.live,
        "max_poll_alloc_bytes": heap.call,
        "window": win,
        "goal": FRAME_PEAK_GOAL,
    }
