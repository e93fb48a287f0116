"""The HELLO reply: what a v2 client needs to plan an update.

Imported only when a client says HELLO, so the inventory code does not sit
in RAM during normal operation.
"""

import json

import ota_state
from ota_core import FW_VERSION, V2


def _installed(name, rec):
    try:
        size, crc = ota_state.file_crc(name)
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
            crc = ota_state.file_crc(name + ".new")[1]
            have = size if "%08x" % crc == e.get("crc") else 0
    return {"size": size, "crc": e.get("crc"), "ver": e.get("ver"), "have": have}


def _auth_mode(m):
    if m.AUTH_KEY is not None:
        return "hmac"
    if m.AUTH_TOKEN is not None:
        return "token"
    return "none"


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
    free = ota_state.free_space()
    d = {
        "proto": 2,
        "fw": FW_VERSION,
        "app": ota_state.app_version(),
        "win": m.WINDOW,
        "line": m.LINE_MAX,
        "enc": ["hex", "b64"],
        "auth": _auth_mode(m),
        "hash": "sha256",
        "nonce": m._nonce,
        "free": free if free >= 0 else None,
        "files": files,
        "staged": staged,
        "trial": trial,
        "rollback": st["rollback"],
    }
    return json.dumps(d, separators=(",", ":"))
