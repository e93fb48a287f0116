"""The NUS peripheral: line reassembly, bounded queue, notifications, advertising."""

from binascii import hexlify, unhexlify

import bluetooth
import machine
import nus_central
from fwtest import Recorder
from nus_central import Central
from nus_peripheral import NUSPeripheral
from ota_manager import OTAManager

NUS_ON_AIR = bytes(reversed(unhexlify("6e400001b5a3f393e0a9e50e24dcca9e")))


def board(app=None, **kw):
    OTAManager.RESET_DELAY_MS = 0
    return NUSPeripheral(app=app, **kw)


def ad_structures(payload):
    """{type: [data, ...]} of an advertising payload; checks the framing."""
    out = {}
    i = 0
    while i < len(payload):
        n = payload[i]
        assert n > 0, payload
        assert i + 1 + n <= len(payload), payload
        out.setdefault(payload[i + 1], []).append(payload[i + 2 : i + 1 + n])
        i += 1 + n
    return out


def test_advertising_payload_fits_and_identifies_the_board():
    p = board()
    ble = bluetooth.BLE()
    adv, resp = ble.advertising, ble.scan_response
    assert len(adv) <= 31
    assert len(resp) <= 31
    ads = ad_structures(adv)
    assert ads[0x01] == [b"\x06"]
    mac = ble.config("mac")[1]
    expect = f"ESP32-OTA-{mac[4]:02X}{mac[5]:02X}"
    # The name is in the advertisement: Home Assistant matches "ESP32-OTA*"
    # even through a proxy that scans passively. No manufacturer data: the
    # test company id 0xFFFF would also wake HA's kegtron integration.
    assert ads[0x09] == [expect.encode()]
    assert 0xFF not in ads
    assert ad_structures(resp)[0x07] == [NUS_ON_AIR]
    assert p.name == expect
    assert ble.config("gap_name") == expect.encode()
    assert ble.connectable
    return {"adv_bytes": len(adv), "scan_response_bytes": len(resp)}


def test_names_from_config_argument_and_shortened():
    import config

    config.NAME = "Garden pump"
    p = board()
    assert p.name == "Garden pump"
    assert ad_structures(bluetooth.BLE().advertising)[0x09] == [b"Garden pump"]
    long_name = "ESP32-OTA-a-name-much-longer-than-fits"
    board(name=long_name)
    adv = bluetooth.BLE().advertising
    assert len(adv) == 31
    assert ad_structures(adv)[0x08] == [long_name.encode()[:16]]


def test_board_settings_from_config():
    # what scripts/install_firmware writes into config.py
    import config

    config.ALLOWED_FILES = ("app.py", "sensors.py")
    config.AUTH_KEY = "correct horse battery"
    config.AUTH_TOKEN = "old-token"
    p = board()
    allowed = OTAManager.ALLOWED_FILES
    assert allowed == {"app.py", "sensors.py"}
    caps = nus_central.hello(Central(p))
    assert caps["auth"] == "hmac"
    assert sorted(caps["files"]) == ["app.py", "sensors.py"]


def test_mtu_and_rx_characteristic():
    p = board()
    ble = bluetooth.BLE()
    c = Central(p, mtu=517)
    assert p.mtu() == 517
    assert ble.connection_mtu(1) == 517
    # The IRQ copies every write out of the append buffer into the RX ring:
    # the buffer holds the longest write (512) and room for one more.
    assert p.rxbuf == 2 * OTAManager.LINE_MAX
    assert c.write(b"x" * 512) == 512
    assert ble.central_write(1, b"\nPING\n", response=True) == 6
    c2 = Central(board(), mtu=100, conn=2)
    assert c2.p.mtu() == 100  # the central's smaller MTU wins
    return {"rxbuf": p.rxbuf, "window": p.window}


def test_fragmented_writes_make_one_line():
    app = Recorder()
    p = board(app)
    c = Central(p, mtu=23)
    for part in ("PI", "N", "G and more", " text"):
        c.write(part)
        assert not p.poll()
    c.write("\n")
    assert p.poll()
    assert not p.poll()
    assert app.lines == ["PING and more text"]
    # lines that start in the middle of one write and end in another
    c.write("one\ntw")
    c.write("o\nthr")
    c.write("ee\n")
    assert c.pump() == 3
    assert app.lines[1:] == ["one", "two", "three"]


