"""Over-the-air updates of scripts through BLE UART (protocol v1 and v2).

Drop-in replacement for the v1 OTAManager: call `handle(line)` for every
received line that starts with "OTA:" and `abort()` when the central
disconnects. docs/protocol.md is the wire contract.

Only the data path (DATA, D) lives here, because it runs for every chunk.
Everything that runs once per file or per session is in modules imported on
demand, so the part that stays in RAM is small:
ota_setup (START, FILE, COMMIT, APPLY, ABORT), ota_hello (HELLO),
ota_auth (nonce, HMAC), ota_commit (journaled install, recovery, rollback),
ota_state (ota_state.json).
"""

import binascii
import os

from micropython import const

FW_VERSION = "2.0.0"
TMP = "_ota_tmp"
JOURNAL = "ota_journal.json"

_V1 = const(1)
_V2 = const(2)
_BIG = const(0x3FFFFFFF)


def num(s, a, b):
    """Decimal digits s[a:b] as an int, -1 if not a number, 0x3FFFFFFF if huge.

    Reads characters by index, so parsing a data line allocates nothing.
    """
    if a >= b:
        return -1
    n = 0
    for i in range(a, b):
        c = ord(s[i]) - 48
        if c < 0 or c > 9:
            return -1
        n = n * 10 + c if n < 100000000 else _BIG
    return n


def reason(e):
    """An exception as a reply field (no ':' or newline)."""
    r = str(e) or type(e).__name__
    return r.replace(":", " ").replace("\n", " ")[:48]


def _remove(name):
    try:
        os.remove(name)
    except OSError:
        pass


