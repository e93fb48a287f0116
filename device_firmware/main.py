"""Demo: BLE UART (NUS) with OTA updates, rollback protection and a tiny app.

app.py may define handle(line) (replies to lines that are not OTA traffic)
and loop() (called every turn of the main loop). During a trial an exception
from either reaches the boot guard, which saves it and resets the board; the
old version comes back after MAX_TRIAL_BOOTS tries. Once confirmed, a broken
app stops but OTA keeps working, so a fixed app.py can be sent.
"""

import time

import boot_guard
from nus_peripheral import NUSPeripheral

app = None


def _handle(line):
    try:
        return app.handle(line)
    except Exception as e:
        boot_guard.fail(e)  # on trial: saved, the board resets
        raise  # otherwise the peripheral prints it and goes on


def start():
    """Set everything up, start advertising, return the NUSPeripheral."""
    global app
    try:
        import app
    except Exception as e:
        boot_guard.fail(e)
        print("app.py failed:", repr(e))
    handler = _handle if getattr(app, "handle", None) else None
    return NUSPeripheral(app=handler, wdt=boot_guard.wdt)


def run():
    p = start()
    tick = getattr(app, "loop", None)
    while True:
        busy = p.poll()
        boot_guard.poll()  # feeds the watchdog, confirms after a while up
        if tick is not None:
            try:
                tick()
            except Exception as e:
                boot_guard.fail(e)
                print("app.loop failed:", repr(e))
                tick = None
        if not busy:
            time.sleep_ms(10)


if __name__ == "__main__":
    run()
