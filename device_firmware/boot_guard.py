"""Boot guard: a freshly updated version runs on trial until it proves healthy.

boot.py calls boot() then run_main() at every start. After an update the
commit leaves a "trial" record in ota_state.json, and every start counts one
trial boot. During a trial, run_main() runs main.py itself: an exception
escaping it (at import or later, from main.py or app.py) is saved and the
board resets - on MicroPython it would otherwise stop at the REPL, where
nothing resets and Bluetooth is gone.

Healthy means: the version ran CONFIRM_AFTER_MS without an escaping
exception (poll() checks), or the program called confirm() itself. A
version started MAX_TRIAL_BOOTS times without being confirmed - it raised,
hung until the watchdog fired, or kept losing power - is rolled back: the
previous files come back from their .bak copies, and HELLO reports it in
"rollback", with the saved exception in "error".

The settings below can be changed in boot.py before it calls boot().
"""

import sys
import time

import ota_state

CONFIRM_AFTER_MS = 30000  # healthy after this long without a crash; 0: confirm() only
WDT_MS = 0  # start the hardware watchdog with this timeout; 0: no watchdog
MAX_TRIAL_BOOTS = 0  # 0: use OTAManager.MAX_TRIAL_BOOTS
RUN_MAIN = True  # during a trial run_main() runs main.py and catches its crash

NORMAL = "normal"  # no update waiting for confirmation
TRIAL = "trial"  # a new version runs on trial
CONFIRMED = "confirmed"  # the trial ended well during this run
ROLLED_BACK = "rolled-back"  # this boot restored the previous version

_JOURNAL = "ota_journal.json"  # see docs/protocol.md, "Files on the board"

status = None  # one of the above once boot() ran
wdt = None  # the machine.WDT when WDT_MS is set
_started = 0


def boot():
    """Run once at start, before main.py. Never raises."""
    global status, wdt, _started
    _started = time.ticks_ms()
    status = NORMAL
    loaded = "ota_commit" in sys.modules
    try:
        if ota_state.exists(_JOURNAL):
            import ota_commit

            ota_commit.recover()  # finish what a power cut interrupted
        st = ota_state.load()
        trial = st["trial"]
        if trial is not None:
            import boot_crash  # the rare trial code lives there

            status = boot_crash.trial_boot(st, trial, max_trial_boots())
            sys.modules.pop("boot_crash", None)  # its RAM back until needed
    except Exception as e:  # a broken state must not stop the board booting
        print("boot_guard:", repr(e))
    if not loaded:
        sys.modules.pop("ota_commit", None)  # rarely needed: give its RAM back
    if WDT_MS:
        import machine

        wdt = machine.WDT(timeout=WDT_MS)
    return status


def run_main():
    """Last line of boot.py: during a trial, run main.py here, guarded.

    MicroPython runs main.py after boot.py anyway, so outside a trial this
    returns at once. A main.py that ends before the version is confirmed
    fails the trial too: at the REPL the board could not be updated again.
    """
    if status != TRIAL or not RUN_MAIN or not ota_state.exists("main.py"):
        return
    try:
        with open("main.py") as f:
            code = compile(f.read(), "main.py", "exec")
        exec(code, {"__name__": "__main__"})
    except Exception as e:
        fail(e)
    if status == TRIAL:
        fail(RuntimeError("main.py ended before the version was confirmed"))


def fail(e):
    """The version on trial raised e: save it and reset the board.

    Outside a trial it returns, and the caller goes on as it sees fit.
    """
    if status != TRIAL:
        return
    try:
        import boot_crash

        boot_crash.save(e)
    except Exception as e2:  # even with a full flash or no RAM left: reset
        print("boot_guard:", repr(e2))
    import machine

    machine.reset()


def max_trial_boots():
    if MAX_TRIAL_BOOTS:
        return MAX_TRIAL_BOOTS
    try:
        from ota_manager import OTAManager

        return OTAManager.MAX_TRIAL_BOOTS
    except Exception:
        return 2


def on_trial():
    """True while the running version still has to prove itself."""
    if status is None:
        return ota_state.load()["trial"] is not None
    return status == TRIAL


def confirm():
    """The running version works: keep it. Cheap to call when not on trial."""
    global status
    if status not in (None, TRIAL):
        return False
    st = ota_state.load()
    if st["trial"] is None:
        status = status or NORMAL
        return False
    ver = st["trial"].get("ver")
    st["trial"] = None
    ota_state.save(st)
    ota_state.remove("ota_reserve.bin")  # trial over: the room is the user's again
    status = CONFIRMED
    print("boot_guard: version", ver, "confirmed")
    return True


def poll():
    """Call now and then: confirms once up CONFIRM_AFTER_MS, feeds the watchdog.

    Returns True while the trial is still running.
    """
    if wdt is not None:
        wdt.feed()
    if status != TRIAL:
        return False
    if (
        CONFIRM_AFTER_MS
        and time.ticks_diff(time.ticks_ms(), _started) >= CONFIRM_AFTER_MS
    ):
        confirm()
        return False
    return True


def feed():
    if wdt is not None:
        wdt.feed()
