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
_tick = None  # app.loop while it works


def _handle(line):
    try:
        return app.handle(line)
    except Exception as e:
        boot_guard.fail(e)  # on trial: saved, the board resets
        raise  # otherwise the peripheral prints it and goes on


def start():
    """Set everything up, start advertising, return the NUSPeripheral."""
    global app, _tick
    try:
        import app
    except Exception as e:
        boot_guard.fail(e)
        print("app.py failed:", repr(e))
    _tick = getattr(app, "loop", None)
    handler = _handle if getattr(app, "handle", None) else None
    return NUSPeripheral(app=handler, wdt=boot_guard.wdt)


def tick():
    """One turn of run()'s loop besides the peripheral; True while on trial."""
    global _tick
    trial = boot_guard.poll()  # feeds the watchdog, confirms after a while up
    if _tick is not None:
        try:
            _tick()
        except Exception as e:
            boot_guard.fail(e)
            print("app.loop failed:", repr(e))
            _tick = None
    return trial


def run():
    p = start()
    while True:
        busy = p.poll()
        tick()
        if not busy:
            time.sleep_ms(10)


if __name__ == "__main__":
    run()
