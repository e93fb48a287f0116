"""Nordic UART Service (NUS) peripheral with OTA updates built in.

Why this shape: on an ESP32 the BLE IRQ handler runs on the NimBLE task with
the scheduler locked, so a flash write inside it would stall the radio. The
handler therefore only copies each write into a bounded ring of bytes (and
restarts advertising after a disconnect). `poll()`, called from your main loop
or run by `serve()` as an asyncio task, rebuilds the lines and hands them to
the OTA engine or to your application, outside the IRQ.

    p = NUSPeripheral(app=my_handler)   # my_handler(line) -> reply or None
    while True:
        p.poll()

A write may hold part of a line or several lines; lines end with "\\n".
Lines that start with "OTA:" go to the OTA engine, all others to `app`.
A write that starts with the byte 0xFF or 0xFE (never in UTF-8 text) holds
binary data frames, plain (0xFF) or deflated (0xFE), one after another, and
they go to the OTA engine only.

The board has one connection, so a central that connects and falls silent
would lock everyone out: poll() hangs up when no OTA line has come for
`IDLE_TIMEOUT_S` seconds (60; `TRANSFER_IDLE_TIMEOUT_S`, 180, while a
transfer is under way). Both can be set in config.py.
"""

import time

import bluetooth
from micropython import const
from nus_rx import RxRing
from ota_manager import OTAManager

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_ADV_INTERVAL_US = const(250000)
_PREFERRED_MTU = const(517)  # ask for the largest; the central picks the minimum
_DEFAULT_MTU = const(23)  # until the MTU exchange
_NOTIFY_TRIES = const(3)

_NUS = bluetooth.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E")
_RX = (
    bluetooth.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"),
    bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE,
)
_TX = (
    bluetooth.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"),
    bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY,
)
# The service UUID as it goes on the air (little-endian), for advertising.
_NUS_ON_AIR = b"\x9e\xca\xdc\x24\x0e\xe5\xa9\xe0\x93\xf3\xa3\xb5\x01\x00\x40\x6e"

# Home Assistant recognises our boards by the name prefix, which is why the
# name goes in the advertisement itself (proxies that scan passively never
# see a scan response). Plain NUS devices are not claimed.
NAME_PREFIX = "ESP32-OTA-"

_FRAME = const(0xFF)  # first byte of a binary data frame (ota_core.FRAME)
_FRAME_HEAD = const(7)
_ZFRAME = const(0xFE)  # ... of a deflated one (ota_core.ZFRAME); no byte is above
_ZFRAME_HEAD = const(9)


def advertising_payload(name, state=b""):
    """Flags + the OTA state (ota_advert) + the board's name, in 31 bytes.

    The name is shortened to what is left (16 bytes beside the state).
    """
    raw = name.encode()
    room = 26 - len(state)
    kind = 0x09  # complete local name
    if len(raw) > room:
        raw = raw[:room]
        kind = 0x08  # shortened local name
    return b"\x02\x01\x06" + state + bytes((len(raw) + 1, kind)) + raw


def scan_response_payload():
    """The NUS service UUID, for central apps that look for it: 18 bytes."""
    return b"\x11\x07" + _NUS_ON_AIR


def default_name(ble):
    """ESP32-OTA- plus the last two bytes of the Bluetooth address."""
    mac = ble.config("mac")[1]
    return NAME_PREFIX + "%02X%02X" % (mac[-2], mac[-1])


