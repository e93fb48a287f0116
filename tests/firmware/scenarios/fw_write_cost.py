"""What one received write costs the board's CPU, by kind: fixed + per byte.

The whole stack as main.py starts it (as .mpy on MicroPython): the central's
write (the `bluetooth` stand-in's IRQ, which copies it into the NUS ring),
poll() (line reassembly or frame split), the OTA engine (decode, CRC-32, the
file write to the port's RAM filesystem: no flash cost, the simulator models
flash on its own) and the reply notification. Four kinds of write, one line
or one frame per write, at several sizes:

- `d`: a v2 base64 line, OTA:D:<offset>:<b64>
- `hex`: a v1 hex line, OTA:DATA:<seq>:<hex>
- `frame`: a plain binary frame, 0xFF | u16 | u32 | payload
- `zframe`: a deflated frame, 0xFE | u16 | u32 | u16 | raw deflate, of real
  source (device_firmware/*.py; frames as full as a client makes them, up
  to a cap) and of incompressible bytes, so that what a byte of the write
  and what a byte of file costs can be told apart.

Each point is the fastest of RUNS runs of WRITES writes (this port's clock
ticks in milliseconds: a run takes 50-70 ms), sent a window at a time as a
client does; garbage is collected before each run (a `yield`), not inside
it unless the run's own allocations fill the heap. The same writes through
the stand-in alone (`stand_in`) are what the radio's C code does on a board:
subtracted from every kind. A least-squares fit over the sizes splits each
kind into microseconds per write (fixed) and per byte of the write (zframe:
also per byte of file it expands to). The virtual board's per-kind costs
(scripts/esp32_ota_sim/speed.py, WRITE_COST_SHARES) were taken from the
ratios to the base64 line; this scenario reports the figures again, it
does not check them (they vary with the machine's load).
"""

import os

from fw_deflate import deflated, zframe
from fw_deflate_cost import Deflater, firmware_source
from fwtest import blob, hexs
from heap import started_stack
from nus_central import b64, frame

WRITES = 1000
RUNS = 5
UNSENT = 1  # the announced file is one byte longer: no run completes it


def _setup_line(kind, size):
    if kind == "hex":
        return f"OTA:START:app.py:{size}:00000000:9.0.0:128"
    enc = "b64" if kind == "d" else "bin"
    return f"OTA:FILE:app.py:{size}:00000000:9.0.0:{enc}:-:"


_random = []


