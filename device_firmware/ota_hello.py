"""The board inventory and the HELLO reply built from it.

What a v2 client needs to plan an update: installed and staged files with
their CRCs, free space, config.VERSION. Imported when a client says HELLO or
starts a transfer (ota_setup), so it does not sit in RAM while no client
updates the board.
"""

import binascii
import json
import os

import ota_state
from ota_core import FW_VERSION, V2


def app_version():
    """The board's config.VERSION as text, or None when there is no config.py."""
    try:
        import config

        return str(config.VERSION)
    except Exception:
        return None


def free_space():
    """Free bytes on the filesystem, -1 if unknown. Slow: never per chunk."""
    try:
        s = os.statvfs("/")
        return s[0] * s[3]
    except Exception:
        return -1


def file_crc(name, limit=-1, sha=None):
    """(bytes read, CRC-32) of the first `limit` bytes of a file (all if -1).

    Reads through one small buffer, so a large file costs no RAM. The bytes
    also go into the hash object `sha` when one is given.
    """
    buf = bytearray(256)
    mv = memoryview(buf)
    crc = 0
    n = 0
    with open(name, "rb") as f:
        while limit < 0 or n < limit:
            k = f.readinto(buf)
            if not k:
                break
            if 0 <= limit < n + k:
                k = limit - n
            crc = binascii.crc32(mv[:k], crc)
            if sha is not None:
                sha.update(mv[:k])
            n += k
    return n, crc & 0xFFFFFFFF


def installed(name, rec):
    """{"size", "crc", "ver"} of an installed file, or None when it is missing."""
    try:
        size, crc = file_crc(name)
    except OSError:
        return None
    crc = "%08x" % crc
    ver = None
    # A recorded version holds only while the file is the one we installed.
    if isinstance(rec, dict) and rec.get("crc") == crc:
        ver = rec.get("ver")
    return {"size": size, "crc": crc, "ver": ver}


def _staged(m, name, e):
    size = e.get("size", 0)
    t = m.t
    if t.mode == V2 and t.name == name:
        have = t.have
    else:
        have = ota_state.fsize(name + ".new")
        if have > size or have < 0:
            have = 0
        elif have == size and not e.get("ok"):
            crc = file_crc(name + ".new")[1]
            have = size if "%08x" % crc == e.get("crc") else 0
    return {"size": size, "crc": e.get("crc"), "ver": e.get("ver"), "have": have}


def _auth_mode(m):
    if m.AUTH_KEY is not None:
        return "hmac"
    if m.AUTH_TOKEN is not None:
        return "token"
    return "none"


def caps(m, challenge=""):
    """The compact JSON object of the HELLO reply for manager `m`.

    With a key and a client's challenge (`OTA:HELLO:<challenge>`, 16 to 64
    lower-case hex digits) it ends with "sig": the HMAC of
    "<challenge>|HELLO|<the JSON without sig>", so a client can trust what
    the board says (a rollback, say) even through a relay.
    """
    st = ota_state.load()
    files = {}
    for name in sorted(m.ALLOWED_FILES):
        files[name] = installed(name, st["files"].get(name))
    staged = {}
    for name, e in st["staged"].items():
        if isinstance(e, dict):
            staged[name] = _staged(m, name, e)
    trial = st["trial"]
    if trial is not None:
        trial = {"ver": trial.get("ver"), "boots": trial.get("boots", 0)}
    free = free_space()
    d = {
        "proto": 2,
        "fw": FW_VERSION,
        "app": app_version(),
        "win": m.WINDOW,
        "line": m.LINE_MAX,
        "enc": ["hex", "b64", "bin"] if m.frames else ["hex", "b64"],
        "auth": _auth_mode(m),
        "hash": "sha256",
        "nonce": m._nonce,
        "free": free if free >= 0 else None,
        "files": files,
        "staged": staged,
        "trial": trial,
        "rollback": st["rollback"],
    }
    if m.frames:
        d["fwin"] = m.FRAME_WINDOW
        d["fmax"] = m.FRAME_MAX
        if _has_deflate():
            d["deflate"] = {"wbits": m.DEFLATE_WBITS, "max": m.DEFLATE_MAX}
    s = json.dumps(d, separators=(",", ":"))
    if m.AUTH_KEY is not None and _challenge_ok(challenge):
        import ota_auth

        mac = ota_auth.hmac_sha256(m.AUTH_KEY, challenge + "|HELLO|" + s)
        s = s[:-1] + ',"sig":"' + binascii.hexlify(mac).decode() + '"}'
    return s


def _has_deflate():
    """True when this MicroPython can decompress (deflate, since 1.21)."""
    try:
        import deflate

        return hasattr(deflate, "DeflateIO")
    except ImportError:
        return False


def _challenge_ok(c):
    if not 16 <= len(c) <= 64:
        return False
    for ch in c:
        if ch not in "0123456789abcdef":
            return False
    return True
