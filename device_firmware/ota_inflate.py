"""Deflated data frames (0xFE, HELLO `deflate`): the file bytes one holds.

Part of the data path (ota_data.frame), loaded by FILE for a `bin` transfer.
Each frame is one raw deflate stream (docs/protocol.md) that must expand to
exactly <count> file bytes; ota_data then stores them as it stores a plain
frame's payload, so acknowledgements, CRC-32 and SHA-256 are the same.

Memory: FILE of a `bin` transfer makes the transfer's buffers (prepare(),
so a stream allocates no more than a plain one but for the decoder): the
output, DEFLATE_MAX + 1 bytes, and a BytesIO as long as the longest frame;
they go with the transfer. Per frame only deflate.DeflateIO allocates: its
window (2**DEFLATE_WBITS bytes) and decoder state (1.9 KB in all at 9 bits
on MicroPython 1.27), plus two memoryview slices.
DeflateIO reads its input one byte per call: through a Python readinto()
over the frame that cost 25 times the CPU of a BytesIO (2.8 against 0.11 ms
per KB on the WebAssembly port), so each frame is copied into the transfer's
BytesIO, which allocates nothing.
"""

import io

from ota_core import ZFRAME_HEAD


def prepare(m, t):
    """Buffers for the deflated frames of transfer `t`; none when this
    MicroPython cannot inflate (no deflate module: since 1.21)."""
    t.z = None
    try:
        import deflate

        t.z = (
            memoryview(bytearray(m.DEFLATE_MAX + 1)),
            io.BytesIO(bytearray(m.FRAME_MAX)),
            deflate.DeflateIO,
            deflate.RAW,
        )
    except Exception:  # none, or not a working one
        pass


def inflate(m, t, f):
    """The file bytes of deflated frame `f` (a memoryview of the transfer's
    buffer), or None when they are not exactly the <count> its header says.
    The transfer has its buffers (t.z, from prepare())."""
    count = f[7] | f[8] << 8
    n = len(f)
    if not 0 < count <= m.DEFLATE_MAX or f[1] | f[2] << 8 != n - ZFRAME_HEAD:
        return None
    out, src, decoder, raw = t.z
    src.seek(0)
    src.write(f)
    src.seek(ZFRAME_HEAD)
    try:
        # one byte more than count: a stream that holds more fills it
        got = decoder(src, raw, m.DEFLATE_WBITS).readinto(out[: count + 1])
    except (OSError, EOFError, ValueError):  # corrupt, cut short, bad window
        return None
    except MemoryError:  # no heap for the window: BAD_DATA, the client goes plain
        return None
    # The stream must fill the frame to its end, and not beyond: read on, it
    # would have read what an earlier frame left in `src`.
    if got != count or src.tell() != n:
        return None
    return out[:count]
