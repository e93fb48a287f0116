"""The demo firmware as a board runs it: boot.py, main.py, app.py."""

import boots
import machine
import nus_central
from nus_central import Central


class StopLoopError(Exception):
    pass


def test_demo_answers_ping_and_version():
    status, p = boots.power_on()
    assert status == "normal"
    import config

    c = Central(p)
    assert c.ask("PING") == ["PONG"]
    assert c.ask("VERSION") == ["VERSION:" + config.VERSION]
    assert c.ask("something else") == []
    assert c.ask("OTA:ABORT") == ["OTA:ABORTED"]
    assert p.name.startswith("ESP32-OTA-")


@boots.on_board_files
def test_demo_keeps_ota_working_when_app_py_is_broken():
    boots.write("app.py", "def handle(line:\n")
    status, p = boots.power_on()
    assert status == "normal"  # not on trial: keep running, without the app
    c = Central(p)
    assert c.ask("PING") == []
    assert nus_central.hello(c)["proto"] == 2
    from ota_manager import OTAManager

    OTAManager.RESET_DELAY_MS = 0
    fixed = b'def handle(line):\n    return "PONG fixed"\n'
    nus_central.v2_send_file(c, "app.py", fixed, ver="1.0.1")
    assert nus_central.v2_apply(c, ["app.py"])
    b = boots.boot(run_ms=31000)  # healthy: up 30 s without a crash
    assert (b.status, b.outcome) == ("confirmed", "running")
    assert Central(b.p).ask("PING") == ["PONG fixed"]


@boots.on_board_files
def test_demo_broken_app_on_trial_resets():
    _, p = boots.power_on()
    from ota_manager import OTAManager

    OTAManager.RESET_DELAY_MS = 0
    c = Central(p)
    nus_central.v2_send_file(c, "app.py", b"1 / 0\n", ver="1.0.1")
    assert nus_central.v2_apply(c, ["app.py"])
    resets = machine.resets
    status, p = boots.power_on()
    assert status == "trial"
    assert p == "reset"
    assert machine.resets == resets + 1


def test_demo_main_loop():
    guard = boots.run_boot_py(WDT_MS=3000)
    import main

    class Clock:
        """Stands in for `time` in main.py: connects a central, then stops."""

        def __init__(self):
            self.sleeps = 0
            self.central = None

        def sleep_ms(self, ms):
            self.sleeps += 1
            if self.sleeps == 1:
                self.central = Central(None)
                self.central.send("PING")
                self.central.send("VERSION")
            elif self.sleeps == 3:
                raise StopLoopError

    clock = Clock()
    main.time = clock
    try:
        main.run()
        stopped = False
    except StopLoopError:
        stopped = True
    assert stopped
    assert clock.central.take() == ["PONG", "VERSION:1.0.0"]
    assert guard.wdt.feeds >= 4  # every loop turn feeds the watchdog
