"""Stand-in for MicroPython's `bluetooth` module (CPython and WebAssembly).

It behaves like MicroPython's `bluetooth.BLE` on an ESP32 (NimBLE) for the
part a GATT server uses, so the real firmware runs unchanged in tests and in
the simulator's virtual boards:

- attribute buffers start at 20 bytes; a longer write is cut to the buffer;
  `gatts_set_buffer(handle, n, append=True)` makes writes pile up to `n`
  bytes (the rest is silently dropped) until `gatts_read` empties it;
- a notification longer than MTU - 3 is cut to MTU - 3, without error;
- IRQ events use MicroPython's codes and tuple layouts; the handler is called
  synchronously, as on an ESP32 where it runs on the NimBLE task.

The "central" side is driven by test hooks: `central_connect`,
`central_write`, `central_disconnect`, plus `notified` / `on_notify` and
`advertising` / `scan_response` to observe the radio.
"""

from binascii import hexlify, unhexlify

# MicroPython's IRQ event codes (docs/library/bluetooth.rst).
_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_MTU_EXCHANGED = 21

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020

_DEFAULT_ATTR_LEN = 20
_MAX_ATTR_LEN = 512  # longest attribute value ATT allows (a long write)
_MAX_ADV_LEN = 31  # legacy advertising / scan response payload
_MIN_MTU = 23
_MAX_MTU = 517
_FIRST_HANDLE = 16  # NimBLE puts its GAP and GATT services first


def _as_bytes(data):
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


class UUID:
    """A 16-bit or 128-bit UUID, compared by value (like bluetooth.UUID)."""

    def __init__(self, value):
        if isinstance(value, UUID):
            self._le = value._le
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._le = bytes((value & 0xFF, value >> 8))
        elif isinstance(value, str):
            digits = value.replace("-", "")
            if len(digits) != 32:
                raise ValueError("invalid UUID")
            self._le = bytes(reversed(unhexlify(digits)))
        else:
            raw = bytes(value)
            if len(raw) not in (2, 4, 16):
                raise ValueError("invalid UUID")
            self._le = raw

    def __eq__(self, other):
        return isinstance(other, UUID) and other._le == self._le

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self._le)

    def le_bytes(self):
        """The UUID as it goes on the air (little-endian)."""
        return self._le

    def __str__(self):
        be = hexlify(bytes(reversed(self._le))).decode()
        if len(be) != 32:
            return "0x" + be
        return "-".join((be[:8], be[8:12], be[12:16], be[16:20], be[20:]))

    def __repr__(self):
        return "UUID(" + repr(str(self)) + ")"


class _Attr:
    """One attribute value: a buffer with MicroPython's size/append rules."""

    def __init__(self, flags):
        self.flags = flags
        self.value = b""
        self.size = _DEFAULT_ATTR_LEN
        self.append = False

    def remote_write(self, data):
        if self.append:
            room = self.size - len(self.value)
            self.value += data[: max(room, 0)]
        else:
            self.value = data[: self.size]


class _Connection:
    def __init__(self, handle, addr, mtu):
        self.handle = handle
        self.addr = addr
        self.mtu = mtu