def _random_bytes(size):
    """`size` incompressible bytes: 16 KB of them, made once, repeated (a
    write holds far fewer, and each frame is deflated on its own)."""
    if not _random:
        _random.append(blob(16 * 1024, 7))
    part = _random[0]
    return (part * (size // len(part) + 1))[:size]


def _writes(kind, n, data=None):
    """WRITES writes of `kind` carrying n file bytes each (deflated source: up
    to n, each frame as full as a client makes it); (writes, mean bytes per
    write, mean file bytes per write, file bytes in all)."""
    source = data == "source"
    if source:
        data = firmware_source(WRITES * min(n, 400))
    elif data is None:
        data = _random_bytes(WRITES * n)
    deflater = Deflater(data, {"wbits": 9, "max": n})
    out = []
    wire = 0
    off = 0
    for i in range(WRITES):
        chunk = data[off : off + n]
        if kind == "d":
            w = f"OTA:D:{off}:{b64(chunk)}\n".encode()
        elif kind == "hex":
            w = f"OTA:DATA:{i}:{hexs(chunk)}\n".encode()
        elif kind in ("frame", "stand_in"):
            w = frame(off, chunk)
        elif source:
            assert off < len(data)
            w, step = deflater.frame(off)
            chunk = data[off : off + step]
        else:  # random bytes: as many as fit
            w = zframe(off, chunk, deflated(chunk))
        assert len(w) <= 244, (kind, n, len(w))  # one write at MTU 247
        wire += len(w)
        off += len(chunk)
        out.append(w)
    return out, wire / WRITES, off / WRITES, off


def _last_reply(kind, total):
    if kind == "hex":
        return b"OTA:ACK:%d\n" % (WRITES - 1)
    return b"OTA:A:%d\n" % total


def _stand_in_run(c, writes):
    """Generator: what the `bluetooth` stand-in alone takes for `writes`, in ms.

    On a board the radio's side is C (NimBLE, gatts_read, gatts_notify); here
    it is Python. This run has the stand-in take every write and send one
    reply for it, with an IRQ handler that only reads the write, so the
    firmware's share is each kind's time minus this."""
    import time

    ble = c.ble
    rx = c.p._rx
    tx = c.p._tx
    reply = b"OTA:A:12345\n"

    def irq(event, data):
        ble.gatts_read(rx)

    ble.on_notify = lambda conn, handle, data: None
    ble.irq(irq)
    yield
    t0 = time.ticks_ms()
    for w in writes:
        ble.central_write(c.conn, w)
        ble.gatts_notify(c.conn, tx, reply)
    took = time.ticks_diff(time.ticks_ms(), t0)
    ble.irq(c.p._irq)
    ble.on_notify = c._on_notify
    return took


def _timed_run(c, kind, writes, total, win):
    """Generator: one run of `writes` from a new transfer, in ms."""
    import time

    if kind == "stand_in":
        return (yield from _stand_in_run(c, writes))
    p = c.p
    last = [b""]

    def note(conn, handle, data):
        last[0] = data

    c.take()
    c.ask("OTA:ABORT")  # the last run's transfer and staged file go
    c.ask("OTA:HELLO")
    got = c.ask(_setup_line(kind, total + UNSENT))
    assert got, got
    assert got[0].startswith("OTA:READY"), got
    c.ble.on_notify = note  # the central's own line joining is not timed
    yield
    t0 = time.ticks_ms()
    for i in range(0, WRITES, win):
        for j in range(i, min(i + win, WRITES)):
            c.write(writes[j])
        while p.poll():
            pass
    took = time.ticks_diff(time.ticks_ms(), t0)
    c.ble.on_notify = c._on_notify
    assert last[0] == _last_reply(kind, total), last[0]
    return took


def _solve(a, b):
    """x with a x = b (a small square system, Gaussian elimination)."""
    k = len(b)
    m = []
    for i in range(k):
        row = list(a[i])
        row.append(b[i])
        m.append(row)
    for col in range(k):
        piv = max(range(col, k), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        for r in range(k):
            if r != col:
                f = m[r][col] / m[col][col]
                for cc in range(col, k + 1):
                    m[r][cc] -= f * m[col][cc]
    return [m[i][k] / m[i][i] for i in range(k)]


def fit(points):
    """Least squares: coefficients x of y = x . features for (features, y)."""
    k = len(points[0][0])
    a = [[sum(f[i] * f[j] for f, _ in points) for j in range(k)] for i in range(k)]
    b = [sum(f[i] * y for f, y in points) for i in range(k)]
    return _solve(a, b)


def _worst_miss(points, x):
    """The largest relative miss of the fit at any point."""
    k = len(x)
    return max(abs(sum(f[i] * x[i] for i in range(k)) - y) / y for f, y in points)


SIZES = {
    "stand_in": (32, 237),
    "d": (24, 60, 96, 132, 171),
    "hex": (16, 40, 64, 88, 112),
    "frame": (32, 80, 128, 176, 237),
}
# deflated source: at most this many file bytes per frame, each frame as
# full as a client makes it (1024: the board's limit, 380 on average)
SOURCE_SIZES = (60, 150, 300, 1024)
RANDOM_SIZES = (60, 130, 200)


def _points():
    """(kind, file bytes per write, content or None for random bytes)."""
    for kind, sizes in SIZES.items():
        for n in sizes:
            yield kind, n, None
    for n in SOURCE_SIZES:
        yield "zframe", n, "source"
    for n in RANDOM_SIZES:
        yield "zframe", n, None


def test_mpy_cpu_per_write():
    import sys

    c, info = started_stack()
    points = list(_points())
    best = [None] * len(points)
    wire = [0] * len(points)  # mean bytes per write
    file = [0] * len(points)  # mean file bytes per write
    # Round 0 warms the port up (its WebAssembly is compiled again, faster,
    # once it has run a while) and is not counted; the rounds go through
    # every point in turn, so a slow spell of the shared machine hits
    # one run of several points, not every run of one; every other round in
    # reverse, because the first run of a kind after another kind can be
    # slower (by up to a third, at the first deflated point).
    order = list(range(len(points)))
    measuring = sys.implementation.name == "micropython"
    # CPython: the same writes and replies once; its times say nothing
    for round_ in range(RUNS + 1 if measuring else 1):
        for i in order if round_ % 2 else reversed(order):
            kind, n, data = points[i]
            win = info["fwin"] if kind in ("frame", "zframe") else info["win"]
            writes, wire[i], file[i], total = _writes(kind, n, data)
            ms = yield from _timed_run(c, kind, writes, total, win)
            writes = None
            if round_ and (best[i] is None or ms < best[i]):
                best[i] = ms
    if "app.py.new" in os.listdir():
        os.remove("app.py.new")
    if not measuring:
        return None
    measured = {}  # kind: [(features, us per write)]
    for i, (kind, _, _) in enumerate(points):
        features = [1, wire[i], file[i]] if kind == "zframe" else [1, wire[i]]
        ms = best[i]
        measured.setdefault(kind, []).append((features, ms * 1000 / WRITES))
    return _figures(measured)


def _figures(measured):
    """Fits of every kind, the firmware's share (minus the stand-in's), and
    their ratios to the base64 line's."""
    figures = {}
    fits = {}
    base = fit(measured.pop("stand_in"))
    figures["stand_in"] = {
        "fixed_us": round(base[0], 1),
        "us_per_kb": round(base[1] * 1024),
    }
    for kind, points in measured.items():
        x = fit(points)
        fw = fits[kind] = list(x)
        fw[0] -= base[0]
        fw[1] -= base[1]
        f = figures[kind] = {"fixed_us": round(fw[0], 1)}
        if kind == "zframe":
            f["us_per_wire_kb"] = round(fw[1] * 1024)
            f["us_per_file_kb"] = round(fw[2] * 1024)
        else:
            f["us_per_kb"] = round(fw[1] * 1024)
        f["worst_miss"] = round(_worst_miss(points, x), 3)
        f["points_us"] = [[round(v) for v in p[1:]] + [round(y, 1)] for p, y in points]
    d = fits["d"]
    z = fits["zframe"]
    figures["relative_to_d_line"] = {
        "hex_fixed": round(fits["hex"][0] / d[0], 3),
        "hex_per_byte": round(fits["hex"][1] / d[1], 3),
        "frame_fixed": round(fits["frame"][0] / d[0], 3),
        "frame_per_byte": round(fits["frame"][1] / d[1], 3),
        "zframe_fixed": round(z[0] / d[0], 3),
        "zframe_per_wire_byte": round(z[1] / d[1], 3),
        "zframe_per_file_byte": round(z[2] / d[1], 3),
    }
    # No bound on these figures: they are times on a shared machine, and a
    # test never fails on the clock. What they are used for is in speed.py.
    return figures