def test_several_lines_in_one_write_one_per_poll():
    app = Recorder()
    p = board(app)
    c = Central(p)
    c.write("A\nB\r\n\nC\n")
    assert p.pending_bytes() == 8
    assert p.poll()
    assert app.lines == ["A"]
    assert p.pending_bytes() == 6
    assert p.poll()
    assert app.lines == ["A", "B"]  # "\r\n" endings are fine
    assert p.poll()
    assert app.lines == ["A", "B", "C"]  # empty lines are skipped
    assert not p.poll()


def test_random_splits_reassemble_exactly():
    # Many lines cut at random points into writes, polled at random moments:
    # as long as nothing overflows, the app gets exactly the lines sent.
    seed = [2024]

    def rand(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (seed[0] >> 8) % n

    app = Recorder()
    p = board(app)
    c = Central(p, mtu=247)
    sent = []
    stream = bytearray()
    for i in range(300):
        line = f"line {i}:" + "abcdefghij"[: rand(11)] * rand(40)
        sent.append(line)
        stream += line.encode() + (b"\r\n" if rand(5) == 0 else b"\n")
    pos = 0
    while pos < len(stream):
        n = 1 + rand(244)
        c.write(bytes(stream[pos : pos + n]))
        pos += n
        for _ in range(rand(3)):
            p.poll()
        while p.pending() == p.window:  # full: the next write would be lost
            p.poll()
    c.pump()
    assert p.dropped == 0
    assert app.lines == sent
    return {"lines": len(sent), "bytes": len(stream)}


def test_write_cut_by_the_attribute_buffer():
    app = Recorder()
    p = board(app, rxbuf=64)
    c = Central(p)
    assert c.write("X" * 99 + "\n") == 64  # the buffer keeps 64 bytes
    c.write("PING\n")
    c.pump()
    assert app.lines == ["PING"]  # the cut line is dropped, not merged
    assert p.cut == 1
    assert c.write("Y" * 63 + "\n") == 64  # exactly full and complete: kept
    c.pump()
    assert app.lines == ["PING", "Y" * 63]
    assert p.cut == 1


def test_overlong_line_dropped():
    app = Recorder()
    p = board(app)
    c = Central(p, mtu=517)
    c.write("Z" * 300)
    c.write("Z" * 300)  # 600 bytes: longer than a line may be
    c.write("Z" * 10 + "\nPING\n")
    c.pump()
    assert app.lines == ["PING"]
    assert p.overlong == 1
    longest = "L" * (OTAManager.LINE_MAX - 1)  # LINE_MAX counts the "\n"
    c.write(longest[:400])
    c.write(longest[400:] + "\n")
    c.pump()
    assert app.lines == ["PING", longest]
    assert p.overlong == 1


def test_binary_garbage_does_not_hurt():
    app = Recorder()
    p = board(app)
    c = Central(p)
    seed = 12345
    junk = bytearray()
    for _ in range(3000):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        junk.append(seed >> 16 & 0xFF)
    for i in range(0, len(junk), 200):
        c.write(bytes(junk[i : i + 200]))
        c.pump()
    # A write that starts with 0xFF is a binary frame: this one is cut short
    # (254 bytes announced), so it and the write after it are dropped.
    c.write(b"\xff\xfe\x00OTA:\n\x80\x81\n")
    c.write(b"PONG\n")
    c.write(b"\x80\xff\xfe\x00OTA:\n\x80\x81\n")
    c.write(b"\n\x00\x01bin\x7f\t\nPING\n")
    c.pump()
    assert app.lines[-2:] == ["\x00\x01bin\x7f\t", "PING"]  # valid UTF-8: as is
    assert p.undecodable > 0
    assert "PONG" not in app.lines
    assert p.badframes > 0
    assert p.ota.state == OTAManager.IDLE
    assert c.ask("OTA:ABORT") == ["OTA:ABORTED"]
    return {"undecodable_lines": p.undecodable, "app_lines": len(app.lines)}


def test_queue_is_bounded_and_recovers():
    app = Recorder()
    p = board(app)
    c = Central(p)
    w = p.window
    for i in range(w + 5):
        c.write(f"L{i}\n")
    assert p.pending() == w
    assert p.pending_bytes() == sum(len(f"L{i}\n") for i in range(w))
    assert p.dropped == 5
    c.pump()
    assert app.lines == [f"L{i}" for i in range(w)]
    # a loss in the middle of a line drops that line, nothing else
    app.lines = []
    c.write("PART")
    for i in range(w - 1):
        c.write(f"M{i}\n")
    c.write("IAL\n")  # the queue is full: lost
    c.pump()
    c.write("NEXT\n")
    c.pump()
    assert app.lines == ["PARTM0"] + [f"M{i}" for i in range(1, w - 1)] + ["NEXT"]
    assert p.dropped == 6
    # what the engine announces is what the queue holds
    caps = nus_central.hello(c)
    assert w == max(caps["win"], caps["fwin"])
    assert caps["line"] == OTAManager.LINE_MAX


def test_lost_write_of_a_fragmented_line_drops_only_that_line():
    app = Recorder()
    p = board(app)
    c = Central(p)
    w = p.window
    c.write("HEAD-OF-A-LINE-")
    for i in range(w - 1):
        c.write(f"Q{i}\n")
    c.write("TAIL\n")  # lost
    assert p.dropped == 1
    assert c.pump() == w - 1
    c.write("AFTER\n")
    c.pump()
    assert app.lines[-1] == "AFTER"
    assert "TAIL" not in app.lines


def test_app_lines_pass_through_untouched():
    app = Recorder(answer="PONG")
    p = board(app)
    c = Central(p)
    assert c.ask("hello: world OTA:x") == ["PONG"]
    assert app.lines == ["hello: world OTA:x"]
    assert c.ask("OTA:HELLO")[0].startswith("OTA:HELLO:{")
    assert c.ask("OTA:NOPE") == ["OTA:ERR:UNKNOWN_CMD"]
    assert app.lines == ["hello: world OTA:x"]  # OTA lines never reach the app
    assert c.ask("ota:lowercase") == ["PONG"]
    app.answer = None
    assert c.ask("quiet") == []


def test_a_broken_app_does_not_stop_ota():
    def broken(line):
        raise RuntimeError("bug in the app")

    p = board(broken)
    c = Central(p)
    assert c.ask("anything") == []
    assert c.ask("OTA:ABORT") == ["OTA:ABORTED"]


def test_no_app_handler():
    p = board()
    c = Central(p)
    assert c.ask("PING") == []
    assert c.ask("OTA:ABORT") == ["OTA:ABORTED"]


def test_one_reply_per_notification_long_ones_split():
    app = Recorder(answer="PONG")
    p = board(app)
    c = Central(p, mtu=256)
    c.send("a")
    c.send("b")
    c.pump()
    assert c.take() == ["PONG", "PONG"]
    assert c.notes == [b"PONG\n", b"PONG\n"]
    long_reply = "R" * 600
    app.answer = long_reply
    c.notes = []
    assert c.ask("x") == [long_reply]
    assert [len(n) for n in c.notes] == [253, 253, 95]
    # at the smallest MTU the HELLO reply takes many notifications
    c2 = Central(board(), mtu=23, conn=7)
    caps = nus_central.hello(c2)
    assert max(len(n) for n in c2.notes) == 20
    assert caps["proto"] == 2
    assert max(caps["win"], caps["fwin"]) == c2.p.window
    return {"hello_notifications_at_mtu_23": len(c2.notes)}


def test_readvertise_after_disconnect_and_abort():
    app = Recorder()
    p = board(app)
    ble = bluetooth.BLE()
    adv = ble.advertising
    c = Central(p)
    assert ble.advertising is None
    assert p.is_connected()
    assert c.ask("OTA:START:main.py:10:0badf00d") == ["OTA:READY"]
    assert p.ota.state == OTAManager.ARMED
    c.write("stale li")  # never handled: the link goes away
    c.write("stale line\n")
    c.disconnect()
    assert ble.advertising == adv
    assert ble.scan_response is not None
    assert not p.is_connected()
    c = Central(p, conn=3)
    c.send("fresh")
    assert p.poll()
    assert not p.poll()
    assert app.lines == ["fresh"]  # old writes dropped, the v1 transfer aborted
    assert p.ota.state == OTAManager.IDLE
    assert c.ask("OTA:START:main.py:10:0badf00d") == ["OTA:READY"]
    p.disconnect()  # the board hangs up itself
    assert ble.advertising == adv
    assert ble.connected() == []
    assert not p.send("nobody listens")
    p.poll()
    assert p.ota.state == OTAManager.IDLE
    # a write half handled when the link drops: its other lines are stale
    c = Central(p, conn=4)
    c.write("first\nsecond\n")
    assert p.poll()
    c.disconnect()
    c = Central(p, conn=5)
    c.write("third\n")
    c.pump()
    assert app.lines == ["fresh", "first", "third"]
    return {"advertising_starts": ble.adv_count}


def test_advertising_retried_when_restart_fails():
    p = board()
    ble = bluetooth.BLE()
    c = Central(p)
    real = ble.gap_advertise
    calls = []

    def failing(*args, **kw):
        calls.append(args)
        raise OSError(114)

    ble.gap_advertise = failing
    c.disconnect()  # the restart inside the IRQ fails
    assert ble.advertising is None
    assert len(calls) == 1
    ble.gap_advertise = real
    p.poll()
    assert ble.advertising is not None
    Central(p, conn=2)  # connectable again


def test_v1_transfer_through_the_peripheral():
    p = board()
    c = Central(p, mtu=256)
    data = "".join(f"print('line {i}')\n" for i in range(200)).encode()
    crc = nus_central.crc_hex(data)
    assert c.ask(f"OTA:START:main.py:{len(data)}:{crc}:1.0.0:100") == ["OTA:READY"]
    chunk = 100  # a 213-byte line: one write at MTU 256
    seq = 0
    for off in range(0, len(data), chunk):
        part = hexlify(data[off : off + chunk]).decode()
        assert c.ask(f"OTA:DATA:{seq}:{part}") == [f"OTA:ACK:{seq}"]
        seq += 1
    c.send("OTA:COMMIT")
    resets = machine.resets
    try:
        c.pump()
        raise AssertionError("no reset")
    except machine.Reset:
        pass
    assert machine.resets == resets + 1
    assert c.take() == ["OTA:OK"]
    with open("main.py", "rb") as f:
        assert f.read() == data
    return {"chunks": seq, "bytes": len(data)}


def test_v2_transfer_through_the_peripheral_with_resume():
    p = board()
    c = Central(p, mtu=256)
    caps = nus_central.hello(c)
    assert caps["staged"] == {}
    assert caps["files"]["app.py"] is None
    data = "".join(f"# app line {i}\n" for i in range(400)).encode()
    crc = nus_central.crc_hex(data)
    lines = c.ask(f"OTA:FILE:app.py:{len(data)}:{crc}:2.0.0:b64:-:")
    assert lines[0].startswith("OTA:READY:0:")
    off = 0
    while off < len(data) // 2:
        # a window's worth of writes in flight, every line split in two
        for _ in range(p.window // 2):
            line = f"OTA:D:{off}:{nus_central.b64(data[off : off + 150])}\n"
            c.write(line[:50])
            c.write(line[50:])
            off += 150
        c.pump()
        assert c.take()[-1] == f"OTA:A:{off}"
    c.disconnect()  # the link drops mid-transfer: staged data is kept
    p.poll()
    c = Central(p, conn=2)
    caps = nus_central.hello(c)
    assert caps["staged"]["app.py"]["have"] == off
    replies = nus_central.v2_send_file(c, "app.py", data, ver="2.0.0")
    assert replies[-1] == f"OTA:A:{len(data)}"
    assert nus_central.v2_apply(c, ["app.py"])
    with open("app.py", "rb") as f:
        assert f.read() == data
    return {"bytes": len(data), "resumed_at": off}


def test_serve_as_an_asyncio_task():
    # Stepped by hand with a stand-in asyncio: the same on both runtimes.
    import sys

    slept = []

    def sleep(seconds):
        slept.append(seconds)
        yield

    try:
        from types import coroutine

        sleep = coroutine(sleep)
    except ImportError:
        pass  # MicroPython awaits generators as they are

    class FakeAsyncio:
        pass

    fake = FakeAsyncio()
    fake.sleep = sleep
    app = Recorder(answer="PONG")
    p = board(app)
    c = Central(p)
    saved = sys.modules.get("asyncio")
    sys.modules["asyncio"] = fake
    try:
        task = p.serve(idle_ms=7)
        c.send("PING")
        c.send("PING")
        task.send(None)  # runs until the queue is empty, then sleeps
        assert c.take() == ["PONG", "PONG"]
        assert slept == [0.007]
        task.send(None)
        assert slept == [0.007, 0.007]
        c.send("PING")
        task.send(None)
        assert c.take() == ["PONG"]
        task.close()
    finally:
        if saved is None:
            del sys.modules["asyncio"]
        else:
            sys.modules["asyncio"] = saved
