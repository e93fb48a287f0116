"""Heap growth of the whole stack while a client streams (the benchmark's figure).

fw_memory.py measures the OTA manager's handle() alone. Here the lines go the
way they do on a board: a central writes a whole window of D lines (the
peripheral's IRQ handler copies each write into its RX ring, allocated at
boot), then poll() takes them one at a time through the manager. Read
with support/heap.py (`heap.measured_stream`):

- base: live heap after READY, every module loaded and the demo app running;
- for each line: `live` = live heap minus base before poll() (what the
  stack keeps), `call` = heap allocated by that poll();
- peak growth = max(live + call).

The central's own memory (the lines it builds, the replies it keeps) is
client-side: lines are dropped right after their write and replies are
cleared before every reading. Not in the figure: the RX attribute buffer
(`rxbuf`, allocated once at boot; reported) and the Bluetooth stack's memory.
"""

from fwtest import Chunks
from heap import expect_ready, measured_stream, started_stack

PEAK_GOAL = 4 * 1024


def test_mpy_stream_peak_growth():
    c, info = started_stack()
    size = 64 * 1024
    chunk = 171  # b64 in a 244-byte write, as the client sends at MTU 247
    data = Chunks(size, chunk, 11)  # see fwtest.Chunks: no 64 KB of random words
    expect_ready(c, f"OTA:FILE:app.py:{size}:{data.crc_hex()}:9.0.0:b64:-:")
    heap = yield from measured_stream(c, data, info["win"])
    return heap.report(
        PEAK_GOAL, window=info["win"], rx_attribute_buffer_bytes=c.p.rxbuf
    )
