"""The OTA commands that run once per file: START, FILE, COMMIT, APPLY, ABORT.

Part of OTAManager (ota_manager.py), kept in its own module so that it is
loaded only when a client starts or ends a transfer. `m` is the manager: its
settings (ALLOWED_FILES, AUTH_*, RESET_DELAY_MS), `_send`, `_feed` and the
session nonce `_nonce`; the transfer itself is `m.t`, an ota_core.Transfer.
"""

import time

import ota_data  # noqa: F401 - loaded with a transfer's setup, so streaming allocates nothing
import ota_state
from ota_core import (
    ARMED,
    COMMITTING,
    IDLE,
    NONE,
    RECEIVING,
    TMP,
    V1,
    V2,
    num,
    reason,
    remove,
)


def command(m, cmd, line):
    if cmd == "START":
        start(m, line)
    elif cmd == "FILE":
        file(m, line)
    elif cmd == "COMMIT":
        commit(m)
    elif cmd == "APPLY":
        apply(m, line)
    else:
        abort_all(m)


def begin(t, mode, f, name, size, exp, ver=None, have=0, crc=0, b64=False):
    """Transfer `t` starts (ARMED): the data goes to file `f` from `have`."""
    t.mode = mode
    t.f = f
    t.name = name
    t.ver = ver
    t.b64 = b64
    t.size = size
    t.exp = exp
    t.crc = crc
    t.have = have
    t.seq = 0
    t.sync = have + 4096
    t.nak = False
    t.done = -1
    t.state = ARMED


# -- checks shared by v1 and v2 ------------------------------------------------


def crc_field(s):
    """An 8-digit hex CRC field as an int, -1 if malformed."""
    if len(s) != 8:
        return -1
    for c in s:
        if c not in "0123456789abcdefABCDEF":
            return -1
    return int(s, 16)


def _dotted(v):
    """'1.10.2-rc1' -> [1, 10, 2]: the leading digits of each part."""
    out = []
    for part in v.split("."):
        i = 0
        while i < len(part) and "0" <= part[i] <= "9":
            i += 1
        out.append(num(part, 0, i) if i else 0)
    return out


def older(new, cur):
    """True when version `new` is older than `cur` (dotted integers)."""
    if not new or not cur:
        return False
    a = _dotted(new)
    b = _dotted(cur)
    while len(a) < len(b):
        a.append(0)
    while len(b) < len(a):
        b.append(0)
    return a < b


def _nospace(size, credit):
    free = ota_state.free_space()
    return free >= 0 and size * 5 > (free + credit) * 4


def _auth(m, nonce, given, message):
    """Check the <auth> field of FILE or APPLY against the board's mode."""
    if m.AUTH_KEY is not None:
        if nonce is None:
            return False
        import ota_auth

        return ota_auth.check(m.AUTH_KEY, nonce + message, given)
    if m.AUTH_TOKEN is not None:
        return given == m.AUTH_TOKEN
    return True


# -- protocol v1 ----------------------------------------------------------------


def start(m, line):
    """OTA:START:<file>:<size>:<crc32>[:<version>[:<chunk_size>[:<token>]]]"""
    if m.t.state != IDLE:
        m._send("OTA:REJECT:BUSY")
        return
    p = line.split(":")
    n = len(p)
    size = num(p[3], 0, len(p[3])) if n > 4 else -1
    crc = crc_field(p[4]) if n > 4 else -1
    if size < 0 or crc < 0 or (n > 6 and num(p[6], 0, len(p[6])) < 0):
        m._send("OTA:REJECT:BAD_ARGS")
        return
    if m.AUTH_TOKEN is not None:
        if ":".join(p[7:]) != m.AUTH_TOKEN:
            m._send("OTA:REJECT:AUTH")
            return
    elif m.AUTH_KEY is not None:
        m._send("OTA:REJECT:AUTH")  # v1 would bypass the key
        return
    name = p[2]
    if name not in m.ALLOWED_FILES:
        m._send("OTA:REJECT:FORBIDDEN")
        return
    if _nospace(size, 0):
        m._send("OTA:REJECT:NOSPACE")
        return
    ver = p[5] if n > 5 else ""
    if older(ver, ota_state.app_version()):
        m._send("OTA:REJECT:VERSION")
        return
    try:
        f = open(TMP, "wb")
    except OSError as e:
        m._send("OTA:ERR:WRITE:" + reason(e))
        return
    begin(m.t, V1, f, name, size, crc, ver or None)
    m._send("OTA:READY")


def commit(m):
    """OTA:COMMIT: check size and CRC, then install the v1 temp file."""
    t = m.t
    if t.mode != V1 or t.state != RECEIVING:
        m._send("OTA:ERR:NOT_RECEIVING")
        return
    f = t.f
    t.f = None
    f.close()
    if t.have != t.size:
        t.drop()
        m._send("OTA:ERR:SIZE:got=%d,exp=%d" % (t.have, t.size))
        return
    crc = t.crc & 0xFFFFFFFF
    if crc != t.exp:
        t.drop()
        m._send("OTA:ERR:CRC:got=%08x,exp=%08x" % (crc, t.exp))
        return
    install(m, [(t.name, TMP, t.ver, t.size, "%08x" % crc)])


