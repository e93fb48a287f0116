"""What deflated frames cost the board: heap (as .mpy) and CPU per KB.

The file is 64 KB of real source: device_firmware/*.py concatenated in name
order (repeated to the size), never text made up to compress well. A client
deflates it frame by frame as nus_ota does: each frame's input at most the
board's `max`, its window the board's `wbits`, the whole frame within a
244-byte write (MTU 247); here the runtime's own compressor makes them
(MicroPython's on MicroPython), before each window, outside the figures.

Heap, read as fw_perf_memory.py reads it (at each `yield` the harness
collects garbage): the streaming peak growth of the whole stack (max of
live heap since READY plus what one poll() allocates) while the file streams
in the board's frame window, and what stays once the file is staged and the
central is gone.

CPU on this port (its clock ticks in milliseconds, so each figure times the
whole 64 KB file, fastest of 5 runs): the decoder alone (ota_inflate, per
KB of file), decoder + CRC-32 + SHA-256, and the whole stack per frame (the
central's writes, the NUS layer, the engine, the file writes to the port's
RAM filesystem: no flash cost, see the README for the flash model).
"""

import os

from fw_deflate import deflated, zframe
from heap import expect_ready, live, measured_stream, started_stack
from nus_central import crc_hex

PEAK_GOAL = 6 * 1024  # issue 18: <= 6 KB with compression and a window >= 12
SIZE = 64 * 1024
WRITE = 244  # MTU 247


def firmware_source(size):
    """device_firmware/*.py in name order, repeated to `size` bytes."""
    import ota_core

    here = ota_core.__file__
    for d in ("/src", here[: here.rfind("/")]):  # MicroPython: a copy in /src
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(".py"))
        except OSError:
            continue
        if names:
            break
    parts = []
    for n in names:
        with open(d + "/" + n, "rb") as f:
            parts.append(f.read())
    text = b"".join(parts)
    return (text * (size // len(text) + 1))[:size]


class Deflater:
    """A client's deflated frames of `data`, the next one at any offset."""

    def __init__(self, data, offer):
        self.data = data
        self.size = len(data)
        self.wbits = offer["wbits"]
        self.most = offer["max"]
        self.guess = self.most

    def frame(self, off):
        """(the frame at `off`, the file bytes it carries)."""
        room = WRITE - 9
        n = min(self.guess, self.size - off)
        chunk = self.data[off : off + n]
        stream = deflated(chunk, self.wbits)
        while len(stream) > room:
            n = n * room // len(stream) - 4
            chunk = self.data[off : off + n]
            stream = deflated(chunk, self.wbits)
        self.guess = min(self.most, n * room // len(stream))
        return zframe(off, chunk, stream), n


def _file_line(data):
    return f"OTA:FILE:app.py:{len(data)}:{crc_hex(data)}:9.0.0:bin:-:"


def test_mpy_deflated_stream_heap():
    c, info = started_stack()
    data = firmware_source(SIZE)
    frames = Deflater(data, info["deflate"])
    expect_ready(c, _file_line(data))
    heap = yield from measured_stream(c, frames, info["fwin"], frames.frame)
    c.disconnect()
    c.p.poll()
    yield
    retained = live() - heap.base  # negative: the transfer's buffers went
    with open("app.py.new", "rb") as f:
        assert f.read() == data
    return heap.report(
        PEAK_GOAL,
        retained_after_session_bytes=retained,
        window=info["fwin"],
        wbits=info["deflate"]["wbits"],
    )


def _fastest_ms(work, runs=5):
    import time

    best = None
    for _ in range(runs):
        t0 = time.ticks_ms()
        work()
        took = time.ticks_diff(time.ticks_ms(), t0)
        best = took if best is None else min(best, took)
    return best


def test_mpy_deflated_frames_cpu():
    import time

    if not hasattr(time, "ticks_ms"):
        return None  # plain CPython without the shims: no figures
    import binascii
    import hashlib

    import ota_inflate

    c, info = started_stack()
    win = info["fwin"]
    data = firmware_source(SIZE)
    maker = Deflater(data, info["deflate"])
    frames = []
    off = 0
    while off < SIZE:
        f, n = maker.frame(off)
        frames.append(f)
        off += n
    kb = SIZE / 1024
    m = c.p.ota

    def inflate(check=False):
        ota_inflate.prepare(m, m.t)  # as FILE does
        for f in frames:
            out = ota_inflate.inflate(m, m.t, memoryview(f))
            if check:
                binascii.crc32(out)
                hashlib.sha256(out).digest()

    def stream():
        if "app.py.new" in os.listdir():
            os.remove("app.py.new")  # the last run's: start from 0 again
        expect_ready(c, _file_line(data))
        for i in range(0, len(frames), win):
            for f in frames[i : i + win]:
                c.write(f)
            c.pump()
            c.lines = c.lines[-1:]
        assert c.take() == [f"OTA:A:{SIZE}"]

    inflate_ms = _fastest_ms(inflate)
    checked_ms = _fastest_ms(lambda: inflate(True))
    stack_ms = _fastest_ms(stream)
    return {
        "frames": len(frames),
        "file_bytes_per_frame": round(SIZE / len(frames), 1),
        "inflate_us_per_kb": round(inflate_ms * 1000 / kb),
        "inflate_crc_sha256_us_per_kb": round(checked_ms * 1000 / kb),
        "whole_stack_us_per_kb": round(stack_ms * 1000 / kb),
        "whole_stack_us_per_frame": round(stack_ms * 1000 / len(frames)),
    }
