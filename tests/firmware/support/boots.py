"""Simulated resets for firmware scenarios (MicroPython-compatible).

A boot is what a board does at power-on: forget every module, run boot.py
(the boot guard), then main.py's start(). Files written by the tests into
the working directory (the board's filesystem) come before the firmware
directory on the import path, as on a board where they are the same place.
"""

import sys

# Firmware and stand-in modules a reset forgets (machine stays: it counts resets).
FIRMWARE = (
    "boot",
    "boot_guard",
    "main",
    "app",
    "config",
    "nus_peripheral",
    "bluetooth",
)


def forget_modules():
    for name in list(sys.modules):
        if name in FIRMWARE or name.startswith("ota_"):
            del sys.modules[name]
    try:
        import importlib

        importlib.invalidate_caches()  # CPython: see files written just now
    except ImportError:
        pass


def board_files_first():
    """Put the working directory first on the import path; returns the undo."""
    saved = list(sys.path)
    cpython = sys.implementation.name == "cpython"
    if sys.path[0] != "":
        sys.path.insert(0, "")
    if cpython:
        sys.dont_write_bytecode = True  # no stale .pyc of a rewritten file

    def undo():
        sys.path[:] = saved
        if cpython:
            sys.dont_write_bytecode = False
        forget_modules()

    return undo


def run_boot_py(fresh=True, **settings):
    """Reset, then boot.py; settings are boot_guard attributes set first.

    fresh=False keeps modules the test has already imported (and rigged).
    """
    if fresh:
        forget_modules()
    import boot_guard

    for key, value in settings.items():
        setattr(boot_guard, key, value)
    import boot  # noqa: F401 - runs boot_guard.boot()

    return boot_guard


def power_on(**settings):
    """A whole boot: boot.py then main.start(). (status, peripheral or "reset")."""
    import machine

    guard = run_boot_py(**settings)
    import main

    try:
        return guard.status, main.start()
    except machine.Reset:
        return guard.status, "reset"


def write(name, text):
    with open(name, "w") as f:
        f.write(text)


def read(name):
    with open(name) as f:
        return f.read()
