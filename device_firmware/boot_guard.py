"""Boot guard: a freshly updated version runs on trial until it proves healthy.

boot.py calls boot() at every start. After an update the commit leaves a
"trial" record in ota_state.json, and every start counts one trial boot.
The application ends the trial with confirm() (main.py does it once the app
has loaded), or poll() ends it once the board has stayed up CONFIRM_AFTER_MS.
A version started MAX_TRIAL_BOOTS times without being confirmed - it crashed
and reset, hung until the watchdog fired, or kept losing power - is rolled
back: the previous files come back from their .bak copies, and HELLO reports
it in "rollback".

The settings below can be changed in boot.py before it calls boot().
"""

import sys
import time

import ota_state

CONFIRM_AFTER_MS = 60000  # confirm after this long up; 0: only confirm() does
WDT_MS = 0  # start the hardware watchdog with this timeout; 0: no watchdog
MAX_TRIAL_BOOTS = 0  # 0: use OTAManager.MAX_TRIAL_BOOTS

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
            boots = trial.get("boots")
            if not isinstance(boots, int) or boots >= max_trial_boots():
                print("boot_guard: rolling back", trial.get("ver"))
                import ota_commit

                ota_commit.rollback()
                status = ROLLED_BACK
            else:
                trial["boots"] = boots + 1
                ota_state.save(st)
                status = TRIAL
    except Exception as e:  # a broken state must not stop the board booting
        print("boot_guard:", repr(e))
    if not loaded:
        sys.modules.pop("ota_commit", None)  # rarely needed: give its RAM back
    if WDT_MS:
        import machine

        wdt = machine.WDT(timeout=WDT_MS)
    return status


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
