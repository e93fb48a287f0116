"""RAM the whole stack needs: boot guard + NUS peripheral + OTA manager + demo.

Figures are read the way fw_memory.py reads them: the tests are generators,
and at each `yield` the harness collects garbage at top level, so
gc.mem_alloc() right after a `yield` is the live heap. Modules that are C on
an ESP32 (binascii, json, os, time) and the stand-ins (bluetooth, machine)
are loaded before the first figure. Not in the figure: the RX attribute
buffer, which MicroPython's bluetooth module allocates on the same heap on a
board (`rxbuf` bytes, added in `with_rx_buffer`), and the Bluetooth stack's
own memory, which lies outside the MicroPython heap.

The .py test comes first in this file: a MicroPython instance runs the tests
of a file in order, and names the firmware already interned would otherwise
make later figures look smaller.
"""

import gc

import nus_central
from nus_central import Central

MEASURED = hasattr(gc, "mem_alloc")
GOAL_PY = 24 * 1024  # firmware copied as .py source
GOAL_MPY = 18 * 1024  # firmware compiled with mpy-cross


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


def _stack_footprint(goal):
    _preload()
    yield
    before = _heap()
    import boot  # noqa: F401 - boot.py: the boot guard

    yield
    boot_py = _heap() - before
    import main

    p = main.start()
    yield
    after_boot = _heap() - before
    assert p.is_connected() is False
    # one v2 update session (staged, not applied), then the central leaves
    from ota_manager import OTAManager

    c = Central(p)
    data = b"# filler\n" * 400
    nus_central.v2_send_file(c, "app.py", data, ver="1.0.1")
    c.disconnect()
    p.poll()
    yield
    after_session = _heap() - before
    if not MEASURED:
        return None
    assert after_boot <= goal, after_boot
    return {
        "boot_py_bytes": boot_py,
        "stack_after_boot_bytes": after_boot,
        "rx_attribute_buffer_bytes": p.rxbuf,
        "after_boot_with_rx_buffer_bytes": after_boot + p.rxbuf,
        "after_one_v2_session_bytes": after_session,
        "window": p.window,
        "line_max": OTAManager.LINE_MAX,
        "goal": goal,
    }


def test_memory_stack_py():
    return (yield from _stack_footprint(GOAL_PY))


def test_mpy_memory_stack():
    return (yield from _stack_footprint(GOAL_MPY))
