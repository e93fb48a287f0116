"""What the OTA manager remembers across resets: ota_state.json.

The boot guard keeps this module loaded: keep it small (the board inventory,
file CRCs, free space and config.VERSION, is in ota_hello).

The file is rewritten whole through `ota_state.json.tmp` and a rename, which
is atomic on LittleFS, so a power cut leaves either the old or the new state.
A missing or unreadable file reads as the empty state below.

Schema (every key is always present after load()):

    {
      "files":  {"<file>": {"size": n, "crc": "8hex", "ver": "1.2.0" | null}},
                installed files as recorded by the last commit or rollback;
                the version is trusted only while the file's CRC still matches.
      "staged": {"<file>": {"size": n, "crc": "8hex", "ver": "..." | null,
                            "ok": bool}},
                v2 transfers; the bytes live in "<file>.new", "ok" is true
                once all bytes arrived and the CRC matched.
      "trial":  null | {
                  "ver": "<new version>" | null,
                  "prev_ver": "<version that ran before>" | null,
                  "files": ["<file>", ...],      # replaced by the commit
                  "added": ["<file>", ...],      # did not exist before
                  "prev": {"<file>": {"size", "crc", "ver"} | null},
                  "boots": 0                     # the boot guard counts resets
                }
                written by the commit; the new files run on trial until the
                application confirms them (the boot guard clears "trial").
      "rollback": null | {"ver": "<rejected>", "restored": "<running>"}
                written by ota_commit.rollback(), cleared by the next commit.
    }
"""

import binascii
import json
import os

from ota_core import STATE, remove


def load():
    try:
        with open(STATE) as f:
            d = json.loads(f.read())
    except (OSError, ValueError):
        d = None
    if not isinstance(d, dict):
        d = {}
    for key in ("files", "staged"):
        if not isinstance(d.get(key), dict):
            d[key] = {}
    for key in ("trial", "rollback"):
        if not isinstance(d.get(key), dict):
            d[key] = None
    return d


def save(d, name=STATE):
    """Write d as JSON to name through name.tmp and a rename (atomic)."""
    tmp = name + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(d))
        os.rename(tmp, name)
    except Exception:
        remove(tmp)
        raise


def new_hash(want):
    """A SHA-256 object when FILE announced a hash (`want`), else None."""
    if want is None:
        return None
    import hashlib

    return hashlib.sha256()


def hash_is(h, want):
    """True when hash object h (finished by this call) has the hex digest want.

    Also True when there is nothing to check (no hash was announced).
    """
    if h is None:
        return want is None
    return binascii.hexlify(h.digest()).decode() == want


def fsize(name):
    """Size of a file, or -1 when it does not exist."""
    try:
        return os.stat(name)[6]
    except OSError:
        return -1


def exists(name):
    return fsize(name) >= 0
