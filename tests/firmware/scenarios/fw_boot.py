"""Boot guard: trial boots, confirmation, rollback, power cuts during restore.

Every scenario boots the real boot.py and main.py the way a board does
(boots.power_on) and updates app.py over BLE through the real peripheral.
"""

import json

import boots
import fwtest
import machine
import nus_central
from nus_central import Central

APP_V1 = 'VERSION = "1.0.0"\n\n\ndef handle(line):\n    return "PONG v1"\n'
APP_V2 = (
    'VERSION = "2.0.0"\n\n\ndef handle(line):\n'
    '    return "PONG v2" if line == "PING" else None\n'
)
APP_CRASH = 'raise RuntimeError("version 2.0.0 is broken")\n'
# imports and answers, then crashes 5 s later (line 9: the misspelt name)
APP_LATE_CRASH = """import time

VERSION = "2.0.0"
_t0 = time.ticks_ms()


def loop():
    if time.ticks_diff(time.ticks_ms(), _t0) > 5000:
        print(sensr)


def handle(line):
    return "PONG v2"
"""
APP_BAD_HANDLER = 'VERSION = "2.0.0"\n\n\ndef handle(line):\n    return 1 // 0\n'
# waits for a sensor that never answers: only the watchdog gets it out
APP_HANG = """import time


def loop():
    while True:
        time.sleep_ms(100)
"""


def _fast():
    from ota_manager import OTAManager

    OTAManager.RESET_DELAY_MS = 0


def update(p, name, text, ver="2.0.0"):
    """Send one file over BLE and apply it; True when the board reset."""
    _fast()
    c = Central(p)
    nus_central.v2_send_file(c, name, text.encode(), ver=ver)
    return nus_central.v2_apply(c, [name])


def ping(p):
    c = Central(p)
    lines = c.ask("PING")
    c.disconnect()
    p.poll()
    return lines


def state():
    import ota_state

    return ota_state.load()


@boots.on_board_files
def test_good_update_is_confirmed_after_a_while_up():
    boots.write("app.py", APP_V1)
    status, p = boots.power_on()
    assert status == "normal"
    assert ping(p) == ["PONG v1"]
    assert update(p, "app.py", APP_V2)
    assert state()["trial"]["boots"] == 0
    b = boots.boot(run_ms=29000)
    assert (b.status, b.outcome) == ("trial", "running")
    assert state()["trial"]["boots"] == 1  # not confirmed yet
    assert ping(b.p) == ["PONG v2"]
    b = boots.boot(run_ms=31000)
    assert (b.status, b.outcome) == ("confirmed", "running")
    st = state()
    assert st["trial"] is None
    assert st["rollback"] is None
    assert st["files"]["app.py"]["ver"] == "2.0.0"
    caps = nus_central.hello_and_leave(b.p)
    assert caps["trial"] is None
    assert caps["rollback"] is None
    assert caps["files"]["app.py"]["ver"] == "2.0.0"
    status, p = boots.power_on()
    assert status == "normal"
    assert ping(p) == ["PONG v2"]


def rejected(name, text, run_ms=40000, **settings):
    """v1 runs; `text` replaces `name` over BLE; the boots until it settles."""
    boots.write("app.py", APP_V1)
    _, p = boots.power_on(**settings)
    assert update(p, name, text)
    return boots.until_settled(run_ms, **settings)


def outcomes(seen):
    return [(b.status, b.outcome) for b in seen]


ROLLED_BACK = [("trial", "reset"), ("trial", "reset"), ("rolled-back", "running")]


def assert_old_version_back(seen, error_type, where):
    """v1 runs again and HELLO explains the rollback: (file, line) or None."""
    assert outcomes(seen) == ROLLED_BACK, seen
    p = seen[-1].p
    assert boots.read("app.py") == APP_V1
    assert ping(p) == ["PONG v1"]
    rb = nus_central.hello_and_leave(p)["rollback"]
    assert rb["ver"] == "2.0.0"
    assert rb["restored"] == "1.0.0"
    error = rb["error"]
    assert error["type"] == error_type, error
    if where is not None:
        assert (error["file"], error["line"]) == where, error
    assert len(json.dumps(error)) <= 1024
    assert state()["trial"] is None
    return error


