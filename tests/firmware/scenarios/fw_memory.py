"""RAM used by the OTA manager on MicroPython, with the firmware as .mpy.

The tests are generators: at each `yield` the harness runs gc.collect() at
top level (the WebAssembly port frees nothing inside a call), so
gc.mem_alloc() read right after a `yield` is the live heap.

- resident: live heap after importing ota_manager and creating one
  OTAManager, minus the live heap before.
- transfer: a 64 KB file in base64 D lines of 180 bytes (244-byte lines, for
  an MTU of 256), made chunk by chunk (fwtest.Chunks). For every line:
  `live` = live heap minus the live heap after READY (what the manager has
  kept so far); then
  the line is built, collected, and handle() runs; `call` = heap allocated by
  that handle() call, garbage included. Peak growth = max(live + call): the
  most heap the data phase needs on top of the manager after READY. The line
  itself belongs to the transport and is not counted. Also reported: what
  HELLO and FILE leave loaded (the lazily imported modules), for information.
Modules that are C builtins on an ESP32 but Python files on the WebAssembly
port (binascii, os, time) are imported before the first figure, and
binascii is the C one (`fwtest.use_builtin_binascii`).
On CPython (no gc.mem_alloc) the same steps run without figures, which still
checks that the lazy modules stay unloaded and the transfer completes.
"""

import gc
import sys

from fwtest import Chunks, b64, use_builtin_binascii

RESIDENT_GOAL = 6 * 1024
PEAK_GOAL = 4 * 1024


def _preload():
    use_builtin_binascii()
    import binascii  # noqa: F401
    import json  # noqa: F401
    import os  # noqa: F401
    import time  # noqa: F401

    import machine  # noqa: F401
    import micropython  # noqa: F401


MEASURED = hasattr(gc, "mem_alloc")


def _heap():
    return gc.mem_alloc() if MEASURED else 0


class _Count:
    def __init__(self):
        self.n = 0
        self.last = None

    def __call__(self, line):
        self.n += 1
        self.last = line


def test_mpy_resident_footprint():
    _preload()
    yield
    before = _heap()
    import ota_manager

    m = ota_manager.OTAManager(_Count())
    yield
    retained = _heap() - before
    assert m.state == m.IDLE
    for lazy in (
        "ota_setup",
        "ota_data",
        "ota_state",
        "ota_hello",
        "ota_commit",
        "ota_auth",
    ):
        assert lazy not in sys.modules, lazy
    if not MEASURED:
        return None
    assert retained <= RESIDENT_GOAL, retained
    return {"resident_bytes": retained, "goal": RESIDENT_GOAL}


def test_mpy_transfer_peak_growth():
    _preload()
    import ota_manager

    size = 64 * 1024
    chunk = 180
    data = Chunks(size, chunk, 7)
    crc = data.crc_hex()
    out = _Count()
    m = ota_manager.OTAManager(out)
    yield
    idle = _heap()
    m.handle("OTA:HELLO")
    file_line = f"OTA:FILE:main.py:{size}:{crc}:1.2.0:b64:-:"
    m.handle(file_line)
    assert out.last.startswith("OTA:READY:0:"), out.last
    file_line = None
    yield
    base = _heap()
    setup = base - idle  # HELLO and FILE load ota_hello, ota_setup, ota_auth, ota_state
    peak = 0
    worst_call = 0
    worst_live = 0
    for off in range(0, size, chunk):
        yield
        live = _heap() - base
        line = f"OTA:D:{off}:{b64(data.read())}"
        yield
        a = _heap()
        m.handle(line)
        call = _heap() - a
        line = None
        peak = max(peak, live + call)
        worst_call = max(worst_call, call)
        worst_live = max(worst_live, live)
    assert out.last == f"OTA:A:{size}", out.last
    yield
    after = _heap() - base
    if not MEASURED:
        return None
    assert peak <= PEAK_GOAL, peak
    return {
        "peak_growth_bytes": peak,
        "max_call_alloc_bytes": worst_call,
        "max_live_growth_bytes": worst_live,
        "growth_after_bytes": after,
        "hello_file_modules_bytes": setup,
        "goal": PEAK_GOAL,
    }