class OTAManager:
    IDLE = 0
    ARMED = 1
    RECEIVING = 2
    COMMITTING = 3

    ALLOWED_FILES = {"main.py", "app.py"}
    AUTH_TOKEN = None  # v1 clear-text token (str)
    AUTH_KEY = None  # v2 HMAC-SHA256 key (str); v1 START then needs AUTH_TOKEN
    RESET_DELAY_MS = 500
    MAX_TRIAL_BOOTS = 2  # read by boot_guard
    # D lines a v2 client may have unacknowledged. Each one costs RAM: a
    # queued write (~0.3 KB while streaming) and LINE_MAX of RX buffer; 7
    # keeps the streaming peak under 4 KB and a proxy link busy (scripts/bench).
    WINDOW = 7
    LINE_MAX = 512  # longest line the board accepts, "\n" included

    def __init__(self, reply_fn, wdt=None):
        self._reply = reply_fn
        self._wdt = wdt
        self.state = 0
        self._mode = 0  # 0 no transfer, 1 v1 START/DATA, 2 v2 FILE/D
        self._f = None
        self._name = None
        self._ver = None
        self._size = 0
        self._exp = 0  # expected CRC
        self._crc = 0  # running CRC of what was received
        self._have = 0  # bytes received
        self._seq = 0  # v1: next expected seq
        self._b64 = False
        self._nak = False  # v2: N already sent for the current gap
        self._sync = 0  # v2: flush the staged file when _have reaches this
        self._done = -1  # v2: size of the file just completed (re-ACKs)
        self._nonce = None
        try:
            os.stat(JOURNAL)
        except OSError:
            pass
        else:
            try:
                import ota_commit

                ota_commit.recover()  # a commit the power cut short
            except Exception:
                pass
        _remove(TMP)  # a v1 transfer does not survive a reset
        _remove("ota_journal.json.tmp")  # cut short before it counted
        _remove("ota_state.json.tmp")

    def _send(self, line):
        try:
            self._reply(line)
        except Exception:
            pass  # a lost reply is a lost notification: the protocol copes

    def _feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def _drop(self):
        """Forget the current transfer; v2 staged data stays on flash."""
        f = self._f
        self._f = None
        if f is not None:
            try:
                f.close()
            except Exception:
                pass
        if self._mode == _V1:
            _remove(TMP)
        self._mode = 0
        self._nak = False
        self.state = 0

    def abort(self):
        """The central went away: drop a v1 transfer, keep v2 staged data."""
        if self.state == 3:
            return
        try:
            self._drop()
        except Exception:
            self.state = 0
        self._done = -1
        self._nonce = None  # a nonce does not outlive its connection

    def handle(self, line):
        """Process one "OTA:" line. Never raises (a reset is not an error)."""
        try:
            if self._wdt is not None:
                self._wdt.feed()
            if not isinstance(line, str):
                try:
                    line = bytes(line).decode()
                except Exception:
                    self._send("OTA:ERR:UNKNOWN_CMD")
                    return
            line = line.strip()
            if line.startswith("OTA:D:"):
                self._d(line)
                return
            end = line.find(":", 4)
            cmd = line[4:] if end < 0 else line[4:end]
            if not line.startswith("OTA:"):
                self._send("OTA:ERR:UNKNOWN_CMD")
            elif cmd == "DATA":
                self._data(line)
            elif cmd == "HELLO":
                import ota_auth
                import ota_hello

                self._nonce = ota_auth.nonce()
                self._send("OTA:HELLO:" + ota_hello.caps(self))
            elif cmd in ("START", "FILE", "COMMIT", "APPLY", "ABORT"):
                import ota_setup

                ota_setup.command(self, cmd, line)
            else:
                self._send("OTA:ERR:UNKNOWN_CMD")
        except Exception as e:
            try:
                self._drop()
            except Exception:
                self.state = 0
            self._send("OTA:ERR:INTERNAL:" + reason(e))

    def _data(self, line):
        """v1 OTA:DATA:<seq>:<hex>, stop-and-wait."""
        if self._mode != _V1:
            self._send("OTA:ERR:NOT_READY")
            return
        j = line.find(":", 9)
        if j < 0:
            j = len(line)
        seq = num(line, 9, j)
        if seq < 0:
            self._send("OTA:ERR:BAD_SEQ")
            return
        if seq != self._seq:
            if seq == self._seq - 1:
                self._send("OTA:ACK:%d" % seq)  # the client missed this ACK
            elif seq == _BIG:
                self._send("OTA:ERR:" + line[9:j])
            else:
                self._send("OTA:ERR:%d" % seq)
            return
        try:
            chunk = binascii.unhexlify(line[j + 1 :])
        except Exception:
            chunk = b""
        if not chunk:
            self._send("OTA:ERR:BAD_DATA:%d" % seq)
            return
        room = self._size - self._have
        try:
            if room > 0:
                self._f.write(chunk if len(chunk) <= room else chunk[:room])
        except OSError as e:
            self._drop()
            self._send("OTA:ERR:WRITE:" + reason(e))
            return
        self._feed()
        # Bytes past the announced size are counted, not stored: COMMIT
        # then reports the size error a v1 board would.
        self._crc = binascii.crc32(chunk, self._crc)
        self._have += len(chunk)
        self._seq = seq + 1
        self.state = 2
        self._send("OTA:ACK:%d" % seq)

    def _d(self, line):
        """v2 OTA:D:<offset>:<payload>, windowed with cumulative ACKs."""
        if self._mode != _V2:
            if self._done >= 0:
                self._send("OTA:A:%d" % self._done)  # a late duplicate
            else:
                self._send("OTA:ERR:NOT_READY")
            return
        j = line.find(":", 6)
        off = num(line, 6, j) if j > 0 else -1
        if off < 0:
            self._send("OTA:ERR:BAD_SEQ")
            return
        have = self._have
        if off != have:
            if off < have:
                self._send("OTA:A:%d" % have)
            elif not self._nak:
                self._nak = True  # one N per gap, then silence
                self._send("OTA:N:%d" % have)
            return
        self._nak = False
        n = len(line) - j - 1
        chunk = None
        if 0 < n and len(line) < self.LINE_MAX:
            try:
                if self._b64:
                    chunk = binascii.a2b_base64(line[j + 1 :])
                    # the decoder skips stray characters: demand the exact length
                    if n % 4:
                        n = -1
                    else:
                        n = n // 4 * 3 - (line[-1] == "=") - (line[-2] == "=")
                else:
                    chunk = binascii.unhexlify(line[j + 1 :])
                    n = n // 2
            except Exception:
                chunk = None
        if not chunk or len(chunk) != n or have + n > self._size:
            self._send("OTA:ERR:BAD_DATA:%d" % off)
            return
        try:
            self._f.write(chunk)
            have += n
            if have >= self._sync:
                self._f.flush()  # so a reset keeps what arrived (resume)
                self._sync = have + 4096
        except OSError as e:
            import ota_setup

            ota_setup.discard(self)
            self._send("OTA:ERR:WRITE:" + reason(e))
            return
        if self._wdt is not None:
            self._wdt.feed()
        self._crc = binascii.crc32(chunk, self._crc)
        self._have = have
        self.state = 2
        if have == self._size:
            import ota_setup

            ota_setup.complete(self)
        else:
            self._send("OTA:A:%d" % have)
