"""The data path: v1 DATA, v2 D lines and binary frames, run for every chunk.

Part of OTAManager (ota_manager.py), which calls data(), d() or frame() only while a
transfer of that protocol runs; ota_setup.begin() loaded this module before
READY, so streaming allocates nothing but the decoded chunk and the reply
(deflated frames: ota_inflate, loaded by FILE too).
`m` is the manager, `m.t` the transfer (ota_core.Transfer).
"""

import binascii

import ota_state
from ota_core import BIG, FRAME, FRAME_HEAD, IDLE, NONE, RECEIVING, num, reason, remove


def data(m, line):
    """v1 OTA:DATA:<seq>:<hex>, stop-and-wait."""
    t = m.t
    j = line.find(":", 9)
    if j < 0:
        j = len(line)
    seq = num(line, 9, j)
    if seq < 0:
        m._send("OTA:ERR:BAD_SEQ")
        return
    if seq != t.seq:
        if seq == t.seq - 1:
            m._send("OTA:ACK:%d" % seq)  # the client missed this ACK
        elif seq == BIG:
            m._send("OTA:ERR:" + line[9:j])
        else:
            m._send("OTA:ERR:%d" % seq)
        return
    try:
        chunk = binascii.unhexlify(line[j + 1 :])
    except Exception:
        chunk = b""
    if not chunk:
        m._send("OTA:ERR:BAD_DATA:%d" % seq)
        return
    room = t.size - t.have
    try:
        if room > 0:
            t.f.write(chunk if len(chunk) <= room else chunk[:room])
    except OSError as e:
        t.drop()
        m._send("OTA:ERR:WRITE:" + reason(e))
        return
    m._feed()
    # Bytes past the announced size are counted, not stored: COMMIT
    # then reports the size error a v1 board would.
    t.crc = binascii.crc32(chunk, t.crc)
    t.have += len(chunk)
    t.seq = seq + 1
    t.state = RECEIVING
    m._send("OTA:ACK:%d" % seq)


def d(m, line):
    """v2 OTA:D:<offset>:<payload>, windowed with cumulative ACKs."""
    t = m.t
    j = line.find(":", 6)
    off = num(line, 6, j) if j > 0 else -1
    if off < 0:
        m._send("OTA:ERR:BAD_SEQ")
        return
    if not _at(m, t, off):
        return
    n = len(line) - j - 1
    chunk = None
    if 0 < n and len(line) < m.LINE_MAX:
        try:
            if t.b64:
                chunk = binascii.a2b_base64(line[j + 1 :])
                # the decoder skips stray characters: demand the exact length
                if n % 4:
                    n = -1
                else:
                    n = n // 4 * 3 - (line[-1] == "=") - (line[-2] == "=")
            else:
                chunk = binascii.unhexlify(line[j + 1 :])
                n = n // 2
        except Exception:
            chunk = None
    if not chunk or len(chunk) != n:
        n = -1
    _store(m, t, off, chunk, n)


def frame(m, f):
    """v2 binary frame (memoryview): 0xFF, <len:u16le>, <offset:u32le>, <payload>;
    or 0xFE, <len:u16le>, <offset:u32le>, <count:u16le>, <deflated payload>."""
    t = m.t
    off = f[3] | f[4] << 8 | f[5] << 16 | f[6] << 24
    if not _at(m, t, off):
        return
    if f[0] == FRAME:
        n = len(f) - FRAME_HEAD
        chunk = f[FRAME_HEAD:] if n == f[1] | f[2] << 8 else None
    elif t.z is None:  # not a `bin` transfer, or a board that cannot inflate
        chunk = None
    else:
        import ota_inflate  # loaded by FILE already

        chunk = ota_inflate.inflate(m, t, f)
    _store(m, t, off, chunk, -1 if chunk is None else len(chunk))


def _at(m, t, off):
    """True when data at `off` is the next the transfer needs; else answer A or N."""
    have = t.have
    if off == have:
        t.nak = False
        return True
    if off < have:
        m._send("OTA:A:%d" % have)
    elif not t.nak:
        t.nak = True  # one N per gap, then silence
        m._send("OTA:N:%d" % have)
    return False


def _store(m, t, off, chunk, n):
    """Write the `n` decoded bytes at `off` (= t.have); n < 1 means undecodable."""
    have = t.have
    if n < 1 or have + n > t.size:
        m._send("OTA:ERR:BAD_DATA:%d" % off)
        return
    try:
        t.f.write(chunk)
        have += n
        if have >= t.sync:
            t.f.flush()  # so a reset keeps what arrived (resume)
            t.sync = have + 4096
    except OSError as e:
        discard(t)
        m._send("OTA:ERR:WRITE:" + reason(e))
        return
    m._feed()
    t.crc = binascii.crc32(chunk, t.crc)
    if t.sha is not None:
        t.sha.update(chunk)
    t.have = have
    t.state = RECEIVING
    if have == t.size:
        complete(m)
    else:
        m._send("OTA:A:%d" % have)


def complete(m):
    """The last byte of a v2 file arrived: check CRC and SHA-256, stage the file."""
    t = m.t
    name = t.name
    crc = t.crc & 0xFFFFFFFF
    f = t.f
    t.f = None
    t.mode = NONE
    t.state = IDLE
    sha = t.sha
    t.sha = None
    t.z = None
    f.close()
    st = ota_state.load()
    if crc != t.exp or not ota_state.hash_is(sha, t.want):
        remove(name + ".new")
        st["staged"].pop(name, None)
        ota_state.save(st)
        if crc != t.exp:
            m._send("OTA:ERR:CRC:got=%08x,exp=%08x" % (crc, t.exp))
        else:
            m._send("OTA:ERR:HASH:" + name)  # not the content the MAC signed
        return
    e = st["staged"].get(name)
    if isinstance(e, dict):
        e["ok"] = True
        ota_state.save(st)
    t.done = t.size
    m._send("OTA:A:%d" % t.size)


def discard(t):
    """Drop transfer `t` and its staged data (a flash error)."""
    name = t.name
    t.drop()
    remove(name + ".new")
    st = ota_state.load()
    if st["staged"].pop(name, None) is not None:
        ota_state.save(st)
