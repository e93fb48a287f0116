"""The OTA commands that run once per file: START, FILE, COMMIT, APPLY, ABORT.

Part of OTAManager (ota_manager.py), kept in its own module so that it is
loaded only when a client starts or ends a transfer. `m` is the manager: its
settings (ALLOWED_FILES, AUTH_*, RESET_DELAY_MS), `_send`, `_feed` and the
session nonce `_nonce`; the transfer itself is `m.t`, an ota_core.Transfer.
"""

import ota_data  # noqa: F401 - loaded with a transfer's setup, so streaming allocates nothing
import ota_hello  # the board inventory: free space, config.VERSION, file CRCs
import ota_state
from ota_core import (
    ARMED,
    COMMITTING,
    IDLE,
    RECEIVING,
    RESERVE_BYTES,
    TMP,
    V1,
    V2,
    num,
    reason,
    remove,
)

# Free bytes a commit needs beyond the staged files (see _nospace): three
# 4 KB blocks for journal and state, and the room set aside for the trial.
COMMIT_RESERVE = 3 * 4096 + RESERVE_BYTES


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
        abort_all(m, line)


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
    """'v1.10.2-rc1' -> [1, 10, 2]: the leading digits of each part after an
    optional v/V; None when no part starts with a digit (nothing to compare)."""
    if v[:1] in ("v", "V"):
        v = v[1:]
    out = []
    digits = False
    for part in v.split("."):
        i = 0
        while i < len(part) and "0" <= part[i] <= "9":
            i += 1
        out.append(num(part, 0, i) if i else 0)
        digits = digits or i > 0
    return out if digits else None


def older(new, cur):
    """True when version `new` is older than `cur` (dotted integers).

    False, so the update goes ahead, when either has nothing to compare: no
    version, or text without digits (v1 allowed what it could not parse).
    """
    if not new or not cur:
        return False
    a = _dotted(new)
    b = _dotted(cur)
    if a is None or b is None:
        return False
    while len(a) < len(b):
        a.append(0)
    while len(b) < len(a):
        b.append(0)
    return a < b


def bad_version(v):
    """True for a version HELLO could not report back: longer than 64
    characters, or holding a character outside printable ASCII or one of
    the separators `:` `,` `|` (docs/protocol.md, "Versions")."""
    if len(v) > 64:
        return True
    for c in v:
        if c < " " or c > "~" or c in ":,|":
            return True
    return False


def _nospace(size, credit):
    """True when `size` more bytes (+20 %) would eat the commit's reserve.

    A commit needs COMMIT_RESERVE free bytes beyond the staged files: the
    journal and the state file written twice (.tmp and rename) - LittleFS
    writes each to a fresh 4 KB block - and the reserve that lets a trial
    count its boots on a full flash (ota_core.RESERVE).
    """
    free = ota_hello.free_space()
    return free >= 0 and size * 5 > (free + credit - COMMIT_RESERVE) * 4


def sha_field(s):
    """A SHA-256 field: 64 lower-case hex digits, or None if malformed."""
    if len(s) != 64 or s.strip("0123456789abcdef"):
        return None
    return s


def _claim(m, line):
    """The opening of FILE and APPLY: (nonce, fields), or None once BUSY is sent.

    Neither starts while a transfer runs.
    """
    nonce = m._nonce
    m._nonce = None  # every FILE and APPLY consumes the nonce, whatever the outcome
    if m.t.state != IDLE:
        m._send("OTA:REJECT:BUSY")
        return None
    return nonce, line.split(":")


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
    ver = p[5] if n > 5 else ""
    token = ":".join(p[7:])
    if n == 7 and num(p[6], 0, len(p[6])) < 0:
        token = p[6]  # <version>:<token>, the form the v1 clients send
    elif n > 6 and num(p[6], 0, len(p[6])) < 0:
        size = -1  # <chunk_size> must be a number
    if size < 0 or crc < 0 or bad_version(ver):
        m._send("OTA:REJECT:BAD_ARGS")
        return
    if m.AUTH_TOKEN is not None:
        if token != m.AUTH_TOKEN:
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
    if older(ver, ota_hello.app_version()):
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
    """OTA:FILE:<file>:<size>:<crc32>:<version>:<enc>:<flags>[:<sha256>]:<auth>"""
    claimed = _claim(m, line)
    if claimed is None:
        return
    nonce, p = claimed
    n = len(p)
    sha = sha_field(p[8]) if n == 10 else None
    if n != 9 and sha is None:
        m._send("OTA:REJECT:BAD_ARGS")
        return
    name = p[2]
    size = num(p[3], 0, len(p[3]))
    crc = crc_field(p[4])
    flags = p[7]
    if (
        size < 0
        or crc < 0
        or p[6] not in (("hex", "b64", "bin") if m.frames else ("hex", "b64"))
        or not flags
        or (flags != "-" and flags.strip("f"))
        or bad_version(p[5])
    ):
        m._send("OTA:REJECT:BAD_ARGS")
        return
    # With a key the MAC must cover the content: a FILE without SHA-256 fails.
    if (m.AUTH_KEY is not None and sha is None) or not _auth(
        m, nonce, p[n - 1], "|FILE|" + "|".join(p[2 : n - 1])
    ):
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
        if older(ver, cur or ota_hello.app_version()):
            m._send("OTA:REJECT:VERSION")
            return
    import ota_auth

    crc_s = "%08x" % crc
    have, run, h = _resume(st["staged"].get(name), new, size, crc_s, sha)
    done = have == size
    f = None
    if not done or size == 0:
        f = open(new, "ab" if have else "wb")
    e = {"size": size, "crc": crc_s, "ver": ver, "ok": done}
    if sha is not None:
        e["sha"] = sha
    st["staged"][name] = e
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
    m.t.sha = h
    m.t.want = sha
    if p[6] == "bin":
        try:
            import ota_inflate  # loaded now: streaming allocates only the decoder

            ota_inflate.prepare(m, m.t)
        except Exception:  # missing, or no heap to load it: no deflated frames
            m.t.z = None


