"""The peripheral's RX ring: writes queued in preallocated bytes, not objects.

The IRQ copies every write into one ring allocated at boot (one piece per
write) and notes it in a slot; poll() reads lines and frames in the ring.
These check what the ring adds to the queue's rules: it is full by bytes as
well as by slots, it wraps around, HELLO announces what it holds, a write
that does not fit is one clear drop, and nothing of a gone link survives.
"""

import bluetooth
import nus_central
from fw_frames import CHUNK, DATA, at, ready, send_rest, staged
from fwtest import Recorder
from nus_central import Central, frame
from nus_peripheral import NUSPeripheral
from ota_manager import OTAManager

SMALL = 1024  # the smallest ring: one line of LINE_MAX (512) in flight


def small_board(**kw):
    app = Recorder()
    return NUSPeripheral(app=app, rxring=SMALL, **kw), app


def test_full_queue_drops_frames_and_the_board_asks_for_the_gap():
    p, c, _app = ready()
    fwin = nus_central.hello(c)["fwin"]
    assert fwin >= 12
    assert p.window == fwin
    for i in range(fwin + 3):
        c.write(at(i * CHUNK))
    assert p.pending() == fwin
    assert p.dropped == 3
    c.pump()
    assert c.take() == [f"OTA:A:{(i + 1) * CHUNK}" for i in range(fwin)]
    c.write(at((fwin + 3) * CHUNK))  # after the lost ones
    c.pump()
    assert c.take() == [f"OTA:N:{fwin * CHUNK}"]
    assert send_rest(p, c, fwin * CHUNK) == len(DATA)
    assert staged() == DATA


def test_a_smaller_ring_announces_smaller_windows():
    p, _app = small_board()
    c = Central(p, mtu=517)
    caps = nus_central.hello(c)
    # (window + 1) * longest write fits in the ring, wherever it wraps
    assert caps["win"] == SMALL // OTAManager.LINE_MAX - 1
    assert caps["fwin"] == SMALL // OTAManager.FRAME_MAX - 1
    assert p.window == max(caps["win"], caps["fwin"])
    # the longest frames, a whole window of them, in a ring that wrapped
    c.write("W" * 400 + "\n")
    c.pump()
    data = bytes(range(256)) * 8
    crc = nus_central.crc_hex(data)
    assert c.ask(f"OTA:FILE:app.py:{len(data)}:{crc}:1.0.0:bin:-:")[0].startswith(
        "OTA:READY:0:"
    )
    step = caps["fmax"] - 7
    off = 0
    while off < len(data):
        for i in range(off, min(off + caps["fwin"] * step, len(data)), step):
            c.write(frame(i, data[i : i + step]))
        assert p.dropped == 0
        c.pump()
        off = int(c.take()[-1].split(":")[2])
    assert off == len(data)
    with open("app.py.new", "rb") as f:
        assert f.read() == data


def test_full_ring_by_bytes_or_by_slots_and_every_place_a_write_can_go():
    p, app = small_board()
    c = Central(p, mtu=517)
    assert p.window == 3
    a, b, f, g = ("A" * 450, "B" * 450, "F" * 300, "G" * 100)
    c.write(a + "\n")  # ring[0:451]
    c.write(b + "\n")  # ring[451:902]
    c.write("C" * 450 + "\n")  # 122 bytes left at the end, none at the start
    assert (p.pending(), p.dropped) == (2, 1)  # full by bytes, a slot free
    assert p.poll()  # A taken: ring[0:451] is free again
    c.write(f + "\n")  # too long for the end: at the start, ring[0:301]
    c.write("H" * 200 + "\n")  # 150 bytes left before B: dropped
    c.write(g + "\n")  # fits there: ring[301:402]
    assert p.dropped == 2
    c.write("I\n")  # bytes free, but all three slots taken: dropped
    assert (p.pending(), p.dropped) == (3, 3)
    assert p.pending_bytes() == 451 + 301 + 101
    c.pump()
    assert app.lines == [a, b, f, g]
    assert p.pending() == 0
    c.write(b + "\n")  # empty again: from the start
    c.pump()
    assert app.lines[-1] == b


def test_a_write_that_fills_the_ring_up_to_the_oldest_one_leaves_no_room():
    p, app = small_board()
    c = Central(p, mtu=517)
    a, b, f = ("A" * 450, "B" * 450, "F" * 450)
    c.write(a + "\n")  # ring[0:451]
    c.write(b + "\n")  # ring[451:902]
    assert p.poll()  # A taken
    c.write(f + "\n")  # at the start, ring[0:451]: it ends where B starts
    c.write("I\n")  # a slot is free, but no byte before B: dropped
    assert (p.pending(), p.dropped) == (2, 1)
    c.pump()
    assert app.lines == [a, b, f]  # B intact


