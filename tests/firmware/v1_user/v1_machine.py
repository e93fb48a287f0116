"""The `machine` stub a v1 user keeps next to their desktop tests.

Plain CPython has no `machine` module; this is all the OTA manager may count
on there. `reset()` only records the call.
"""

reset_calls = []


def reset():
    reset_calls.append(True)


class WDT:
    def __init__(self, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1