class NUSPeripheral:
    """NUS GATT server: one connection, OTA lines to the engine, the rest to `app`."""

    IDLE_TIMEOUT_S = 60  # no OTA line for this long: hang up
    TRANSFER_IDLE_TIMEOUT_S = 180  # the same while a transfer is under way

    def __init__(  # noqa: PLR0913
        self, app=None, name=None, ota=None, wdt=None, ble=None, rxbuf=0, rxring=0
    ):
        cfg = _config()
        _configure_ota(cfg)
        self._ble = ble or bluetooth.BLE()
        self._app = app
        self.ota = OTAManager(self.send, wdt) if ota is None else ota
        # poll() hands binary frames to ota.frame(); an engine without one
        # (a v1 OTAManager) never offers them, and stray ones are dropped.
        self._to_engine = getattr(self.ota, "frame", None)
        self.frame_max = 0
        ota = self.ota
        # What a client may have in flight: `win` lines of up to LINE_MAX
        # bytes ("\n" included) or `fwin` frames of up to `fmax` bytes.
        want = (ota.WINDOW + 1) * ota.LINE_MAX
        if self._to_engine is not None:
            ota.frames = True
            self.frame_max = ota.FRAME_MAX
            want = max(want, (ota.FRAME_WINDOW + 1) * self.frame_max)
        # The RX queue (nus_rx), made here, once: at connect time a
        # fragmented heap could refuse it, in the IRQ. N writes of up to M
        # bytes fit in (N + 1) * M bytes, whatever the wrap-around leaves
        # unused, so HELLO announces what the ring holds.
        cap = max(rxring or want, 2 * ota.LINE_MAX)
        self.rxring = cap
        self.window = min(ota.WINDOW, cap // ota.LINE_MAX - 1)
        if self._to_engine is not None:
            ota.WINDOW = self.window
            ota.FRAME_WINDOW = min(ota.FRAME_WINDOW, cap // self.frame_max - 1)
            self.window = max(self.window, ota.FRAME_WINDOW)
        self.line_max = ota.LINE_MAX - 1
        self.rxq = RxRing(cap, self.window)
        self._ring = self.rxq.buf
        self._ringv = self.rxq.view
        self._pos = 0  # read position in the oldest queued write
        self._part = bytearray(self.line_max)  # a line that spans writes
        self._partv = memoryview(self._part)
        self._plen = 0
        self._skip = False  # dropping the rest of an overlong or broken line
        self._framed = False  # the write at the head held frames: only frames follow
        self._after_cut = False  # the next write may hold the rest of a cut frame
        self._conn = None
        self._gen = 0  # counts connections, so stale writes are recognised
        self._mtu = _DEFAULT_MTU
        self._lost_link = False  # IRQ: a central disconnected
        self._readvertise = False  # advertise from poll(): IRQ failed, or new state
        self._guard = _trial_guard()  # boot_guard while a new version is on trial
        self.idle_ms = int(getattr(cfg, "IDLE_TIMEOUT_S", self.IDLE_TIMEOUT_S) * 1000)
        self.transfer_idle_ms = int(
            getattr(cfg, "TRANSFER_IDLE_TIMEOUT_S", self.TRANSFER_IDLE_TIMEOUT_S) * 1000
        )
        self.clock = time.ticks_ms  # replaceable, for tests
        self._timed_gen = -1  # the connection whose idle time is measured
        self._last_ota = 0  # clock() of its last OTA line (or its connect)
        self.idle_drops = 0  # connections dropped for silence
        self.dropped = 0  # writes dropped because the queue was full
        self.cut = 0  # writes cut short by the attribute buffer
        self.overlong = 0  # lines longer than line_max, dropped
        self.undecodable = 0  # lines that were not UTF-8, dropped
        self.badframes = 0  # binary frames cut short or garbage after one, dropped

        ble = self._ble
        ble.active(True)
        try:
            ble.config(mtu=_PREFERRED_MTU)
        except (OSError, ValueError):
            pass  # a port that cannot change it keeps its default
        self.name = name or getattr(cfg, "NAME", None) or default_name(ble)
        try:
            ble.config(gap_name=self.name)
        except (OSError, ValueError):
            pass
        ((self._tx, self._rx),) = ble.gatts_register_services(((_NUS, (_TX, _RX)),))
        # Append mode: the IRQ reads (and so empties) the buffer at every
        # write, and on an ESP32 it runs as each write arrives, so the buffer
        # holds one write (an ATT write is at most 512 bytes, 514 at MTU 517);
        # twice LINE_MAX also keeps a second one where events come late.
        self.rxbuf = rxbuf or 2 * ota.LINE_MAX
        ble.gatts_set_buffer(self._rx, self.rxbuf, True)
        self._adv = None
        self._adv = self._advertisement()
        self._resp = scan_response_payload()
        ble.irq(self._irq)
        self.advertise()

    # -- radio ----------------------------------------------------------

    def advertise(self):
        self._ble.gap_advertise(_ADV_INTERVAL_US, self._adv, resp_data=self._resp)

    def _advertisement(self):
        try:
            import ota_advert  # let go again by state()
        except ImportError:  # not installed: no OTA state advertised
            return advertising_payload(self.name)
        return advertising_payload(self.name, ota_advert.state(self.ota, self._adv))

    def is_connected(self):
        return self._conn is not None

    def mtu(self):
        return self._mtu

    def disconnect(self):
        if self._conn is not None:
            self._ble.gap_disconnect(self._conn)

    def _irq(self, event, data):
        # Runs on the BLE task: copy bytes, note events, nothing else.
        if event == _IRQ_GATTS_WRITE:
            conn, handle = data
            if handle != self._rx:
                return
            # gatts_read makes a bytes object (MicroPython has no read into a
            # buffer): copied into the ring, it is garbage at once, so no
            # queued write holds an object of its own.
            chunk = self._ble.gatts_read(handle)  # also empties the buffer
            if conn != self._conn or not chunk:
                return
            if not self.rxq.put(chunk, self._gen):
                self.dropped += 1
            elif len(chunk) >= self.rxbuf and chunk[-1] != 10:
                self.cut += 1
                self.rxq.gap = True  # the line at the end was cut: drop it
        elif event == _IRQ_CENTRAL_CONNECT:
            conn = data[0]
            if self._conn is None:
                self._conn = conn
                self._mtu = _DEFAULT_MTU
                self._gen = (self._gen + 1) & 0xFF
            else:
                self._ble.gap_disconnect(conn)  # one central at a time
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self._conn:
                self._conn = None
                self._lost_link = True
                # Lines still queued belong to the gone central: poll() drops
                # them, so none runs after the abort() of the disconnect.
                self._gen = (self._gen + 1) & 0xFF
                try:
                    self.advertise()  # cheap: NimBLE only queues the command
                except OSError:
                    self._readvertise = True  # poll() tries again
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self._conn:
                self._mtu = data[1]

    # -- lines in -------------------------------------------------------

    def pending(self):
        """Writes waiting in the queue."""
        return self.rxq.pending()

    def pending_bytes(self):
        """Received bytes not handled yet (the simulator charges time by them)."""
        return max(self.rxq.queued_bytes() - self._pos, 0)

    def poll(self):
        """Handle at most one received line; True if a line was taken."""
        if self._guard is not None and not self._guard.poll():
            self._guard = None  # confirmed by staying up long enough
            self._readvertise = True  # with the trial flag cleared
        if self._lost_link:
            self._lost_link = False
            self._readvertise = True  # the central may have staged or dropped data
            self._plen = 0
            self._skip = False
            self._pos = 0  # a half-read write is stale now: dropped below
            self._after_cut = False
            self.ota.abort()  # keeps v2 staged data for resuming
        if self._readvertise and self._conn is None:
            self._readvertise = False
            self._adv = self._advertisement()  # on trial, rolled back, staged
            self.advertise()
        if self._conn is not None:
            self._check_idle()
        ring = self._ring
        rxq = self.rxq
        while True:
            slot = rxq.first()
            if slot < 0:
                return False
            at = rxq.at[slot]
            end = at + rxq.size[slot]
            if self._pos == 0:
                if rxq.gen[slot] != self._gen:
                    self._next_write()  # from a link that is gone
                    continue
                if rxq.flag[slot] or ring[at] >= _ZFRAME:
                    self._plen = 0  # a loss, or a frame, broke the line
                    self._skip = False
            start = at + self._pos
            if self._framed or (start == at and ring[at] >= _ZFRAME):
                if self._frame(at, start, end):
                    return True
                continue
            if self._after_cut:
                self._after_cut = False  # the rest of a cut frame: not a line
                self.badframes += 1
                self._next_write()
                continue
            nl = ring.find(b"\n", start, end)
            if nl < 0:
                self._keep(start, end)
                self._next_write()
                continue
            self._pos = nl + 1 - at
            line = None  # the line's text, copied out of the ring
            if self._skip:
                self._skip = False
                self._plen = 0
            elif self._plen:
                self._keep(start, nl)
                if self._skip:
                    self._skip = False
                    self._plen = 0
                else:
                    line = self._text(self._partv[: self._plen])
                    self._plen = 0
            else:
                line = self._text(self._ringv[start:nl])
            if nl + 1 >= end:
                self._next_write()
            if line is None:
                return True  # dropped, but taken
            if line:
                self._dispatch(line)
                return True

    def _frame(self, at, start, end):
        """Hand the binary frame at ring[start:end] to the engine; True if one went.

        Frames fill a write from its start, one after another: bytes after
        them that are not a whole frame are dropped with the rest of the
        write, and so is a write that starts with what a cut frame left.
        The engine reads the frame in the ring, so the write stays queued
        until it returns.
        """
        self._after_cut = False
        ring = self._ring
        mark = ring[start]
        head = _FRAME_HEAD if mark == _FRAME else _ZFRAME_HEAD
        stop = end + 1  # cut short, unless the header says otherwise
        if mark < _ZFRAME:
            stop = end  # garbage after a frame
        elif end - start >= head:
            stop = start + head + (ring[start + 1] | ring[start + 2] << 8)
        if stop > end or stop - start > self.frame_max or mark < _ZFRAME:
            self.badframes += 1  # the client resends what it does not see acked
            self._after_cut = stop > end
            self._next_write()
            return False
        self._pos = stop - at
        self._framed = stop < end
        self._last_ota = self.clock()
        try:
            self._to_engine(self._ringv[start:stop])
        finally:
            if stop >= end:
                self._next_write()
        return True

    def _check_idle(self):
        """Hang up on a central that sent no OTA line for too long."""
        now = self.clock()
        if self._timed_gen != self._gen:
            self._timed_gen = self._gen  # a new connection: its time starts now
            self._last_ota = now
            return
        limit = self.transfer_idle_ms if self.ota.state else self.idle_ms
        if time.ticks_diff(now, self._last_ota) > limit:
            self._last_ota = now  # once per period; the disconnect IRQ follows
            self.idle_drops += 1
            self.disconnect()

    def _next_write(self):
        self._framed = False
        self._pos = 0
        self.rxq.free()

    def _keep(self, start, end):
        # Part of a line: stash it until its end arrives.
        if self._skip:
            return
        n = end - start
        if self._plen + n > self.line_max:
            self.overlong += 1
            self._skip = True
            self._plen = 0
            return
        self._partv[self._plen : self._plen + n] = self._ringv[start:end]
        self._plen += n

    def _text(self, raw):
        """A received line as str, "" when empty; None (counted) when dropped."""
        n = len(raw)
        if n and raw[n - 1] == 13:  # "\r\n" line ends from terminal apps
            n -= 1
        if not n:
            return ""
        if n > self.line_max:
            self.overlong += 1
            return None
        try:
            return str(raw[:n], "utf-8")
        except ValueError:
            self.undecodable += 1
            return None

    def _dispatch(self, line):
        if line.startswith("OTA:"):
            self._last_ota = self.clock()
            self.ota.handle(line)
        elif self._app is not None:
            try:
                reply = self._app(line)
            except Exception as e:  # a bug in the app must not stop OTA
                print("app error:", repr(e))
                reply = None
            if reply is not None:
                self.send(reply)

    async def serve(self, idle_ms=10):
        """Run poll() forever as an asyncio task."""
        import asyncio

        while True:
            if not self.poll():
                await asyncio.sleep(idle_ms / 1000)

    # -- lines out ------------------------------------------------------

    def send(self, line):
        """Send one line (without "\\n"); False when nobody is connected.

        A line gets its own notification; one longer than MTU - 3 is split
        across several, and the client joins them again on "\\n".
        """
        conn = self._conn
        if conn is None:
            return False
        data = (line + "\n").encode()
        step = self._mtu - 3
        if len(data) <= step:
            return self._notify(conn, data)
        view = memoryview(data)
        for i in range(0, len(data), step):
            if not self._notify(conn, view[i : i + step]):
                return False
        return True

    def _notify(self, conn, data):
        for _ in range(_NOTIFY_TRIES):
            try:
                self._ble.gatts_notify(conn, self._tx, data)
                return True
            except OSError:
                if self._conn != conn:
                    return False
                _sleep_ms(5)  # NimBLE out of buffers: let the radio drain
        return False


def _sleep_ms(ms):
    import time

    time.sleep_ms(ms)


def _config():
    try:
        import config

        return config
    except Exception:  # missing or broken: defaults, and OTA can fix it
        return None


def _configure_ota(cfg):
    """Board settings from config.py (scripts/install_firmware writes them)."""
    if getattr(cfg, "ALLOWED_FILES", None):
        OTAManager.ALLOWED_FILES = set(cfg.ALLOWED_FILES)
    if getattr(cfg, "AUTH_KEY", None):
        OTAManager.AUTH_KEY = cfg.AUTH_KEY
    if getattr(cfg, "AUTH_TOKEN", None):
        OTAManager.AUTH_TOKEN = cfg.AUTH_TOKEN


def _trial_guard():
    try:
        import boot_guard

        return boot_guard if boot_guard.status == boot_guard.TRIAL else None
    except ImportError:
        return None