@boots.on_board_files
def test_main_py_that_raises_is_rolled_back():
    # MicroPython stops at the REPL when main.py raises: without the boot
    # guard running main.py itself nothing would reset, and nothing counts.
    main = boots.read_firmware("main.py")
    broken = main.replace("def start():", "def start():\n    sensr\n")
    line = broken.split("\n").index("    sensr") + 1
    seen = rejected("main.py", broken)
    error = assert_old_version_back(seen, "NameError", ("main.py", line))
    assert "sensr" in error["msg"]
    assert not fwtest.exists("main.py")  # it was added by the update


@boots.on_board_files
def test_main_py_syntax_error_is_rolled_back():
    seen = rejected("main.py", "import boot_guard\n\ndef run(:\n    pass\n")
    assert_old_version_back(seen, "SyntaxError", ("main.py", 3))


@boots.on_board_files
def test_main_py_that_ends_during_its_trial_is_rolled_back():
    # A main.py that returns leaves the board at the REPL without Bluetooth.
    seen = rejected("main.py", 'print("hello")\n')
    error = assert_old_version_back(seen, "RuntimeError", (None, None))
    assert error["msg"] == "main.py ended before the version was confirmed"


@boots.on_board_files
def test_app_crash_at_import_is_rolled_back():
    seen = rejected("app.py", APP_CRASH)
    error = assert_old_version_back(seen, "RuntimeError", ("app.py", 1))
    assert error["msg"] == "version 2.0.0 is broken"
    assert "Traceback" in error["tb"]


@boots.on_board_files
def test_app_crash_after_5_s_is_rolled_back():
    seen = rejected("app.py", APP_LATE_CRASH)
    assert_old_version_back(seen, "NameError", ("app.py", 9))


@boots.on_board_files
def test_app_handler_crash_during_trial_is_rolled_back():
    boots.write("app.py", APP_V1)
    _, p = boots.power_on()
    assert update(p, "app.py", APP_BAD_HANDLER)
    seen = []
    for _ in range(3):
        b = boots.boot()
        seen.append(b)
        if b.status != "trial":
            break
        c = Central(b.p)
        try:
            c.ask("PING")
            reset = False
        except machine.Reset:
            reset = True
        assert reset
        machine.cause = machine.SOFT_RESET
    assert [b.status for b in seen] == ["trial", "trial", "rolled-back"]
    assert (
        nus_central.hello_and_leave(seen[-1].p)["rollback"]["error"]["type"]
        == "ZeroDivisionError"
    )


@boots.on_board_files
def test_hang_with_watchdog_is_rolled_back():
    seen = rejected("app.py", APP_HANG, WDT_MS=5000)
    assert outcomes(seen) == [
        ("trial", "watchdog"),
        ("trial", "watchdog"),
        ("rolled-back", "running"),
    ], seen
    assert boots.read("app.py") == APP_V1
    rb = nus_central.hello_and_leave(seen[-1].p)["rollback"]
    assert rb["error"]["type"] == "watchdog"
    assert rb["ver"] == "2.0.0"


@boots.on_board_files
def test_crash_after_confirmation_is_not_rolled_back():
    # Once confirmed, the version stays: a later crash is a bug to fix with
    # the next update, and OTA keeps working so that it can be sent.
    seen = rejected("app.py", APP_LATE_CRASH.replace("5000", "35000"), 60000)
    assert outcomes(seen) == [("confirmed", "running")], seen
    assert nus_central.hello_and_leave(seen[-1].p)["rollback"] is None
    assert "sensr" in boots.read("app.py")