# -- protocol v2 ----------------------------------------------------------------


def file(m, line):
    """OTA:FILE:<file>:<size>:<crc32>:<version>:<enc>:<flags>:<auth>"""
    nonce = m._nonce
    m._nonce = None  # every FILE consumes the nonce, whatever the outcome
    if m.t.state != IDLE:
        m._send("OTA:REJECT:BUSY")
        return
    p = line.split(":")
    if len(p) != 9:
        m._send("OTA:REJECT:BAD_ARGS")
        return
    name = p[2]
    size = num(p[3], 0, len(p[3]))
    crc = crc_field(p[4])
    flags = p[7]
    if (
        size < 0
        or crc < 0
        or p[6] not in ("hex", "b64")
        or not flags
        or (flags != "-" and flags.strip("f"))
    ):
        m._send("OTA:REJECT:BAD_ARGS")
        return
    if not _auth(m, nonce, p[8], "|FILE|" + "|".join(p[2:8])):
        m._send("OTA:REJECT:AUTH")
        return
    if name not in m.ALLOWED_FILES:
        m._send("OTA:REJECT:FORBIDDEN")
        return
    new = name + ".new"
    if _nospace(size, max(0, ota_state.fsize(new))):
        m._send("OTA:REJECT:NOSPACE")
        return
    st = ota_state.load()
    ver = p[5] or None
    if "f" not in flags:
        cur = st["files"].get(name)
        cur = cur.get("ver") if isinstance(cur, dict) else None
        if older(ver, cur or ota_state.app_version()):
            m._send("OTA:REJECT:VERSION")
            return
    import ota_auth

    crc_s = "%08x" % crc
    have, run = _resume(st["staged"].get(name), new, size, crc_s)
    done = have == size
    f = None
    if not done or size == 0:
        f = open(new, "ab" if have else "wb")
    st["staged"][name] = {"size": size, "crc": crc_s, "ver": ver, "ok": done}
    ota_state.save(st)
    m._nonce = ota_auth.nonce()
    m._send("OTA:READY:%d:%s" % (have, m._nonce))
    if done:
        if f is not None:
            f.close()
        m.t.done = size
        if size == 0:
            m._send("OTA:A:0")
        return
    begin(m.t, V2, f, name, size, crc, None, have, run, p[6] == "b64")


def _resume(old, new, size, crc_s):
    """(bytes to keep, their CRC) from an earlier transfer of the same file."""
    if isinstance(old, dict) and old.get("size") == size and old.get("crc") == crc_s:
        have = ota_state.fsize(new)
        if 0 < have <= size:
            have, run = ota_state.file_crc(new, have)
            if have < size or "%08x" % run == crc_s:
                return have, run
    remove(new)
    return 0, 0


def apply(m, line):
    """OTA:APPLY:<file>[,<file>...]:<auth>"""
    nonce = m._nonce
    m._nonce = None  # every APPLY consumes the nonce, whatever the outcome
    if m.t.state != IDLE:
        m._send("OTA:REJECT:BUSY")
        return
    p = line.split(":")
    names = p[2].split(",") if len(p) == 4 else ()
    if not names or "" in names or len(set(names)) != len(names):
        m._send("OTA:REJECT:BAD_ARGS")
        return
    if not _auth(m, nonce, p[3], "|APPLY|" + p[2]):
        m._send("OTA:REJECT:AUTH")
        return
    for name in names:
        if name not in m.ALLOWED_FILES:
            m._send("OTA:REJECT:FORBIDDEN")
            return
    staged = ota_state.load()["staged"]
    items = []
    for name in names:
        e = staged.get(name)
        if (
            not isinstance(e, dict)
            or not e.get("ok")
            or ota_state.fsize(name + ".new") != e.get("size")
        ):
            m._send("OTA:ERR:INCOMPLETE:" + name)
            return
        items.append((name, name + ".new", e.get("ver"), e["size"], e["crc"]))
    m.t.done = -1
    install(m, items)


# -- both -----------------------------------------------------------------------


def install(m, items):
    """Replace the files through the journal, answer OK and reset."""
    t = m.t
    t.state = COMMITTING
    m._feed()
    import ota_commit

    try:
        ota_commit.apply(items, ota_state.app_version())
    except Exception as e:
        t.drop()
        m._send("OTA:ERR:RENAME:" + reason(e))
        return
    t.mode = NONE
    m._send("OTA:OK")
    m._feed()
    time.sleep_ms(m.RESET_DELAY_MS)
    m._feed()
    import machine

    machine.reset()


def abort_all(m):
    """OTA:ABORT: drop the transfer and every staged file."""
    m.t.drop()
    m.t.done = -1
    for name in m.ALLOWED_FILES:
        remove(name + ".new")
    st = ota_state.load()
    if st["staged"]:
        for name in st["staged"]:
            remove(name + ".new")
        st["staged"] = {}
        ota_state.save(st)
    m._send("OTA:ABORTED")
