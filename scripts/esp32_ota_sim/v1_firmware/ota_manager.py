# ruff: noqa: RUF012, SIM105, SIM115, UP031  (MicroPython board code, like device_firmware)
"""The OTA engine of a board in the field that only speaks protocol v1.

The simulator's one model of such a board (esp32_ota_sim.v1_board puts it in
place of device_firmware/ota_manager.py). Written from the v1 contract
(shared/docs/protocol-v1.md), not from device_firmware: one file per session,
DATA lines handled one at a time in order, COMMIT renames (with a `.bak` of
the old file) and resets, no HELLO or other v2 command, nothing kept over a
disconnect, and `int()` on START's numbers as the original does.
"""

import binascii
import os
import time

import machine


def _older(new, cur):
    def dotted(text):
        out = []
        for part in str(text).split("."):
            digits = ""
            for ch in part:
                if not "0" <= ch <= "9":
                    break
                digits += ch
            out.append(int(digits) if digits else 0)
        return out

    if not new or not cur:
        return False
    a = dotted(new)
    b = dotted(cur)
    while len(a) < len(b):
        a.append(0)
    while len(b) < len(a):
        b.append(0)
    return a < b


def _app_version():
    try:
        import config

        return str(config.VERSION)
    except Exception:
        return None


class OTAManager:
    ALLOWED_FILES = {"main.py", "app.py"}
    AUTH_TOKEN = None
    AUTH_KEY = None
    RESET_DELAY_MS = 500
    MAX_TRIAL_BOOTS = 2
    WINDOW = 8
    LINE_MAX = 512
    IDLE = 0
    ARMED = 1
    RECEIVING = 2
    COMMITTING = 3
    TMP = "_ota_tmp"

    def __init__(self, reply_fn, wdt=None):
        self._reply = reply_fn
        self._wdt = wdt
        self.state = self.IDLE
        self._file = None

    def _feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def abort(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.remove(self.TMP)
        except OSError:
            pass
        self.state = self.IDLE

    def handle(self, line):
        self._feed()
        parts = line.strip().split(":")
        cmd = parts[1] if len(parts) > 1 else ""
        if cmd == "START":
            self._start(parts[2:])
        elif cmd == "DATA":
            self._data(parts[2:])
        elif cmd == "COMMIT":
            self._commit()
        elif cmd == "ABORT":
            self.abort()
            self._reply("OTA:ABORTED")
        else:
            self._reply("OTA:ERR:UNKNOWN_CMD")

    def _start(self, args):
        if self.state != self.IDLE:
            self._reply("OTA:REJECT:BUSY")
            return
        if len(args) < 3:
            self._reply("OTA:REJECT:BAD_ARGS")
            return
        token = args[5] if len(args) > 5 else None
        if self.AUTH_TOKEN and token != self.AUTH_TOKEN:
            self._reply("OTA:REJECT:AUTH")
            return
        if args[0] not in self.ALLOWED_FILES:
            self._reply("OTA:REJECT:FORBIDDEN")
            return
        size = int(args[1])
        st = os.statvfs("/")
        if size > st[0] * st[3] * 8 // 10:
            self._reply("OTA:REJECT:NOSPACE")
            return
        if len(args) > 3 and _older(args[3], _app_version()):
            self._reply("OTA:REJECT:VERSION")
            return
        self._name = args[0]
        self._size = size
        self._crc = int(args[2], 16)
        self._got = 0
        self._run = 0
        self._seq = 0
        self._file = open(self.TMP, "wb")
        self.state = self.ARMED
        self._reply("OTA:READY")

    def _data(self, args):
        if self.state not in (self.ARMED, self.RECEIVING):
            self._reply("OTA:ERR:NOT_READY")
            return
        try:
            seq = int(args[0])
        except (ValueError, IndexError):
            self._reply("OTA:ERR:BAD_SEQ")
            return
        if seq == self._seq - 1:
            self._reply("OTA:ACK:%d" % seq)
            return
        if seq != self._seq:
            self._reply("OTA:ERR:%d" % seq)
            return
        chunk = binascii.unhexlify(args[1])
        try:
            self._file.write(chunk)
        except OSError as e:
            self.abort()
            self._reply("OTA:ERR:WRITE:%s" % e)
            return
        self._feed()
        self._run = binascii.crc32(chunk, self._run)
        self._got += len(chunk)
        self._seq += 1
        self.state = self.RECEIVING
        self._reply("OTA:ACK:%d" % seq)

    def _commit(self):
        if self.state != self.RECEIVING:
            self._reply("OTA:ERR:NOT_RECEIVING")
            return
        self._file.close()
        self._file = None
        if self._got != self._size:
            self.abort()
            self._reply("OTA:ERR:SIZE:got=%d,exp=%d" % (self._got, self._size))
            return
        if self._run != self._crc:
            self.abort()
            self._reply("OTA:ERR:CRC:got=%08x,exp=%08x" % (self._run, self._crc))
            return
        self.state = self.COMMITTING
        self._feed()
        backup = self._name + ".bak"
        try:
            os.rename(self._name, backup)
        except OSError:
            backup = None  # no old file to keep
        try:
            os.rename(self.TMP, self._name)
        except OSError as e:
            if backup is not None:
                os.rename(backup, self._name)
            self.abort()
            self._reply("OTA:ERR:RENAME:%s" % e)
            return
        if backup is not None:
            os.remove(backup)
        self._reply("OTA:OK")
        self._feed()
        time.sleep_ms(self.RESET_DELAY_MS)
        machine.reset()
