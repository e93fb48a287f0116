"""Helpers shared by firmware scenarios (MicroPython-compatible)."""

import binascii
import os


def crc32_hex(data):
    return "%08x" % (binascii.crc32(data) & 0xFFFFFFFF)


def read(name):
    with open(name, "rb") as f:
        return f.read()


def write(name, data):
    with open(name, "wb") as f:
        f.write(data)


def exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def listdir():
    return sorted(os.listdir("."))


class Replies:
    """A reply_fn that records every line the firmware sends."""

    def __init__(self):
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)

    def take(self):
        lines = self.lines
        self.lines = []
        return lines

    def last(self):
        return self.lines[-1] if self.lines else None
