"""RAM the whole stack needs: boot guard + NUS peripheral + OTA manager + demo.

Figures are read with support/heap.py, as fw_memory.py reads them: modules
that are C on an ESP32 (binascii, hashlib, json, os, time) and the stand-ins
(bluetooth, machine) are loaded before the first figure. The peripheral's
RX ring is in the figure; the RX attribute buffer, which MicroPython's
bluetooth module allocates on the same heap on a board (`rxbuf` bytes), is
added in `after_boot_with_rx_buffer`, the figure held to the goal. Not in
it: the Bluetooth stack's own memory, outside the MicroPython heap.

The .py test comes first in this file: a MicroPython instance runs the tests
of a file in order, and names the firmware already interned would otherwise
make later figures look smaller.
"""

import nus_central
from heap import live, new_name_pool, preload, report
from nus_central import Central

# After boot with the RX attribute buffer: all the memory a write passes
# through is there from boot on (the RX ring, 4 KB, and the 1 KB buffer),
# so streaming a window of frames allocates none of it.
GOAL_PY = 28 * 1024  # firmware copied as .py source
GOAL_MPY = 22 * 1024  # firmware compiled with mpy-cross


def _stack_footprint(goal):
    preload()
    new_name_pool()
    yield
    before = live()
    import boot  # noqa: F401 - boot.py: the boot guard

    yield
    boot_py = live() - before
    import main

    p = main.start()
    yield
    after_boot = live() - before
    assert p.is_connected() is False
    # one v2 update session (staged, not applied), then the central leaves
    from ota_manager import OTAManager

    c = Central(p)
    data = b"# filler\n" * 400
    nus_central.v2_send_file(c, "app.py", data, ver="1.0.1")
    c.disconnect()
    p.poll()
    yield
    after_session = live() - before
    return report(
        goal,
        "after_boot_with_rx_buffer_bytes",
        after_boot + p.rxbuf,
        stack_after_boot_bytes=after_boot,
        boot_py_bytes=boot_py,
        rx_attribute_buffer_bytes=p.rxbuf,
        rx_ring_bytes=p.rxring,
        after_one_v2_session_bytes=after_session,
        window=p.window,
        line_max=OTAManager.LINE_MAX,
    )


def test_memory_stack_py():
    return (yield from _stack_footprint(GOAL_PY))


def test_mpy_memory_stack():
    return (yield from _stack_footprint(GOAL_MPY))
