"""Deflated data frames (0xFE, HELLO `deflate`) through the NUS peripheral.

The frames are made with the `deflate` module of the runtime: MicroPython's
own compressor on MicroPython, zlib's through the stand-in on CPython. The
file is real Python source (this scenario's own text), never made-up text.
"""

import io
import sys

import nus_central
from fwtest import hexs, sha256_hex
from nus_central import Central, crc_hex, frame

CHUNK = 300  # file bytes per deflated frame: deflated, well under fmax


def source(size):
    """`size` bytes of real Python source: this file, repeated if need be."""
    with open(__file__, "rb") as f:
        text = f.read()
    while len(text) < size:
        text += text
    return text[:size]


DATA = source(2000)


def deflated(data, wbits=9):
    """One raw deflate stream of `data`, made by the runtime's compressor."""
    import deflate

    out = io.BytesIO()
    d = deflate.DeflateIO(out, deflate.RAW, wbits)
    d.write(data)
    d.close()
    return out.getvalue()


def zframe(off, data, stream=None, count=None):
    """A deflated frame: 0xFE, length, offset, count, raw deflate stream."""
    stream = deflated(data) if stream is None else stream
    n = len(stream)
    c = len(data) if count is None else count
    head = bytes([0xFE, n & 255, n >> 8, off & 255, off >> 8 & 255, off >> 16 & 255])
    return head + bytes([off >> 24 & 255, c & 255, c >> 8]) + stream


def at(off, data=DATA):
    return zframe(off, data[off : off + CHUNK])


def board(key=None):
    """A fresh board (files stay): a new peripheral, as after a reset."""
    import boots

    boots.forget_modules()
    from nus_peripheral import NUSPeripheral
    from ota_manager import OTAManager

    OTAManager.RESET_DELAY_MS = 0
    OTAManager.AUTH_KEY = key
    return NUSPeripheral(app=lambda line: None)


def ready(p, data=DATA, conn=1, have=0, key=None):
    """Connect and FILE app.py (`bin`); the central once READY came at `have`."""
    c = Central(p, mtu=517, conn=conn)
    caps = nus_central.hello(c)
    head = f"app.py:{len(data)}:{crc_hex(data)}:2.0.0:bin:-"
    if key is None:
        line = f"OTA:FILE:{head}:"
    else:
        import ota_auth

        head += ":" + sha256_hex(data)
        mac = ota_auth.hmac_sha256(
            key, caps["nonce"] + "|FILE|" + head.replace(":", "|")
        )
        line = f"OTA:FILE:{head}:" + hexs(mac)
    lines = c.ask(line)
    assert lines[0].startswith(f"OTA:READY:{have}:"), lines
    return c


def send_rest(c, off, data=DATA):
    """Deflated frames of `data` from `off`; the offset the board acked last."""
    return nus_central.send_frames(c, off, len(data), lambda o: at(o, data), CHUNK)


def staged():
    with open("app.py.new", "rb") as f:
        return f.read()


def test_hello_offers_deflate_with_bin():
    p = board()
    caps = nus_central.hello_and_leave(p)
    assert "bin" in caps["enc"]
    assert caps["deflate"] == {"wbits": 9, "max": 1024}
    assert caps["fw"] == "2.2.0"


def test_deflated_frames_stage_the_file_and_apply():
    p = board()
    c = ready(p)
    for off in range(0, len(DATA), CHUNK):
        assert len(at(off)) <= p.frame_max
        assert len(at(off)) < CHUNK
    assert send_rest(c, 0) == len(DATA)
    assert staged() == DATA
    assert p.badframes == 0
    assert nus_central.v2_apply(c, ["app.py"])
    with open("app.py", "rb") as f:
        assert f.read() == DATA


def test_keyed_board_hashes_the_inflated_content():
    p = board(key="board-secret")
    c = ready(p, key="board-secret")
    assert send_rest(c, 0) == len(DATA)  # A:size: CRC-32 and SHA-256 both matched
    assert staged() == DATA


def test_loss_duplicates_and_gaps_answer_as_plain_frames():
    p = board()
    c = ready(p)
    c.write(at(0))
    c.write(at(2 * CHUNK))  # frame 1 lost: one N
    c.write(at(3 * CHUNK))  # then silence
    c.write(at(0))  # a duplicate: where we are
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}", f"OTA:N:{CHUNK}", f"OTA:A:{CHUNK}"]
    assert send_rest(c, CHUNK) == len(DATA)  # go back
    assert staged() == DATA
    c.write(at(0))  # late, after the file is complete
    c.pump()
    assert c.take() == [f"OTA:A:{len(DATA)}"]


