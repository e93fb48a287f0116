"""Stand-in for MicroPython's `deflate` module (decompression only) on CPython.

On MicroPython (and its WebAssembly port) the built-in module wins over this
file. It behaves as MicroPython 1.27's does, checked on the WebAssembly port:

- `DeflateIO(stream, format=AUTO, wbits=0, close=False)`; a format that is not
  one of RAW, ZLIB, GZIP, AUTO raises ValueError("format"), wbits outside
  0..15 ValueError("wbits").
- The compressed data is read from `stream.readinto` one byte at a time, only
  as far as the decoder needs: after the end of the stream, the bytes that
  follow it are left unread.
- A stream that ends too soon raises EOFError, corrupt data (a back
  reference farther than the window of 2**wbits bytes included)
  OSError(EINVAL), and so does reading after close().
- RAW with wbits 0 uses a 256-byte window. zlib has no smaller one, so wbits
  1..7 (MicroPython: windows of 2..128 bytes) mean 256 bytes here.
- `write()` compresses (AUTO means RAW; zlib's streams, not MicroPython's
  byte for byte), `close()` ends the stream.

A virtual board charges the decoder's time: it sets `decoded_sink(n)`, which
hears of every `n` bytes decoded (BoardSpeed.inflate_us_per_byte each).

zlib is stricter than MicroPython's decoder (uzlib): some invalid streams
(bad Huffman code lengths, say) that uzlib decodes into something, or reads
to the end, raise OSError here at once. Both are errors for the firmware.
"""

import errno
import zlib

AUTO = 0
RAW = 1
ZLIB = 2
GZIP = 3

_DEFAULT_WBITS = 8

decoded_sink = None  # a virtual board's: called with the bytes decoded


class DeflateIO:
    def __init__(self, stream, format=AUTO, wbits=0, close=False):  # noqa: A002
        if format not in (AUTO, RAW, ZLIB, GZIP):
            raise ValueError("format")
        if not 0 <= wbits <= 15:
            raise ValueError("wbits")
        self._stream = stream
        self._format = format
        self._wbits = wbits or _DEFAULT_WBITS
        self._close_stream = close
        self._z = None  # made at the first read, as MicroPython does
        self._c = None  # the compressor, made by the first write
        self._closed = False
        self._byte = bytearray(1)

    def _decoder(self):
        if self._z is None:
            wbits = max(self._wbits, 8)
            bits = {RAW: -wbits, ZLIB: wbits, GZIP: 16 + wbits}
            self._z = zlib.decompressobj(bits.get(self._format, 32 + 15))
        return self._z

    def readinto(self, buf):
        if self._closed:
            raise OSError(errno.EINVAL, "EINVAL")
        z = self._decoder()
        view = memoryview(buf).cast("B")
        want = len(view)
        n = 0
        pending = z.unconsumed_tail
        while n < want and not z.eof:
            try:
                # One byte at a time: zlib checks a reference against its
                # window only when it reaches back past this call's output.
                out = z.decompress(pending, 1)
            except zlib.error as e:
                raise OSError(errno.EINVAL, "EINVAL") from e
            pending = z.unconsumed_tail
            if out:
                view[n] = out[0]
                n += 1
            elif not pending and not z.eof:
                # the decoder needs more: one byte, as MicroPython reads it
                if not self._stream.readinto(self._byte):
                    raise EOFError
                pending = bytes(self._byte)
        if decoded_sink is not None and n:
            decoded_sink(n)
        return n

    def read(self, size=-1):
        if size is None or size < 0:
            chunks = []
            while True:
                chunk = self.read(256)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        buf = bytearray(size)
        return bytes(buf[: self.readinto(buf)])

    def write(self, data):
        if self._closed:
            raise OSError(errno.EINVAL, "EINVAL")
        if self._c is None:
            bits = max(self._wbits, 9)  # zlib's smallest window for raw streams
            bits = {ZLIB: bits, GZIP: 16 + bits}.get(self._format, -bits)
            self._c = zlib.compressobj(9, zlib.DEFLATED, bits)
        self._stream.write(self._c.compress(bytes(data)))
        return len(data)

    def close(self):
        if self._c is not None and not self._closed:
            self._stream.write(self._c.flush())
        self._closed = True
        if self._close_stream:
            self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
