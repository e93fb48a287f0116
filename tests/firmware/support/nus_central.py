"""A BLE central for firmware scenarios (MicroPython-compatible).

Drives the `bluetooth` stand-in the way a phone or Home Assistant would:
connects, writes to NUS RX, and joins TX notifications back into lines.

Importing it makes `binascii` the C module, as on a board (see
fwtest.use_builtin_binascii), so import it before any firmware module.
"""

import fwtest

fwtest.use_builtin_binascii()

import binascii  # noqa: E402 - after the switch above
import json  # noqa: E402


class Central:
    def __init__(self, peripheral, mtu=256, conn=1):
        import bluetooth  # looked up now: a simulated reset brings a fresh one

        self.p = peripheral
        self.ble = bluetooth.BLE()
        self.conn = conn
        self.notes = []  # every notification, raw
        self.lines = []  # notifications joined and split on "\n"
        self._buf = b""
        self.ble.on_notify = self._on_notify
        self.ble.central_connect(conn, mtu)

    def _on_notify(self, conn, handle, data):
        assert conn == self.conn
        self.notes.append(data)
        self._buf += data
        i = self._buf.find(b"\n")
        while i >= 0:
            self.lines.append(self._buf[:i].decode())
            self._buf = self._buf[i + 1 :]
            i = self._buf.find(b"\n")

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        return self.ble.central_write(self.conn, data)

    def send(self, line):
        self.write(line + "\n")

    def pump(self):
        """Let the board work through everything queued; lines handled."""
        n = 0
        while self.p.poll():
            n += 1
        return n

    def ask(self, line):
        self.send(line)
        self.pump()
        return self.take()

    def take(self):
        lines = self.lines
        self.lines = []
        return lines

    def disconnect(self):
        self.ble.central_disconnect(self.conn)


def hello(central):
    """The board's HELLO capabilities as a dict."""
    lines = central.ask("OTA:HELLO")
    assert len(lines) == 1, lines
    assert lines[0].startswith("OTA:HELLO:"), lines
    return json.loads(lines[0][len("OTA:HELLO:") :])


def hello_and_leave(peripheral):
    """Connect, say HELLO, disconnect: the board's capabilities as a dict."""
    c = Central(peripheral)
    caps = hello(c)
    c.disconnect()
    peripheral.poll()
    return caps


def crc_hex(data):
    return f"{binascii.crc32(data) & 0xFFFFFFFF:08x}"


def b64(data):
    return binascii.b2a_base64(data).strip().decode()


def v2_send_file(central, name, data, ver="", chunk=150):
    """FILE, then D lines a whole window at a time; the replies after READY."""
    lines = central.ask(f"OTA:FILE:{name}:{len(data)}:{crc_hex(data)}:{ver}:b64:-:")
    assert len(lines) == 1, lines
    assert lines[0].startswith("OTA:READY:"), lines
    off = int(lines[0].split(":")[2])
    replies = []
    while off < len(data):
        sent = off
        for _ in range(central.p.window):
            if sent >= len(data):
                break
            central.send(f"OTA:D:{sent}:{b64(data[sent : sent + chunk])}")
            sent += chunk
        central.pump()
        got = central.take()
        replies.extend(got)
        assert got, "no reply"
        assert got[-1].startswith("OTA:A:"), got
        off = int(got[-1].split(":")[2])
    return replies


def v2_apply(central, names):
    """APPLY; True when the board answered OK and reset."""
    import machine

    central.send("OTA:APPLY:" + ",".join(names) + ":")
    try:
        central.pump()
    except machine.Reset:
        return central.take() == ["OTA:OK"]
    return False


def send_frames(central, off, size, make, step):
    """Frames from `off` to `size`, a window at a time; the offset acked last.

    `make(off)` is the frame that carries the `step` file bytes at `off`."""
    while off < size:
        sent = off
        for _ in range(central.p.window):
            if sent < size:
                central.write(make(sent))
                sent += step
        central.pump()
        got = central.take()
        assert got, "no reply"
        assert got[-1].startswith("OTA:A:"), got
        off = int(got[-1].split(":")[2])
    return off


def frame(off, payload):
    """A binary data frame (docs/protocol.md): 0xFF, length, offset, payload."""
    n = len(payload)
    head = bytes([0xFF, n & 255, n >> 8, off & 255, off >> 8 & 255])
    return head + bytes([off >> 16 & 255, off >> 24 & 255]) + payload
