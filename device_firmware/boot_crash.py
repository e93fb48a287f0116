"""The boot guard's trial code: counting trial boots, and why a version failed.

Imported only during a trial boot or when a version on trial raises
(boot_guard.fail), so it costs no RAM otherwise. A failed trial's exception
is saved before the board resets. The record goes into the trial in
ota_state.json; when the version is rolled back, HELLO reports it in
"rollback" as "error":

    {"type": "NameError", "msg": "name 'sensr' isn't defined",
     "file": "app.py", "line": 12, "tb": "Traceback (most recent call last):..."}

"tb" keeps the last TB_MAX characters of the traceback (the innermost calls).
"""

import sys

import ota_state

TB_MAX = 800
MSG_MAX = 160
_WDT_RESET = 3  # machine.WDT_RESET on an ESP32
_RESERVE = "ota_reserve.bin"  # room a commit set aside for counting trial boots


def trial_boot(st, trial, max_boots):
    """Count a trial boot, or roll back after max_boots; the guard's status."""
    boots = trial.get("boots")
    if boots and _reset_cause() == _WDT_RESET:
        trial["error"] = {"type": "watchdog", "msg": "hung: not fed"}
    if not isinstance(boots, int) or boots >= max_boots:
        print("boot_guard: rolling back", trial.get("ver"))
        import ota_commit

        ota_commit.rollback()
        _explain(trial.get("error"))
        return "rolled-back"
    trial["boots"] = boots + 1
    try:
        ota_state.save(st)
    except OSError:  # a full flash: use the room the commit set aside
        ota_state.remove(_RESERVE)
        ota_state.save(st)
    return "trial"


def _reset_cause():
    try:
        import machine

        return machine.reset_cause()
    except Exception:
        return 0


def _explain(error):
    """Add the saved crash of the rejected version to the rollback record."""
    if error:
        st = ota_state.load()
        if st["rollback"] is not None:
            st["rollback"]["error"] = error
            ota_state.save(st)


def traceback_text(e):
    try:
        import io

        buf = io.StringIO()
        sys.print_exception(e, buf)
        return buf.getvalue()
    except AttributeError:  # CPython
        import traceback

        return "".join(traceback.format_exception(type(e), e, e.__traceback__))


def where(tb):
    """(file, line) of the innermost 'File "x", line n' of a traceback."""
    i = tb.rfind('File "')
    if i < 0:
        return None, None
    j = tb.find('"', i + 6)
    name = tb[i + 6 : j]
    name = name[name.rfind("/") + 1 :]
    k = tb.find("line ", j)
    n = k + 5
    while n < len(tb) and "0" <= tb[n] <= "9":
        n += 1
    line = int(tb[k + 5 : n]) if k > 0 and n > k + 5 else None
    return name, line


def record(e):
    tb = traceback_text(e)
    print(tb)  # what MicroPython would have printed at the REPL
    name, line = where(tb)
    msg = getattr(e, "msg", None) or str(e)  # CPython: SyntaxError without the place
    return {
        "type": type(e).__name__,
        "msg": msg[:MSG_MAX],
        "file": name,
        "line": line,
        "tb": tb[-TB_MAX:],
    }


def save(e):
    rec = record(e)
    st = ota_state.load()
    if st["trial"] is not None:
        st["trial"]["error"] = rec
        ota_state.save(st)
    return rec