@boots.on_board_files
def test_app_that_confirms_itself():
    app = "import boot_guard\n\nboot_guard.confirm()\n" + APP_LATE_CRASH
    seen = rejected("app.py", app.replace("5000", "1000"), 3000)
    assert outcomes(seen) == [("confirmed", "running")], seen


def crash_loop(max_boots=None):
    """Update to a version that crashes at start; boot until it is rolled back."""
    boots.write("app.py", APP_V1)
    _, p = boots.power_on()
    resets = machine.resets
    assert update(p, "app.py", APP_CRASH)
    settings = {}
    if max_boots:
        settings["MAX_TRIAL_BOOTS"] = max_boots
    seen = boots.until_settled(**settings)
    return [b.status for b in seen], seen[-1].p, machine.resets - resets


@boots.on_board_files
def test_crash_loop_rolled_back():
    seen, p, resets = crash_loop()
    # two trial boots that reset before confirming, then the rollback
    assert seen == ["trial", "trial", "rolled-back"]
    assert resets == 3  # the update's reset and two failed trial boots
    assert boots.read("app.py") == APP_V1
    assert ping(p) == ["PONG v1"]
    st = state()
    assert st["trial"] is None
    assert st["rollback"]["ver"] == "2.0.0"
    assert st["rollback"]["restored"] == "1.0.0"
    caps = nus_central.hello_and_leave(p)
    assert caps["rollback"]["ver"] == "2.0.0"
    assert caps["trial"] is None
    # the next boot is an ordinary one; HELLO keeps reporting the rollback
    status, p = boots.power_on()
    assert status == "normal"
    assert nus_central.hello_and_leave(p)["rollback"]["ver"] == "2.0.0"


@boots.on_board_files
def test_max_trial_boots_setting():
    seen, _, _ = crash_loop(max_boots=3)
    assert seen == ["trial", "trial", "trial", "rolled-back"]


@boots.on_board_files
def test_watchdog_resets_count_as_failed_boots():
    boots.write("app.py", APP_V1)
    _, p = boots.power_on(WDT_MS=5000)
    import boot_guard

    wdt = boot_guard.wdt
    assert wdt.timeout == 5000
    fed = wdt.feeds
    assert ping(p) == ["PONG v1"]
    assert update(p, "app.py", APP_V2)
    assert wdt.feeds > fed  # the OTA engine fed it during the transfer
    # The new version hangs before it confirms: boot.py runs, main never
    # gets going, the watchdog resets the board. Twice, then a rollback.
    seen = []
    for _ in range(3):
        machine.cause = machine.WDT_RESET
        seen.append(boots.run_boot_py(WDT_MS=5000).status)
    assert seen == ["trial", "trial", "rolled-back"]
    machine.cause = machine.PWRON_RESET
    status, p = boots.power_on(WDT_MS=5000)
    assert status == "normal"
    assert ping(p) == ["PONG v1"]


@boots.on_board_files
def test_soft_reset_runs_boot_py_and_main_py_again():
    boots.write("app.py", APP_V1)
    b = boots.boot(run_ms=100, cause=machine.PWRON_RESET)
    assert (b.status, b.outcome) == ("normal", "running")
    b = boots.boot(run_ms=100)  # Ctrl-D: the reset cause stays
    assert (b.status, b.outcome) == ("normal", "running")
    assert machine.reset_cause() == machine.PWRON_RESET
    assert ping(b.p) == ["PONG v1"]


@boots.on_board_files
def test_confirm_by_staying_up():
    boots.write("app.py", APP_V1)
    _, p = boots.power_on()
    assert update(p, "app.py", APP_V2)
    # an application that never calls confirm(): the main loop's
    # boot_guard.poll() confirms once the board has been up 30 s
    clock = boots.clock()
    seen = {}

    def look(when):
        import boot_guard

        seen[when] = boot_guard.on_trial()

    start = clock.ms()
    clock.at(start + 29900, lambda: look("29.9 s"))
    clock.at(start + 30100, lambda: look("30.1 s"))
    b = boots.boot(run_ms=31000)
    assert seen == {"29.9 s": True, "30.1 s": False}
    assert b.status == "confirmed"
    assert state()["trial"] is None
    import boot_guard

    assert not boot_guard.confirm()  # nothing left to confirm


