"""Stand-in for MicroPython's `machine` module on CPython and WebAssembly.

`reset()` never returns on a board; here it raises `Reset` (a BaseException,
so firmware `except Exception` blocks cannot swallow it) after counting it.
"""

resets = 0


class Reset(BaseException):
    pass


def reset():
    global resets
    resets += 1
    raise Reset()


def soft_reset():
    reset()


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"