def _resume(old, new, size, crc_s, sha):
    """(bytes to keep, their CRC, their SHA-256 object) from an earlier transfer.

    The hash object is None when FILE carried no SHA-256. A hash state cannot
    be saved across a reset (MicroPython's hashlib cannot export it), so the
    bytes kept on flash are hashed again (cost: firmware README, Memory).
    """
    if (
        isinstance(old, dict)
        and old.get("size") == size
        and old.get("crc") == crc_s
        and old.get("sha") == sha
    ):
        have = ota_state.fsize(new)
        if 0 < have <= size:
            h = ota_state.new_hash(sha)
            have, run = ota_hello.file_crc(new, have, h)
            if have < size or ("%08x" % run == crc_s and ota_state.hash_is(h, sha)):
                return have, run, h
    remove(new)
    return 0, 0, ota_state.new_hash(sha)


def apply(m, line):
    """OTA:APPLY:<file>[,<file>...]:<auth>"""
    claimed = _claim(m, line)
    if claimed is None:
        return
    nonce, p = claimed
    names = p[2].split(",") if len(p) == 4 else ()
    if not names or "" in names or len(set(names)) != len(names):
        m._send("OTA:REJECT:BAD_ARGS")
        return
    staged = ota_state.load()["staged"]
    message = "|APPLY|" + p[2]
    if m.AUTH_KEY is not None:  # the MAC covers the hashes FILE recorded
        message += "|" + ",".join(_recorded_sha(staged.get(n)) for n in names)
    if not _auth(m, nonce, p[3], message):
        m._send("OTA:REJECT:AUTH")
        return
    for name in names:
        if name not in m.ALLOWED_FILES:
            m._send("OTA:REJECT:FORBIDDEN")
            return
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
    if _nospace(0, 0):  # the flash filled up since FILE
        m._send("OTA:REJECT:NOSPACE")
        return
    m.t.done = -1
    install(m, items)


def _recorded_sha(e):
    sha = e.get("sha") if isinstance(e, dict) else None
    return sha if isinstance(sha, str) else "-"


# -- both -----------------------------------------------------------------------


def install(m, items):
    """Replace the files through the journal, answer OK and reset."""
    t = m.t
    t.state = COMMITTING
    m._feed()
    import ota_commit

    try:
        ota_commit.apply(items, ota_hello.app_version())
    except Exception as e:
        t.drop()
        m._send("OTA:ERR:RENAME:" + reason(e))
        return
    m._send("OTA:OK")
    m._reset()
    m._reboot()


def abort_all(m, line):
    """OTA:ABORT[:<auth>]: drop the transfer and every staged file.

    With a key, staged files go only with the MAC of "<nonce>|ABORT". Without
    it ABORT does what a disconnect does (the transfer under way stops, staged
    files stay) and answers REJECT:AUTH while staged files remain; with
    nothing staged it answers ABORTED, as v1 clients expect.
    """
    m.t.drop()
    m.t.done = -1
    st = ota_state.load()
    if m.AUTH_KEY is not None:
        nonce = m._nonce
        m._nonce = None  # a signed command consumes the nonce
        if not _auth(m, nonce, line[10:], "|ABORT"):
            m._send("OTA:REJECT:AUTH" if st["staged"] else "OTA:ABORTED")
            return
    for name in m.ALLOWED_FILES:
        remove(name + ".new")
    if st["staged"]:
        for name in st["staged"]:
            remove(name + ".new")
        st["staged"] = {}
        ota_state.save(st)
    m._send("OTA:ABORTED")