def test_plain_and_deflated_frames_mix_in_one_file():
    p = board()
    c = ready(p)

    def either(off, data):
        if off // CHUNK % 2:
            return frame(off, data[off : off + 200])  # plain frames carry less
        return at(off, data)

    off = 0
    while off < len(DATA):
        c.write(either(off, DATA))
        c.pump()
        got = c.take()
        assert len(got) == 1, got
        assert got[0].startswith("OTA:A:"), got
        off = int(got[0].split(":")[2])
    assert staged() == DATA


def test_deflated_and_plain_frames_in_one_write():
    p = board()
    c = ready(p)
    c.write(at(0) + frame(CHUNK, DATA[CHUNK : CHUNK + 100]))
    c.write(frame(CHUNK + 100, DATA[CHUNK + 100 : 2 * CHUNK]) + at(2 * CHUNK))
    c.pump()
    assert c.take() == [
        f"OTA:A:{n}" for n in (CHUNK, CHUNK + 100, 2 * CHUNK, 3 * CHUNK)
    ]
    assert send_rest(c, 3 * CHUNK) == len(DATA)
    assert staged() == DATA


def test_a_deflated_frame_breaks_a_pending_line():
    p = board()
    c = ready(p)
    c.write(b"OTA:NO")  # part of a line: a frame follows, so it is dropped
    c.write(at(0))
    c.write(b"PE\n")  # to the app, not "OTA:NOPE" to the engine
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}"]


def test_deflated_frame_cut_split_or_followed_by_garbage():
    p = board()
    c = ready(p)
    whole = at(0)
    c.write(whole[:8])  # cut inside the 9-byte header
    c.write(whole[:60])  # cut inside the stream
    c.write(whole[60:])  # the rest of it, alone: dropped too
    c.pump()
    assert c.take() == []
    assert p.badframes == 3
    c.write(whole + b"OTA:ABORT\n")  # garbage after a frame
    c.write(at(CHUNK) + b"\xfe\x01")  # the start of a frame that never ends
    c.pump()
    assert c.take() == [f"OTA:A:{CHUNK}", f"OTA:A:{2 * CHUNK}"]
    assert p.badframes == 5
    assert send_rest(c, 2 * CHUNK) == len(DATA)
    assert staged() == DATA


def _window_10_stream():
    """A stream only a 1 KB window decodes: it refers back 600 bytes."""
    import deflate

    data = DATA[:100] + b" " * 500 + DATA[:100]
    stream = deflated(data, 10)
    try:
        deflate.DeflateIO(io.BytesIO(stream), deflate.RAW, 9).read()
    except OSError:
        return data, stream
    raise AssertionError("the compressor did not refer back 600 bytes")


def test_bad_streams_answer_bad_data_and_the_transfer_goes_on():
    p = board()
    c = ready(p)
    part = DATA[:CHUNK]
    good = deflated(part)
    reserved = bytearray(good)
    reserved[0] |= 6  # block type 3, which does not exist
    far_data, far_stream = _window_10_stream()
    bad = [
        zframe(0, part, bytes(reserved)),  # corrupt
        zframe(0, part, good[:-3]),  # cut short
        zframe(0, part, good, count=CHUNK - 1),  # holds more than count
        zframe(0, part, good, count=CHUNK + 1),  # ends before count
        zframe(0, part, good + b"\x00\x00"),  # bytes after the stream's end
        zframe(0, b"", deflated(b"")),  # count 0
        zframe(0, DATA[:25] + b" " * 1000),  # expands to more than max (1024)
        zframe(0, far_data, far_stream),  # needs a window of 10 bits
        zframe(0, b"x", b"\x03\x00", count=1),  # an empty stream
    ]
    for f in bad:
        c.write(f)
        c.pump()
        got = c.take()
        assert got == ["OTA:ERR:BAD_DATA:0"], (got, f[:12])
        assert p.ota.t.have == 0  # nothing written
    tail = len(DATA) - 100
    assert send_rest(c, 0, DATA[:tail]) == tail  # sent as frames of a shorter file
    c.write(zframe(tail, DATA[tail:] + b"x"))  # past the announced size
    c.pump()
    assert c.take() == [f"OTA:ERR:BAD_DATA:{tail}"]
    c.write(zframe(tail, DATA[tail:]))
    c.pump()
    assert c.take() == [f"OTA:A:{len(DATA)}"]
    assert staged() == DATA


