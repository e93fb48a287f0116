"""The HELLO reply: what a v2 client needs to plan an update.

Imported only when a client says HELLO (and to resume a transfer), so the
inventory code does not sit in RAM during normal operation.
"""

import binascii
import json

import ota_state
from ota_manager import FW_VERSION
from ota_setup import app_version, auth_mode, free_space


def file_crc(name, limit=-1):
    """(bytes read, CRC-32) of the first `limit` bytes of a file (all if -1).

    Reads through one small buffer, so a large file costs no RAM.
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
            n += k
    return n, crc & 0xFFFFFFFF


def _installed(name, rec):
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
    if m._mode == 2 and m._name == name:
        have = m._have
    else:
        have = ota_state.fsize(name + ".new")
        if have > size or have < 0:
            have = 0
        elif have == size and not e.get("ok"):
            have = size if "%08x" % file_crc(name + ".new")[1] == e.get("crc") else 0
    return {"size": size, "crc": e.get("crc"), "ver": e.get("ver"), "have": have}


def caps(m):
    """The compact JSON object of the HELLO reply for manager `m`."""
    st = ota_state.load()
    files = {}
    for name in sorted(m.ALLOWED_FILES):
        files[name] = _installed(name, st["files"].get(name))
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
        "enc": ["hex", "b64"],
        "auth": auth_mode(m),
        "nonce": m._nonce,
        "free": free if free >= 0 else None,
        "files": files,
        "staged": staged,
        "trial": trial,
        "rollback": st["rollback"],
    }
    return json.dumps(d, separators=(",", ":"))
