"""The demo application. Update this file over the air; main.py stays put.

handle(line) gets every received line that is not OTA traffic and may return
a reply line.
"""

try:
    from config import VERSION
except ImportError:
    VERSION = "unknown"


def handle(line):
    if line == "PING":
        return "PONG"
    if line == "VERSION":
        return "VERSION:" + str(VERSION)
    return None
