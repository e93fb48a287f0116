"""RAM used by the OTA manager on MicroPython, with the firmware as .mpy.

Read with support/heap.py: at each `yield` the harness collects garbage, so
heap.live() read right after a `yield` is the live heap.

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
On CPython (no gc.mem_alloc) the same steps run without figures, which still
checks that the lazy modules stay unloaded and the transfer completes.
"""

import sys

from fwtest import Chunks, Recorder, b64
from heap import intern_data_chars, live, preload, report, resident_manager

RESIDENT_GOAL = 6 * 1024
PEAK_GOAL = 4 * 1024


def test_mpy_resident_footprint():
    m, resident = yield from resident_manager()
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
    return report(RESIDENT_GOAL, "resident_bytes", resident)


def test_mpy_transfer_peak_growth():
    preload()
    import ota_manager

    size = 64 * 1024
    chunk = 180
    data = Chunks(size, chunk, 7)
    crc = data.crc_hex()
    out = Recorder()
    m = ota_manager.OTAManager(out)
    intern_data_chars()
    yield
    idle = live()
    m.handle("OTA:HELLO")
    file_line = f"OTA:FILE:main.py:{size}:{crc}:1.2.0:b64:-:"
    m.handle(file_line)
    assert out.last().startswith("OTA:READY:0:"), out.lines
    file_line = None
    out.take()
    yield
    base = live()
    setup = base - idle  # HELLO and FILE load ota_hello, ota_setup, ota_auth, ota_state
    peak = 0
    worst_call = 0
    worst_live = 0
    for off in range(0, size, chunk):
        out.take()  # the replies are the transport's
        yield
        grown = live() - base
        line = f"OTA:D:{off}:{b64(data.read())}"
        yield
        a = live()
        m.handle(line)
        call = live() - a
        line = None
        peak = max(peak, grown + call)
        worst_call = max(worst_call, call)
        worst_live = max(worst_live, grown)
    assert out.last() == f"OTA:A:{size}", out.lines
    yield
    after = live() - base
    return report(
        PEAK_GOAL,
        "peak_growth_bytes",
        peak,
        max_call_alloc_bytes=worst_call,
        max_live_growth_bytes=worst_live,
        growth_after_bytes=after,
        hello_file_modules_bytes=setup,
    )