def test_a_frame_of_more_than_max_is_refused_wherever_its_stream_ends():
    # The output buffer holds max + 1 bytes: it fills up before the decoder
    # has read the end of such a stream, unless that end shares the last
    # byte with the last literal (k 13..23 with CPython's zlib). The count
    # against max refuses them all.
    p = board()
    c = ready(p)
    for k in range(24):
        data = b" " * 1000 + b"%025d" % (k * 7919)  # max + 1 bytes
        c.write(zframe(0, data))
        c.pump()
        assert c.take() == ["OTA:ERR:BAD_DATA:0"], k
    assert p.ota.t.have == 0


def test_the_engine_refuses_a_frame_whose_length_field_disagrees():
    # The peripheral cuts frames by their length field; another transport
    # may hand the engine (OTAManager.frame) whatever arrived.
    p = board()
    c = ready(p)
    good = at(0)
    n = len(good) - 9
    for length in (n - 1, n + 1, 0):
        f = bytearray(good)
        f[1], f[2] = length & 255, length >> 8
        p.ota.frame(memoryview(f))
        assert c.take() == ["OTA:ERR:BAD_DATA:0"], length
    p.ota.frame(memoryview(good))
    assert c.take() == [f"OTA:A:{CHUNK}"]


def refused_then_plain(c, stream=None):
    """A deflated frame at 0 is BAD_DATA; plain frames then stage the file."""
    c.write(zframe(0, DATA[:CHUNK], stream))
    c.pump()
    assert c.take() == ["OTA:ERR:BAD_DATA:0"]
    off = 0
    while off < len(DATA):  # plain frames still work
        c.write(frame(off, DATA[off : off + 200]))
        off += 200
    c.pump()
    assert c.take()[-1] == f"OTA:A:{len(DATA)}"
    assert staged() == DATA


def test_board_without_deflate():
    sys.modules["deflate"] = None  # an import fails (CPython) or finds nothing
    p = board()
    c = ready(p)
    caps = nus_central.hello(c)
    assert "bin" in caps["enc"]
    assert "deflate" not in caps
    refused_then_plain(c, b"\x0b\x00")  # any stream


class _DeflateWithoutMemory:
    """A deflate module whose decoder finds no heap for its window."""

    RAW = -1

    @staticmethod
    def DeflateIO(*_args):  # noqa: N802 (the module's name)
        raise MemoryError


def test_a_decoder_out_of_memory_is_bad_data_and_plain_frames_go_on():
    # The client answers BAD_DATA to a deflated frame with plain frames;
    # ERR:INTERNAL would end the install instead.
    stream = deflated(DATA[:CHUNK])  # a good stream, made with the real module
    sys.modules["deflate"] = _DeflateWithoutMemory
    c = ready(board())
    refused_then_plain(c, stream)


def test_a_board_without_ota_inflate_still_takes_files():
    # A board updated file by file, or without the heap to load the module
    # at FILE: READY as ever, deflated frames BAD_DATA, plain frames go on.
    p = board()
    sys.modules["ota_inflate"] = None  # its import fails or finds nothing
    c = ready(p)
    assert p.ota.t.z is None
    refused_then_plain(c)


def test_deflated_frames_outside_a_transfer():
    p = board()
    c = Central(p, mtu=517)
    c.write(at(0))
    c.pump()
    assert c.take() == ["OTA:ERR:NOT_READY"]


def test_resume_at_every_frame_boundary_after_a_disconnect():
    import fwtest

    for k in range(len(DATA) // CHUNK + 1):
        fwtest.clear_dir()
        p = board()
        c = ready(p)
        for off in range(0, k * CHUNK, CHUNK):
            c.write(at(off))
        if k * CHUNK < len(DATA):
            c.write(at(k * CHUNK)[:40])  # cut by the disconnect
        c.pump()
        c.disconnect()
        p.poll()
        have = k * CHUNK
        c = ready(p, conn=2, have=have)
        assert send_rest(c, have) == len(DATA), k
        assert staged() == DATA, k


def test_resume_after_a_power_cut_at_any_byte():
    """A power cut after k frames; flash kept a ragged prefix: READY's offset."""
    import fwtest

    for k in range(1, len(DATA) // CHUNK + 1):
        for kept in (k * CHUNK, k * CHUNK - 77):
            fwtest.clear_dir()
            p = board()
            c = ready(p)
            for off in range(0, k * CHUNK, CHUNK):
                c.write(at(off))
            c.pump()
            p.ota.t.f.close()
            with open("app.py.new", "rb") as f:
                written = f.read()
            assert written == DATA[: k * CHUNK]
            with open("app.py.new", "wb") as f:
                f.write(written[:kept])  # what reached flash
            p = board()  # the reset: every firmware module afresh
            c = ready(p, have=kept)
            assert send_rest(c, kept) == len(DATA), (k, kept)
            assert staged() == DATA, (k, kept)
