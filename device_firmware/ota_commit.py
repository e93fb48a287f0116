"""Replace files all together or not at all, and undo a rejected update.

A commit first writes ota_journal.json (through a .tmp file and a rename,
atomic on LittleFS) naming every file to replace and the state to record.
Each step after that can be repeated safely, so when the power goes at any
point, recover() at the next boot rolls the journal forward: the board ends
with all old files (no journal yet) or all new ones, never a mix.

rollback() undoes the trial version the same way, through a journal too.
"""

import json
import os

import ota_state
from ota_core import JOURNAL, RESERVE, RESERVE_BYTES, STATE, TMP, remove
from ota_state import exists


def _first(values):
    for v in values:
        if v:
            return v
    return None


def apply(items, app_ver=None):
    """Install staged files. items: [(target, source, ver, size, crc8hex)].

    When a step fails (an OSError, not a power cut) the old files are put
    back and the error is raised.
    """
    st = ota_state.load()
    names = [it[0] for it in items]
    prev = {}
    for name in names:
        rec = st["files"].get(name)
        prev[name] = rec if isinstance(rec, dict) else None
    j = {
        "op": "apply",
        "pairs": [[it[0], it[1]] for it in items],
        "files": {it[0]: {"size": it[3], "crc": it[4], "ver": it[2]} for it in items},
        "trial": {
            "ver": _first(it[2] for it in items),
            "prev_ver": _first(prev[n] and prev[n].get("ver") for n in names)
            or app_ver,
            "files": names,
            "added": [n for n in names if not exists(n)],
            "prev": prev,
            "boots": 0,
        },
    }
    _reserve()
    ota_state.save(j, JOURNAL)
    try:
        _forward(j)
        _finish(j)
    except Exception:
        try:
            _undo(j)
        except Exception:
            pass  # the journal stays: the next boot rolls forward
        raise


def _reserve():
    """Set room aside for the trial's boot counter (see boot_guard)."""
    block = bytes(512)
    try:
        with open(RESERVE, "wb") as f:
            for _ in range(RESERVE_BYTES // 512):
                f.write(block)
    except Exception:
        remove(RESERVE)
        raise


def _forward(j):
    for target, source in j["pairs"]:
        if exists(source):
            if exists(target):
                os.rename(target, target + ".bak")
            os.rename(source, target)


def _undo(j):
    """A step failed without a power cut: put the old files back."""
    added = j["trial"]["added"]
    for target, source in reversed(j["pairs"]):
        if not exists(source) and exists(target):
            os.rename(target, source)
        if target not in added and not exists(target) and exists(target + ".bak"):
            os.rename(target + ".bak", target)
    os.remove(JOURNAL)


def _back(j):
    """Rollback steps: restore each .bak, delete what the trial added."""
    t = j["trial"]
    for name in t["files"]:
        if name in t["added"]:
            if exists(name):
                os.remove(name)
        elif exists(name + ".bak"):
            os.rename(name + ".bak", name)


def _finish(j):
    """Record the outcome in ota_state.json, then drop the journal."""
    st = ota_state.load()
    t = j["trial"]
    files = st["files"]
    if j["op"] == "apply":
        for name, source in j["pairs"]:
            files[name] = j["files"][name]
            if source == name + ".new":
                st["staged"].pop(name, None)
        st["trial"] = t
        st["rollback"] = None
    else:
        for name in t["files"]:
            rec = t["prev"].get(name)
            if rec:
                files[name] = rec
            else:
                files.pop(name, None)
        st["trial"] = None
        st["rollback"] = {"ver": t.get("ver"), "restored": t.get("prev_ver")}
        remove(RESERVE)  # first: it makes room for the state file
    ota_state.save(st)
    try:
        os.remove(JOURNAL)
    except OSError:
        pass  # done already; rolling it forward again at boot changes nothing


def _journal():
    """The journal left by an interrupted commit or rollback, or None."""
    remove(JOURNAL + ".tmp")  # never renamed into place: nothing done
    remove(STATE + ".tmp")
    try:
        with open(JOURNAL) as f:
            j = json.loads(f.read())
        j["trial"]["files"]
        return j
    except OSError:
        return None
    except Exception:
        remove(JOURNAL)  # unreadable: cannot have been written whole
        return None


def _run(j):
    """Roll the journal forward; an update that cannot be finished (a full
    flash: OSError) is undone instead, so no journal stays for ever."""
    try:
        if j["op"] == "apply":
            _forward(j)
        else:
            _back(j)
        _finish(j)
    except OSError:
        if j["op"] != "apply":
            raise  # a rollback needs no new space: the next boot tries again
        _undo(j)


def recover():
    """The one recovery after a reset: finish an interrupted commit or
    rollback, delete temp files nothing will use (ota_core.TEMPS).

    OTAManager() calls it when ota_core.leftovers() finds work, and so may
    the boot guard; calling it again changes nothing. Returns True when a
    journal was found and rolled forward.
    """
    j = _journal()
    if j is not None:
        _run(j)  # may still need _ota_tmp: a v1 commit installs from it
    remove(TMP)  # a v1 transfer does not survive a reset
    return j is not None


def rollback():
    """Restore the files that ran before the trial version.

    Safe to call again after a power cut at any point. Returns False when
    there is no trial to undo.
    """
    j = _journal()
    if j is not None:
        _run(j)
        if j["op"] != "apply":
            return True  # finished the rollback a power cut interrupted
    trial = ota_state.load()["trial"]
    if not trial:
        return False
    j = {"op": "rollback", "trial": trial}
    ota_state.save(j, JOURNAL)
    _run(j)
    return True
