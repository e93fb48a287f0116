"""Heap figures of the firmware on MicroPython (MicroPython-compatible).

The memory scenarios are generators: at each `yield` the harness collects
garbage at top level (inside one call the WebAssembly port's collector frees
nothing, see mp_runner.mjs), so live() read right after a `yield` is the live
heap. On CPython (no gc.mem_alloc) the same steps run without figures.

A figure must depend on the firmware alone, not on what the tests loaded
before it, so what is not measured happens before the first reading:

- preload(): the modules that are C on an ESP32 (binascii, hashlib, json, os,
  time) and the stand-ins (bluetooth, machine, micropython).
- new_name_pool(), before a figure that loads firmware modules: room for
  the names they intern.
- intern_data_chars(): MicroPython interns, for good, a one-character str
  taken by index (the data path's `line[-1] == "="`); a stream of base64 or
  hex lines meets each of these characters once. Interned inside a measured
  stream they add their bytes, and when MicroPython's name (qstr) pool is
  full, a new pool (4.5 KB, kept for good) wherever that boundary falls,
  which depends on how many names everything loaded before had interned.

Import this module (it imports nus_central) before any firmware module.
"""

import gc

import nus_central
from nus_central import Central, b64

MEASURED = hasattr(gc, "mem_alloc")
# less than the smallest name pool a test can start (2.2 KB), more
# than a string chunk (128 B) or anything else interning a name allocates
_POOL_MIN = 1024

# every character of a base64 or hex data line, digits and ':' included
_DATA_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=:"


def live():
    """The live heap, when read right after a `yield` (0 on CPython)."""
    return gc.mem_alloc() if MEASURED else 0


def preload():
    """Load what is C on an ESP32 and the stand-ins, before any figure."""
    import binascii  # noqa: F401 - the C one: nus_central switched to it
    import hashlib  # noqa: F401
    import json  # noqa: F401
    import os  # noqa: F401
    import time  # noqa: F401

    import bluetooth
    import machine  # noqa: F401
    import micropython  # noqa: F401

    bluetooth.BLE()


def new_name_pool():
    """Start a new MicroPython name (qstr) pool now, before the baseline.

    Every name a module interns (and every identifier of an .mpy) goes into
    the current pool; when it is full, MicroPython allocates the next one,
    twice as large (2.2 KB, 4.5 KB, 9 KB...) and kept for good. Where that
    happens depends on how many names everything loaded before had interned,
    test modules included, so the figures leave it out: names are interned
    here until one allocates a pool, which leaves the new pool all but empty.
    Each call doubles the pool: once per MicroPython instance is plenty.
    """
    if not MEASURED:
        return
    i = 0
    while True:
        name = f"pool_filler_{i}"
        a = gc.mem_alloc()
        getattr(new_name_pool, name, None)  # interns `name`
        if gc.mem_alloc() - a > _POOL_MIN:
            return
        i += 1


def intern_data_chars():
    """Intern the one-character names a data line can make (see above)."""
    for i in range(len(_DATA_CHARS)):
        _DATA_CHARS[i]  # indexing a str interns the character


def report(goal, name, value, **more):
    """A test's figures: `name` = `value`, which must be at most `goal`, and
    `more`; None on CPython, which measures nothing."""
    if not MEASURED:
        return None
    assert value <= goal, (name, value)
    more[name] = value
    more["goal"] = goal
    return more


def resident_manager(key=None):
    """Generator: `import ota_manager` and one OTAManager (with `key`, a
    board with a key); returns (manager, live heap they keep)."""
    preload()
    new_name_pool()
    yield
    before = live()
    import ota_manager

    if key:
        ota_manager.OTAManager.AUTH_KEY = key
    m = ota_manager.OTAManager(print)
    yield
    return m, live() - before


def started_stack(mtu=247):
    """The whole stack as main.py starts it, with C modules loaded first, and
    a central at MTU 247 (244-byte writes) that said HELLO: (central, caps)."""
    preload()
    import main

    c = Central(main.start(), mtu=mtu)
    return c, nus_central.hello(c)


def expect_ready(central, file_line):
    """Send a FILE line; the board must answer READY at offset 0."""
    got = central.ask(file_line)
    assert len(got) == 1, got
    assert got[0].startswith("OTA:READY:0:"), got


class StreamHeap:
    """Heap figures of a measured stream (see stream_measured)."""

    def __init__(self):
        self.base = 0  # live heap after READY, before the stream
        self.peak = 0  # max of live + call: the stack's streaming peak growth
        self.live = 0  # most heap kept since READY, before a poll()
        self.call = 0  # most heap one poll() allocated, garbage included
        self.most_queued = 0  # most writes waiting in the peripheral's queue

    def report(self, goal, **more):
        """The figures (None on CPython); the peak must meet `goal`."""
        more["max_live_growth_bytes"] = self.live
        more["max_poll_alloc_bytes"] = self.call
        return report(goal, "stream_peak_growth_bytes", self.peak, **more)


def measured_stream(central, data, win, frames=False):
    """Generator: from READY, stream `data` (fwtest.Chunks) in windows of
    `win` D lines (or binary frames, with `frames`; or the frames
    `frames(off)` makes, (frame, file bytes it carries), of a file of
    `data.size` bytes); returns a StreamHeap.

    As on a board: the central writes a whole window, then the peripheral's
    poll() takes the writes one at a time; for every poll(), `live` = live
    heap minus the base before it, `call` = heap that poll() allocated. The
    central's own lines and replies are dropped before every reading: they
    are client-side memory. Use with `yield from`.
    """
    central.take()
    central.notes = []
    intern_data_chars()
    yield
    figures = StreamHeap()
    p = central.p
    size = data.size
    figures.base = base = live()
    off = 0
    last = ""
    while off < size:
        sent = off
        for _ in range(win):
            if sent >= size:
                break
            if callable(frames):
                write, step = frames(sent)
            else:
                step = data.chunk
                if frames:
                    write = nus_central.frame(sent, data.read())
                else:
                    write = f"OTA:D:{sent}:{b64(data.read())}\n"
            central.write(write)
            sent += step
        write = None  # client-side memory
        figures.most_queued = max(figures.most_queued, p.pending())
        while True:
            yield
            grown = live() - base
            a = live()
            took = p.poll()
            call = live() - a
            if not took:
                break
            figures.peak = max(figures.peak, grown + call)
            figures.live = max(figures.live, grown)
            figures.call = max(figures.call, call)
            if central.lines:
                last = central.lines[-1]
            central.notes = []
            central.lines = []
        assert last.startswith("OTA:A:"), last
        off = int(last.split(":")[2])
        assert off == min(sent, size), (off, sent)  # pieces stay in step
    assert last == f"OTA:A:{size}", last
    assert figures.most_queued == win, figures.most_queued
    return figures
