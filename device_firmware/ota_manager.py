"""Over-the-air updates of scripts through BLE UART (protocol v1 and v2).

Drop-in replacement for the v1 OTAManager: call `handle(line)` for every
received line that starts with "OTA:" and `abort()` when the central
disconnects. docs/protocol.md is the wire contract.

Only the dispatch lives here. Everything else is in modules imported on
demand, so the part that stays in RAM while no update runs is small:
ota_setup (START, FILE, COMMIT, APPLY, ABORT) and ota_data (DATA, D: loaded
with the first transfer, then kept), ota_hello (HELLO), ota_auth (nonce,
HMAC), ota_commit (journaled install, the recovery after a reset, rollback),
ota_state (ota_state.json). All of them build on ota_core (names, parsing,
the Transfer), never on each other's internals.
"""

import time

import machine  # a module attribute, as in v1: users' tests patch ota_manager.machine
from ota_core import (
    ARMED,
    COMMITTING,
    IDLE,
    RECEIVING,
    V1,
    V2,
    Transfer,
    leftovers,
    reason,
)


class OTAManager:
    IDLE = IDLE
    ARMED = ARMED
    RECEIVING = RECEIVING
    COMMITTING = COMMITTING

    ALLOWED_FILES = {"main.py", "app.py"}
    AUTH_TOKEN = None  # v1 clear-text token (str)
    AUTH_KEY = None  # v2 HMAC-SHA256 key (str); v1 START then needs AUTH_TOKEN
    RESET_DELAY_MS = 500
    MAX_TRIAL_BOOTS = 2  # read by boot_guard
    # What a v2 client may have unacknowledged: WINDOW D lines of up to
    # LINE_MAX bytes, or FRAME_WINDOW binary frames (HELLO fwin, fmax) of up
    # to FRAME_MAX. nus_peripheral queues writes in a ring allocated at boot,
    # sized for both: (window + 1) * longest, 4 KB for 7 lines of 512. 12
    # frames cover a proxy's round trip; with 16 the client's LinkWindow
    # loses more to each lost write (scripts/bench, 64 KB: wifi-proxy 70.6 %
    # of the link against 73.9 %, lossy-proxy 65.2 % against 69.9 %). A
    # ring made smaller (NUSPeripheral rxring=) lowers what HELLO announces.
    WINDOW = 7
    LINE_MAX = 512  # longest line the board accepts, "\n" included
    FRAME_WINDOW = 12
    FRAME_MAX = 256
    # Deflated frames (HELLO `deflate`, boards whose MicroPython has the
    # deflate module): each frame's stream may use a window of 2**DEFLATE_WBITS
    # bytes, which the decoder allocates per frame, and expand to at most
    # DEFLATE_MAX file bytes, the output buffer allocated once per transfer.
    DEFLATE_WBITS = 9
    DEFLATE_MAX = 1024

    def __init__(self, reply_fn, wdt=None):
        self._reply = reply_fn
        self._wdt = wdt
        self.t = Transfer()  # the file being received (ota_core)
        self._nonce = None  # authorizes the next FILE or APPLY (v2 auth)
        # Set by a NUS layer that hands binary data frames to frame(): only
        # then does HELLO offer them (a v1 user's own layer knows no frames).
        self.frames = False
        if leftovers():
            try:
                import ota_commit

                ota_commit.recover()  # a commit the power cut short
            except Exception:
                pass

    @property
    def state(self):
        """IDLE, ARMED, RECEIVING or COMMITTING."""
        return self.t.state

    _state = state  # the v1 name

    def _reset(self):
        """Back to IDLE with no transfer; v1's name, called after OTA:OK."""
        t = self.t
        t.drop()
        t.done = -1

    def _reboot(self):
        """Let OTA:OK leave the radio, then reset through this module's machine."""
        self._feed()
        sleep_ms = getattr(time, "sleep_ms", None)
        if sleep_ms is None:  # plain CPython: a v1 user's desktop tests
            time.sleep(self.RESET_DELAY_MS / 1000)
        else:
            sleep_ms(self.RESET_DELAY_MS)
        self._feed()
        machine.reset()

    def _send(self, line):
        try:
            self._reply(line)
        except Exception:
            pass  # a lost reply is a lost notification: the protocol copes

    def _feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def abort(self):
        """The central went away: drop a v1 transfer, keep v2 staged data."""
        t = self.t
        if t.state == COMMITTING:
            return
        t.drop()
        t.done = -1
        self._nonce = None  # a nonce does not outlive its connection

    def frame(self, f):
        """Process one binary data frame (a memoryview, docs/protocol.md).

        nus_peripheral calls it for every whole frame; never raises. `f`
        views the peripheral's RX ring, whose bytes are reused once this
        returns: copy what must outlive the call.
        """
        try:
            self._feed()
            self._data(f)
        except Exception as e:
            self._fail(e)

    def _data(self, data):
        """A D line (str) or a binary frame (memoryview) for the v2 transfer."""
        t = self.t
        if t.mode == V2:
            import ota_data

            if isinstance(data, str):
                ota_data.d(self, data)
            else:
                ota_data.frame(self, data)
        elif t.done >= 0:
            self._send("OTA:A:%d" % t.done)  # a late duplicate
        else:
            self._send("OTA:ERR:NOT_READY")

    def _fail(self, e):
        try:
            self.t.drop()
        except Exception:
            pass
        self._send("OTA:ERR:INTERNAL:" + reason(e))

    def handle(self, line):
        """Process one line; one that does not start with "OTA:" gets no reply.

        Never raises (a reset is not an error).
        """
        try:
            if self._wdt is not None:
                self._wdt.feed()
            if not isinstance(line, str):
                try:
                    line = bytes(line).decode()
                except Exception:
                    if bytes(line)[:4] == b"OTA:":
                        self._send("OTA:ERR:UNKNOWN_CMD")
                    return
            line = line.strip()
            t = self.t
            if line.startswith("OTA:D:"):
                self._data(line)
                return
            end = line.find(":", 4)
            cmd = line[4:] if end < 0 else line[4:end]
            if not line.startswith("OTA:"):
                return  # the application's line, as v1 ignores it
            if cmd == "DATA":
                if t.mode == V1:
                    import ota_data

                    ota_data.data(self, line)
                else:
                    self._send("OTA:ERR:NOT_READY")
            elif cmd == "HELLO":
                import ota_auth
                import ota_hello

                self._nonce = ota_auth.nonce()
                self._send("OTA:HELLO:" + ota_hello.caps(self, line[10:]))
            elif cmd in ("START", "FILE", "COMMIT", "APPLY", "ABORT"):
                import ota_setup

                ota_setup.command(self, cmd, line)
            else:
                self._send("OTA:ERR:UNKNOWN_CMD")
        except Exception as e:
            self._fail(e)
