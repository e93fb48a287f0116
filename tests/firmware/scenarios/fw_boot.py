"""Boot guard: trial boots, confirmation, rollback, power cuts during restore.

Every scenario boots the real boot.py and main.py the way a board does
(boots.power_on) and updates app.py over BLE through the real peripheral.
"""

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


def test_good_update_is_confirmed():
    undo = boots.board_files_first()
    try:
        boots.write("app.py", APP_V1)
        status, p = boots.power_on()
        assert status == "normal"
        assert ping(p) == ["PONG v1"]
        assert update(p, "app.py", APP_V2)
        assert state()["trial"]["boots"] == 0
        status, p = boots.power_on()
        assert status == "trial"  # main.start() confirmed it right away
        st = state()
        assert st["trial"] is None
        assert st["rollback"] is None
        assert st["files"]["app.py"]["ver"] == "2.0.0"
        assert ping(p) == ["PONG v2"]
        caps = nus_central.hello_and_leave(p)
        assert caps["trial"] is None
        assert caps["rollback"] is None
        assert caps["files"]["app.py"]["ver"] == "2.0.0"
        status, p = boots.power_on()
        assert status == "normal"
        assert ping(p) == ["PONG v2"]
    finally:
        undo()


def crash_loop(max_boots=None):
    """Update to a version that crashes at start; boot until it is rolled back."""
    boots.write("app.py", APP_V1)
    _, p = boots.power_on()
    resets = machine.resets
    assert update(p, "app.py", APP_CRASH)
    settings = {}
    if max_boots:
        settings["MAX_TRIAL_BOOTS"] = max_boots
    seen = []
    for _ in range(10):
        status, p = boots.power_on(**settings)
        seen.append(status)
        if p != "reset":
            break
    return seen, p, machine.resets - resets


def test_crash_loop_rolled_back():
    undo = boots.board_files_first()
    try:
        seen, p, resets = crash_loop()
        # two trial boots that reset before confirming, then the rollback
        assert seen == ["trial", "trial", "rolled-back"]
        assert resets == 3  # the update's reset and two failed trial boots
        assert boots.read("app.py") == APP_V1
        assert ping(p) == ["PONG v1"]
        st = state()
        assert st["trial"] is None
        assert st["rollback"] == {"ver": "2.0.0", "restored": "1.0.0"}
        caps = nus_central.hello_and_leave(p)
        assert caps["rollback"] == {"ver": "2.0.0", "restored": "1.0.0"}
        assert caps["trial"] is None
        # the next boot is an ordinary one; HELLO keeps reporting the rollback
        status, p = boots.power_on()
        assert status == "normal"
        assert nus_central.hello_and_leave(p)["rollback"]["ver"] == "2.0.0"
    finally:
        undo()


def test_max_trial_boots_setting():
    undo = boots.board_files_first()
    try:
        seen, _, _ = crash_loop(max_boots=3)
        assert seen == ["trial", "trial", "trial", "rolled-back"]
    finally:
        undo()


def test_watchdog_resets_count_as_failed_boots():
    undo = boots.board_files_first()
    try:
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
    finally:
        undo()


def test_confirm_by_staying_up():
    undo = boots.board_files_first()
    try:
        import time

        boots.write("app.py", APP_V1)
        _, p = boots.power_on()
        assert update(p, "app.py", APP_V2)
        # an application that never calls confirm(): the peripheral's poll
        # confirms once the board has been up CONFIRM_AFTER_MS. The board's
        # start is moved back instead of sleeping: no wall-clock window.
        guard = boots.run_boot_py(CONFIRM_AFTER_MS=60000)
        assert guard.status == "trial"
        from nus_peripheral import NUSPeripheral

        p = NUSPeripheral()
        p.poll()
        assert guard.on_trial()
        assert state()["trial"]["boots"] == 1
        guard._started = time.ticks_add(time.ticks_ms(), -59000)
        p.poll()
        assert guard.on_trial()  # up 59 s: not yet
        guard._started = time.ticks_add(time.ticks_ms(), -60000)
        p.poll()
        assert not guard.on_trial()
        assert guard.status == "confirmed"
        assert state()["trial"] is None
        assert not guard.confirm()  # nothing left to confirm
    finally:
        undo()


def test_confirm_api():
    undo = boots.board_files_first()
    try:
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
    finally:
        undo()


def test_broken_state_file_still_boots():
    undo = boots.board_files_first()
    try:
        boots.write("app.py", APP_V1)
        boots.write("ota_state.json", "{not json")
        status, p = boots.power_on()
        assert status == "normal"
        assert ping(p) == ["PONG v1"]
    finally:
        undo()


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


def test_power_cut_during_rollback():
    undo = boots.board_files_first()
    try:
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
    finally:
        undo()


def test_power_cut_during_update_then_boot():
    undo = boots.board_files_first()
    try:
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
    finally:
        undo()