def test_frames_and_lines_mixed():
    p, c, app = ready(mtu=517)
    c.write(at(0))
    c.write(b"PING\n")
    c.write(at(CHUNK))
    c.write(b"half a li")
    c.write(b"ne\nnext\n")
    c.write(at(2 * CHUNK))
    c.write(b"broken")  # a frame follows: this part is dropped
    c.write(at(3 * CHUNK))
    c.write(b" rest\nOTA:NOPE\n")
    c.write(at(4 * CHUNK) + at(5 * CHUNK))
    c.pump()
    assert app.lines == ["PING", "half a line", "next", " rest"]
    acks = [f"OTA:A:{i * CHUNK}" for i in range(1, 7)]
    acks.insert(4, "OTA:ERR:UNKNOWN_CMD")  # in the order they were sent
    assert c.take() == acks
    assert send_rest(p, c, 6 * CHUNK) == len(DATA)
    assert staged() == DATA
    assert p.badframes == 0


class Rand:
    def __init__(self, seed):
        self.x = seed

    def __call__(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def _write_until_taken(c, data):
    """Write; while the ring drops it, let the board take a line, then resend."""
    p = c.p
    dropped = p.dropped
    c.write(data)
    while p.dropped != dropped:
        assert p.poll()
        dropped = p.dropped
        c.write(data)


def _wrap_many_times(rxring, name):
    rand = Rand(rxring)
    app = Recorder()
    p = NUSPeripheral(app=app, rxring=rxring)
    c = Central(p, mtu=517)
    data = "".join(f"# app line {i}\n" for i in range(2000)).encode()
    fwin = min(OTAManager.FRAME_WINDOW, p.rxring // OTAManager.FRAME_MAX - 1)
    assert nus_central.hello(c)["fwin"] == fwin
    crc = nus_central.crc_hex(data)
    got = c.ask(f"OTA:FILE:{name}:{len(data)}:{crc}:1.0.0:bin:-:")
    assert got[0].startswith("OTA:READY:0:"), got
    sent = []
    off = 0
    through = 0
    while off < len(data):
        if rand(2):
            n = 1 + rand(OTAManager.FRAME_MAX - 7)
            w = frame(off, data[off : off + n])
            off += n
        else:
            w = b""
            for _ in range(1 + rand(3)):
                line = f"L{len(sent)} " + "x" * rand(160)
                if len(w) + len(line) + 1 > 514:
                    break
                sent.append(line)
                w += line.encode() + b"\n"
        _write_until_taken(c, w)
        through += len(w)
        for _ in range(rand(3)):
            p.poll()
    c.pump()
    assert app.lines == sent
    assert c.take()[-1] == f"OTA:A:{len(data)}"
    with open(name + ".new", "rb") as f:
        assert f.read() == data
    assert p.badframes == 0
    assert through > 10 * p.rxring  # round and round
    return {"bytes_through_ring": through, "drops_resent": p.dropped}


def test_ring_wraps_many_times_with_writes_of_every_size():
    small = _wrap_many_times(SMALL, "app.py")
    default = _wrap_many_times(0, "main.py")
    assert small["drops_resent"] > 0  # the small ring was full now and then
    return {"small_ring": small, "default_ring": default}


def test_writes_piled_up_beyond_the_ring_are_one_clear_drop():
    # A port whose BLE events come late lets writes pile up in the append
    # buffer; the IRQ then reads them as one write, here longer than the ring.
    p, app = small_board(rxbuf=2048)
    c = Central(p, mtu=517)
    ble = bluetooth.BLE()
    c.write("first\npart of a li")
    ble.irq(None)
    for i in range(3):
        c.write(str(i) * 400 + "\n")
    ble.irq(p._irq)
    c.write("ne that was lost\n")  # 1220 bytes in one read: more than the ring
    c.write("PING\n")
    c.pump()
    assert p.dropped == 1
    assert p.pending() == 0
    assert app.lines == ["first", "PING"]  # the broken line is dropped too


def test_writes_of_a_gone_connection_are_dropped_after_reconnect():
    p, c, app = ready()
    c.write(at(0))
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}"]
    for i in range(3):
        c.write(f"STALE {i}\n")
        c.write(at((i + 1) * CHUNK))  # queued, never taken: the link goes
    c.write(b"half a line")
    c.disconnect()
    c = Central(p, conn=2)
    c.write(b"FRESH\n")
    c.pump()
    assert app.lines == ["FRESH"]
    assert c.take() == []
    assert nus_central.hello(c)["staged"]["app.py"]["have"] == CHUNK
    crc = nus_central.crc_hex(DATA)
    lines = c.ask(f"OTA:FILE:app.py:{len(DATA)}:{crc}:2.0.0:bin:-:")
    assert lines[0].startswith(f"OTA:READY:{CHUNK}:"), lines
    assert send_rest(p, c, CHUNK) == len(DATA)
    assert staged() == DATA
