"""Heap growth of the whole stack while a client streams (the benchmark's figure).

fw_memory.py measures the OTA manager's handle() alone. Here the lines go the
way they do on a board: a central writes a whole window of D lines (the
peripheral's IRQ handler queues each write as the bytes object gatts_read
returns), then poll() takes them one at a time through the manager. Read the
way fw_memory.py reads heap (at each `yield` the harness collects garbage, so
gc.mem_alloc() right after it is the live heap):

- base: live heap after READY, every module loaded and the demo app running;
- for each line: `live` = live heap minus base before poll() (the queued
  writes and what the stack keeps), `call` = heap allocated by that poll();
- peak growth = max(live + call).

The central's own memory (the lines it builds, the replies it keeps) is
client-side: lines are dropped right after their write and replies are
cleared before every reading. Not in the figure: the RX attribute buffer
(`rxbuf`, allocated once at boot; reported) and the Bluetooth stack's memory.
"""

import gc

import nus_central
from fwtest import Chunks
from nus_central import Central, StreamHeap, stream_measured

MEASURED = hasattr(gc, "mem_alloc")
PEAK_GOAL = 4 * 1024


def _heap():
    return gc.mem_alloc() if MEASURED else 0


def _preload():
    import binascii  # noqa: F401 - C modules on a board
    import json  # noqa: F401
    import os  # noqa: F401
    import time  # noqa: F401

    import bluetooth
    import machine  # noqa: F401
    import micropython  # noqa: F401

    bluetooth.BLE()


def _forget(central):
    central.notes = []
    central.lines = []


def test_mpy_stream_peak_growth():
    _preload()
    import main

    p = main.start()
    c = Central(p, mtu=247)
    info = nus_central.hello(c)
    win = info["win"]
    size = 64 * 1024
    chunk = 171  # b64 in a 244-byte write, as the client sends at MTU 247
    data = Chunks(size, chunk, 11)  # see fwtest.Chunks: no 64 KB of random words
    crc = data.crc_hex()
    got = c.ask(f"OTA:FILE:app.py:{size}:{crc}:9.0.0:b64:-:")
    assert len(got) == 1, got
    assert got[0].startswith("OTA:READY:0:"), got
    _forget(c)
    nus_central.room_for_names()
    yield
    heap = StreamHeap()
    yield from stream_measured(c, data, win, _heap, heap)
    assert heap.most_queued == win, heap.most_queued
    if not MEASURED:
        return None
    assert heap.peak <= PEAK_GOAL, heap.peak
    return {
        "stream_peak_growth_bytes": heap.peak,
        "max_live_growth_bytes": heap.live,
        "max_poll_alloc_bytes": heap.call,
        "window": win,
        "rx_attribute_buffer_bytes": p.rxbuf,
        "goal": PEAK_GOAL,
    }