class _BLE:
    """The `bluetooth.BLE` subset a peripheral uses, plus central test hooks."""

    def __init__(self):
        self.mac = b"\x24\x0a\xc4\x12\x34\x58"  # test hook: set before use
        self._active = False
        self._handler = None
        self._gap_name = b"MPY ESP32"
        self._mtu = 256  # ESP-IDF's default preferred MTU for NimBLE
        self._attrs = {}
        self._conns = {}
        # What the radio shows; test hooks read these.
        self.advertising = None
        self.scan_response = None
        self.connectable = True
        self.notified = []
        self.on_notify = None
        self.adv_count = 0

    # -- MicroPython API ------------------------------------------------

    def active(self, *state):
        if state:
            self._active = bool(state[0])
            if not self._active:
                self._stop_advertising()
                self._conns = {}
        return self._active

    def config(self, *names, **values):
        if names and values:
            raise TypeError("either get or set")
        if names:
            if len(names) != 1:
                raise TypeError("one parameter at a time")
            return self._get_config(names[0])
        for key, value in values.items():
            self._set_config(key, value)
        return None

    def _get_config(self, name):
        if name == "mac":
            return (0, self.mac)
        if name == "gap_name":
            return self._gap_name
        if name == "mtu":
            return self._mtu
        if name in ("rxbuf", "addr_mode", "io", "bond", "mitm", "le_secure"):
            return 0
        raise ValueError("unknown config param")

    def _set_config(self, key, value):
        if key == "mtu":
            if not _MIN_MTU <= value <= _MAX_MTU:
                raise OSError(22)  # NimBLE refuses it: EINVAL
            self._mtu = value
        elif key == "gap_name":
            self._gap_name = _as_bytes(value)
        elif key not in ("rxbuf", "addr_mode", "io", "bond", "mitm", "le_secure"):
            raise ValueError("unknown config param")

    def irq(self, handler):
        self._handler = handler

    def gap_advertise(
        self, interval_us, adv_data=None, resp_data=None, connectable=True
    ):
        self._check_active()
        if interval_us is None:
            self._stop_advertising()
            return
        adv = self._last_adv if adv_data is None else _as_bytes(adv_data)
        resp = self._last_resp if resp_data is None else _as_bytes(resp_data)
        if len(adv) > _MAX_ADV_LEN or len(resp) > _MAX_ADV_LEN:
            raise OSError(22)  # NimBLE: BLE_HS_EMSGSIZE, reported as EINVAL
        self._last_adv = adv
        self._last_resp = resp
        self.advertising = adv
        self.scan_response = resp
        self.connectable = connectable
        self.adv_count += 1

    _last_adv = b""
    _last_resp = b""

    def _stop_advertising(self):
        self.advertising = None
        self.scan_response = None

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self._conns:
            return False
        self._drop(conn_handle)
        return True

    def gatts_register_services(self, services):
        self._check_active()
        self._attrs = {}
        handle = _FIRST_HANDLE
        result = []
        for service_uuid, characteristics in services:
            UUID(service_uuid)
            handle += 1  # the service declaration
            handles = []
            for char in characteristics:
                flags = char[1]
                handle += 1  # the characteristic declaration
                self._attrs[handle + 1] = _Attr(flags)
                handles.append(handle + 1)
                handle += 1
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    handle += 1  # the client configuration descriptor
                for descriptor in char[2] if len(char) > 2 else ():
                    handle += 1
                    self._attrs[handle] = _Attr(descriptor[1])
                    handles.append(handle)
            result.append(tuple(handles))
        return tuple(result)

    def gatts_read(self, value_handle):
        attr = self._attr(value_handle)
        value = attr.value
        if attr.append:
            attr.value = b""
        return value

    def gatts_write(self, value_handle, data, send_update=False):
        attr = self._attr(value_handle)
        data = _as_bytes(data)
        attr.size = max(attr.size, len(data))  # gatts_write grows the buffer
        attr.value = data
        if send_update:
            for conn in list(self._conns):
                self.gatts_notify(conn, value_handle)

    def gatts_set_buffer(self, value_handle, length, append=False):
        attr = self._attr(value_handle)
        attr.size = length
        attr.append = bool(append)
        attr.value = b""  # MicroPython's resize empties the buffer

    def gatts_notify(self, conn_handle, value_handle, data=None):
        attr = self._attr(value_handle)
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(107)  # ENOTCONN
        payload = attr.value if data is None else _as_bytes(data)
        payload = payload[: conn.mtu - 3]  # NimBLE cuts, no error
        if self.on_notify is not None:
            self.on_notify(conn_handle, value_handle, payload)
        else:
            self.notified.append((conn_handle, value_handle, payload))

    # -- central-side test hooks ------------------------------------------

    def central_connect(self, conn_handle=1, mtu=256, addr=b"\x11\x22\x33\x44\x55\x66"):
        """A central connects; advertising stops; the MTU gets exchanged."""
        self._check_active()
        if self.advertising is None or not self.connectable:
            raise OSError(111)  # ECONNREFUSED: not advertising
        self._stop_advertising()
        self._conns[conn_handle] = _Connection(conn_handle, addr, _MIN_MTU)
        self._fire(_IRQ_CENTRAL_CONNECT, (conn_handle, 0, addr))
        if conn_handle in self._conns:
            agreed = max(_MIN_MTU, min(mtu, self._mtu))
            self._conns[conn_handle].mtu = agreed
            self._fire(_IRQ_MTU_EXCHANGED, (conn_handle, agreed))
        return conn_handle

    def central_write(self, conn_handle, data, value_handle=None, response=False):
        """A central writes `data`; returns what the buffer kept of it."""
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(107)  # ENOTCONN
        data = _as_bytes(data)
        limit = _MAX_ATTR_LEN if response else conn.mtu - 3
        if len(data) > limit:
            raise ValueError("write longer than " + str(limit) + " bytes")
        if value_handle is None:
            value_handle = self._writable_handle()
        attr = self._attr(value_handle)
        if not attr.flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
            raise OSError(3)  # ATT: write not permitted
        before = len(attr.value) if attr.append else 0
        attr.remote_write(data)
        kept = len(attr.value) - before
        self._fire(_IRQ_GATTS_WRITE, (conn_handle, value_handle))
        return kept

    def central_disconnect(self, conn_handle=1):
        """The central (or the link) goes away."""
        if conn_handle not in self._conns:
            raise OSError(107)  # ENOTCONN
        self._drop(conn_handle)

    def connection_mtu(self, conn_handle=1):
        """The MTU agreed on a connection (test hook)."""
        return self._conns[conn_handle].mtu

    def connected(self):
        """Handles of the live connections (test hook)."""
        return sorted(self._conns)

    # -- internals --------------------------------------------------------

    def _drop(self, conn_handle):
        conn = self._conns.pop(conn_handle)
        self._fire(_IRQ_CENTRAL_DISCONNECT, (conn_handle, 0, conn.addr))

    def _fire(self, event, data):
        if self._handler is not None:
            self._handler(event, data)

    def _attr(self, value_handle):
        attr = self._attrs.get(value_handle)
        if attr is None:
            raise ValueError("invalid handle")
        return attr

    def _writable_handle(self):
        for handle in sorted(self._attrs):
            if self._attrs[handle].flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
                return handle
        raise ValueError("no writable characteristic")

    def _check_active(self):
        if not self._active:
            raise OSError(1)  # EPERM: the stack is off


_singleton = []


def BLE():  # noqa: N802 - MicroPython's name
    """The one BLE object of this (virtual) board, as in MicroPython."""
    if not _singleton:
        _singleton.append(_BLE())
    return _singleton[0]
