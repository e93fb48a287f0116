"""The `deflate` stand-in (CPython) behaves as MicroPython's own module.

The same assertions run on CPython, against
scripts/esp32_ota_sim/stand_ins/deflate.py, and on the MicroPython
WebAssembly port, against the built-in module: what the firmware relies on
(how much input is read, which error a bad stream raises) cannot differ.
Streams are made by the runtime's own compressor from real source.
"""

import io

import deflate
from fw_deflate import DATA, deflated


def _inflate(stream, want, wbits=9):
    """(bytes read into a buffer of `want`, input bytes consumed)."""
    src = io.BytesIO(stream)
    buf = bytearray(want)
    got = deflate.DeflateIO(src, deflate.RAW, wbits).readinto(buf)
    return got, src.tell(), bytes(buf[:got])


def _raises(kind, func, *args):
    try:
        func(*args)
    except kind:
        return True
    return False


def test_a_stream_is_read_exactly_to_its_end():
    data = DATA[:700]
    stream = deflated(data)
    assert _inflate(stream, 701) == (700, len(stream), data)
    # the bytes after the stream's end are left unread
    assert _inflate(stream + b"junk", 701)[:2] == (700, len(stream))
    # a buffer shorter than the stream fills up, the rest waits
    got, used, out = _inflate(stream, 100)
    assert (got, out) == (100, data[:100])
    assert used < len(stream)


def test_a_stream_cut_short_raises_eof():
    stream = deflated(DATA[:700])
    assert _raises(EOFError, _inflate, stream[:-1], 701)
    assert _raises(EOFError, _inflate, stream[: len(stream) // 2], 701)
    assert _raises(EOFError, _inflate, b"", 10)


def test_corrupt_data_raises_oserror():
    stream = bytearray(deflated(DATA[:700]))
    stream[0] |= 6  # block type 3 does not exist
    assert _raises(OSError, _inflate, bytes(stream), 701)


def test_a_reference_beyond_the_window_raises_oserror():
    data = DATA[:60] + b" " * 240 + DATA[:60]  # refers back 300 bytes
    stream = deflated(data, 15)  # zlib reaches back at most 262 less than 2**wbits
    assert _inflate(stream, 400)[2] == data  # a 512-byte window reaches it
    assert _raises(OSError, _inflate, stream, 400, 8)
    assert _raises(OSError, _inflate, stream, 400, 0)  # 0: 256 bytes for RAW


def test_bad_arguments():
    src = io.BytesIO(b"")
    assert _raises(ValueError, deflate.DeflateIO, src, deflate.RAW, 16)
    assert _raises(ValueError, deflate.DeflateIO, src, deflate.RAW, -1)
    assert _raises(ValueError, deflate.DeflateIO, src, 7, 9)


def test_read_close_and_round_trip():
    data = DATA[:500]
    d = deflate.DeflateIO(io.BytesIO(deflated(data)), deflate.RAW, 9)
    assert d.read(10) == data[:10]
    assert d.read() == data[10:]
    assert d.read(5) == b""
    d.close()
    assert _raises(OSError, d.read, 1)
    assert (deflate.RAW, deflate.ZLIB, deflate.GZIP, deflate.AUTO) == (1, 2, 3, 0)
