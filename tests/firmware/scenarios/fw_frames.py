"""Binary data frames through the NUS peripheral: routing, faults, resume."""

import nus_central
from fwtest import Recorder
from nus_central import Central, frame
from nus_peripheral import NUSPeripheral
from ota_manager import OTAManager

DATA = "".join(f"# app line {i}\n" for i in range(300)).encode()
CHUNK = 200


def at(off):
    return frame(off, DATA[off : off + CHUNK])


def ready(app=None, data=DATA, mtu=256):
    """A board with a `bin` FILE under way; (peripheral, central, app)."""
    OTAManager.RESET_DELAY_MS = 0
    app = app or Recorder()
    p = NUSPeripheral(app=app)
    c = Central(p, mtu=mtu)
    assert "bin" in nus_central.hello(c)["enc"]
    crc = nus_central.crc_hex(data)
    lines = c.ask(f"OTA:FILE:app.py:{len(data)}:{crc}:2.0.0:bin:-:")
    assert lines[0].startswith("OTA:READY:0:"), lines
    return p, c, app


def send_rest(p, c, off):
    """Frames from `off` a window at a time; the offset acked last."""
    return nus_central.send_frames(c, off, len(DATA), at, CHUNK)


def staged():
    with open("app.py.new", "rb") as f:
        return f.read()


def test_frames_transfer_the_file_and_apply():
    p, c, app = ready()
    assert send_rest(p, c, 0) == len(DATA)
    assert staged() == DATA
    assert nus_central.v2_apply(c, ["app.py"])
    with open("app.py", "rb") as f:
        assert f.read() == DATA
    assert app.lines == []
    assert p.badframes == 0
    write = len(at(0))
    return {"write": write, "file_bytes_per_write": CHUNK / write}


def test_two_frames_in_one_write():
    p, c, _app = ready(mtu=517)
    c.write(at(0) + at(CHUNK))
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}", f"OTA:A:{2 * CHUNK}"]
    assert send_rest(p, c, 2 * CHUNK) == len(DATA)
    assert staged() == DATA


def test_frame_cut_short_is_dropped_and_resent():
    p, c, _app = ready()
    c.write(at(0)[:100])
    c.write(at(0))
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}"]
    assert p.badframes == 1
    assert send_rest(p, c, CHUNK) == len(DATA)
    assert staged() == DATA


def test_frame_split_over_two_writes_never_reaches_the_app():
    p, c, app = ready()
    whole = at(0)
    c.write(whole[:60])
    c.write(whole[60:])  # source text: it would make lines for the app
    c.write(at(CHUNK))
    c.pump()
    assert app.lines == []
    assert c.take() == ["OTA:N:0"]  # neither part was taken: a gap
    assert p.badframes == 2
    assert send_rest(p, c, 0) == len(DATA)
    assert staged() == DATA


def test_garbage_after_a_frame_is_dropped():
    p, c, app = ready()
    c.write(at(0) + b"OTA:ABORT\nPING\n")
    c.write(at(CHUNK) + b"\x00\x01")
    c.write(b"PING\n")
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}", f"OTA:A:{2 * CHUNK}"]
    assert app.lines == ["PING"]  # the next write is a line again
    assert p.badframes == 2
    assert send_rest(p, c, 2 * CHUNK) == len(DATA)
    assert staged() == DATA


def test_gaps_duplicates_and_bad_frames_answer_like_d_lines():
    p, c, _app = ready()
    c.write(at(0))
    c.write(at(2 * CHUNK))  # a gap: one N
    c.write(at(3 * CHUNK))  # then silence
    c.write(at(0))  # a duplicate: where we are
    c.write(frame(CHUNK, b""))  # an empty payload
    c.write(frame(len(DATA) - 10, DATA[-10:] + b"x"))  # past the end
    c.pump()
    assert c.take() == [
        f"OTA:A:{CHUNK}",
        f"OTA:N:{CHUNK}",
        f"OTA:A:{CHUNK}",
        f"OTA:ERR:BAD_DATA:{CHUNK}",
        f"OTA:N:{CHUNK}",
    ]
    assert send_rest(p, c, CHUNK) == len(DATA)
    assert staged() == DATA


def test_frames_outside_a_transfer_and_a_pending_line():
    OTAManager.RESET_DELAY_MS = 0
    app = Recorder()
    p = NUSPeripheral(app=app)
    c = Central(p, mtu=256)
    c.write(b"PI")  # half a line, then a frame: the line is broken
    c.write(at(0))
    c.write(b"NG\nPONG\n")
    c.pump()
    assert c.take() == ["OTA:ERR:NOT_READY"]
    assert app.lines == ["NG", "PONG"]


def test_frames_resume_after_disconnect():
    p, c, _app = ready()
    for off in range(0, 4 * CHUNK, CHUNK):
        c.write(at(off))
    c.pump()
    assert c.take()[-1] == f"OTA:A:{4 * CHUNK}"
    c.write(at(4 * CHUNK)[:50])  # cut by the disconnect
    c.disconnect()
    p.poll()
    c = Central(p, conn=2)
    assert nus_central.hello(c)["staged"]["app.py"]["have"] == 4 * CHUNK
    crc = nus_central.crc_hex(DATA)
    lines = c.ask(f"OTA:FILE:app.py:{len(DATA)}:{crc}:2.0.0:bin:-:")
    assert lines[0].startswith(f"OTA:READY:{4 * CHUNK}:"), lines
    assert send_rest(p, c, 4 * CHUNK) == len(DATA)
    assert staged() == DATA


def test_hello_offers_a_frame_window_and_longer_frames_are_dropped():
    p, c, _app = ready(mtu=517)
    caps = nus_central.hello(c)
    assert caps["fwin"] == OTAManager.FRAME_WINDOW
    assert caps["fmax"] == OTAManager.FRAME_MAX
    assert p.window >= caps["fwin"]  # the queue holds a whole frame window
    longest = OTAManager.FRAME_MAX - 7
    c.write(frame(0, DATA[: longest + 1]))  # one byte too long
    c.write(frame(0, DATA[:longest]))
    c.pump()
    assert c.take() == [f"OTA:A:{longest}"]
    assert p.badframes == 1