@boots.on_board_files
def test_confirm_api():
    boots.write("app.py", APP_V1)
    guard = boots.run_boot_py(CONFIRM_AFTER_MS=0)
    assert guard.status == "normal"
    assert not guard.on_trial()
    assert not guard.confirm()
    assert not guard.poll()
    _fast()
    from nus_peripheral import NUSPeripheral

    assert update(NUSPeripheral(), "app.py", APP_V2)
    guard = boots.run_boot_py(CONFIRM_AFTER_MS=0)
    assert guard.on_trial()
    assert guard.poll()  # still on trial: no time limit set
    assert guard.confirm()
    assert not guard.on_trial()
    assert state()["trial"] is None


@boots.on_board_files
def test_broken_state_file_still_boots():
    boots.write("app.py", APP_V1)
    boots.write("ota_state.json", "{not json")
    status, p = boots.power_on()
    assert status == "normal"
    assert ping(p) == ["PONG v1"]


def _trial_ready():
    """app.py v1 installed, v2 applied and on its last allowed trial boot."""
    fwtest.clear_dir()
    boots.write("app.py", APP_V1)
    boots.forget_modules()
    _fast()
    from nus_peripheral import NUSPeripheral

    assert update(NUSPeripheral(), "app.py", APP_V2)
    import ota_state

    st = ota_state.load()
    st["trial"]["boots"] = 2
    ota_state.save(st)


@boots.on_board_files
def test_power_cut_during_rollback():
    at = 0
    while True:
        _trial_ready()
        boots.forget_modules()
        import ota_commit
        import ota_state

        cut = fwtest.Cut(at)
        fwtest.cut_power(cut, ota_commit, ota_state)
        try:
            boots.run_boot_py(fresh=False)
            finished = True
        except fwtest.PowerCut:
            finished = False
        assert finished != cut.fired
        if finished:
            break  # the rollback got through: every step has been cut
        # power back: this boot finishes what the cut interrupted
        status, p = boots.power_on()
        assert status in ("normal", "rolled-back"), (at, status)
        assert boots.read("app.py") == APP_V1, at
        assert not fwtest.exists("ota_journal.json"), at
        st = state()
        assert st["trial"] is None, at
        assert st["rollback"] == {"ver": "2.0.0", "restored": "1.0.0"}, at
        assert ping(p) == ["PONG v1"], at
        at += 1
    assert at > 3  # the cut really landed inside the rollback
    return {"power_cut_points": at}


@boots.on_board_files
def test_power_cut_during_update_then_boot():
    at = 0
    outcomes = set()
    while True:
        fwtest.clear_dir()
        boots.write("app.py", APP_V1)
        _, p = boots.power_on()
        import ota_commit
        import ota_state

        c = Central(p)
        nus_central.v2_send_file(c, "app.py", APP_V2.encode(), ver="2.0.0")
        cut = fwtest.Cut(at)
        fwtest.cut_power(cut, ota_commit, ota_state)
        c.send("OTA:APPLY:app.py:")
        try:
            c.pump()
            reset = False
        except (fwtest.PowerCut, machine.Reset):
            reset = True
        assert reset  # the power went, or the board reset after OK
        if not cut.fired:
            break
        # the boot guard rolls the journal forward: all new or all old
        status, p = boots.power_on()
        text = boots.read("app.py")
        assert text in (APP_V1, APP_V2), at
        assert not fwtest.exists("ota_journal.json"), at
        st = state()
        if text == APP_V2:
            assert status == "trial", at
            assert ping(p) == ["PONG v2"], at
        else:
            assert status == "normal", at
            assert st["trial"] is None, at
            assert ping(p) == ["PONG v1"], at
        outcomes.add(text == APP_V2)
        at += 1
    assert outcomes == {True, False}
    return {"power_cut_points": at}
