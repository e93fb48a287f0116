"""Demo: BLE UART (NUS) with OTA updates, rollback protection and a tiny app."""

import time

import boot_guard
from nus_peripheral import NUSPeripheral


def start():
    """Set everything up, start advertising, return the NUSPeripheral."""
    try:
        import app

        handler = app.handle
    except Exception as e:
        print("app.py failed:", repr(e))
        if boot_guard.on_trial():
            import machine

            machine.reset()  # a failed trial boot: after a few, the old app returns
        handler = None  # OTA keeps working, so a fixed app.py can be sent
    p = NUSPeripheral(app=handler, wdt=boot_guard.wdt)
    if handler is not None:
        boot_guard.confirm()  # the app loaded and the board can be updated again
    return p


def run():
    p = start()
    while True:
        busy = p.poll()
        boot_guard.poll()  # feeds the watchdog, confirms after a while up
        if not busy:
            time.sleep_ms(10)


if __name__ == "__main__":
    run()
