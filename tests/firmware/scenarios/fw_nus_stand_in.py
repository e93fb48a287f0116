"""The `bluetooth` stand-in behaves like MicroPython's on an ESP32 (NimBLE)."""

import bluetooth

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_MTU_EXCHANGED = 21

SERVICE = (
    bluetooth.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"),
    (
        (bluetooth.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"), bluetooth.FLAG_NOTIFY),
        (
            bluetooth.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"),
            bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE,
        ),
    ),
)


def setup():
    ble = bluetooth.BLE()
    assert ble is bluetooth.BLE()  # one radio per board
    events = []
    ble.irq(lambda event, data: events.append((event, data)))
    ble.active(True)
    ((tx, rx),) = ble.gatts_register_services((SERVICE,))
    ble.gap_advertise(100000, b"\x02\x01\x06")
    return ble, tx, rx, events


def test_attribute_buffers():
    ble, tx, rx, events = setup()
    conn = ble.central_connect(1, mtu=100)
    assert ble.central_write(conn, b"x" * 30) == 20  # default buffer: 20 bytes
    assert ble.gatts_read(rx) == b"x" * 20
    assert ble.gatts_read(rx) == b"x" * 20  # not in append mode: stays
    ble.central_write(conn, b"short")
    assert ble.gatts_read(rx) == b"short"  # each write replaces the last
    ble.gatts_set_buffer(rx, 16, True)  # resizing empties the buffer
    assert ble.gatts_read(rx) == b""
    assert ble.central_write(conn, b"0123456789") == 10
    assert ble.central_write(conn, b"abcdefghij") == 6  # the rest is cut
    assert ble.gatts_read(rx) == b"0123456789abcdef"
    assert ble.gatts_read(rx) == b""  # append mode: reading empties it
    assert events[-1] == (_IRQ_GATTS_WRITE, (conn, rx))
    ble.gatts_write(tx, b"local value")
    assert ble.gatts_read(tx) == b"local value"


def test_connection_events_mtu_and_notifications():
    ble, tx, rx, events = setup()
    assert ble.config("mtu") == 256
    try:
        ble.config(mtu=600)
        raise AssertionError("accepted an MTU over 517")
    except OSError:
        pass
    ble.config(mtu=517)
    conn = ble.central_connect(3, mtu=185)
    assert events[0][0] == _IRQ_CENTRAL_CONNECT
    assert events[0][1][0] == 3
    assert events[1] == (_IRQ_MTU_EXCHANGED, (3, 185))
    assert ble.advertising is None  # connecting stops advertising
    ble.gatts_notify(conn, tx, b"y" * 300)
    assert ble.notified == [(3, tx, b"y" * 182)]  # cut to MTU - 3, no error
    try:
        ble.central_write(conn, b"z" * 183)  # longer than one ATT packet
        raise AssertionError("accepted")
    except ValueError:
        pass
    ble.gatts_set_buffer(rx, 600, True)
    assert ble.central_write(conn, b"z" * 512, response=True) == 512  # long write
    ble.central_disconnect(conn)
    assert events[-1][0] == _IRQ_CENTRAL_DISCONNECT
    try:
        ble.gatts_notify(conn, tx, b"gone")
        raise AssertionError("notified a closed connection")
    except OSError:
        pass
    assert not ble.gap_disconnect(conn)


def test_advertising_limits_and_uuids():
    ble, _, _, _ = setup()
    try:
        ble.gap_advertise(100000, b"x" * 32)
        raise AssertionError("accepted 32 bytes")
    except OSError:
        pass
    ble.gap_advertise(100000, b"\x02\x01\x06", resp_data=b"\x03\x09hi")
    assert ble.scan_response == b"\x03\x09hi"
    ble.gap_advertise(None)
    assert ble.advertising is None
    ble.gap_advertise(50000)  # None data: the previous payloads again
    assert ble.advertising == b"\x02\x01\x06"
    assert ble.scan_response == b"\x03\x09hi"
    assert bluetooth.UUID(0x180F) == bluetooth.UUID(0x180F)
    nus = bluetooth.UUID("6e400001-b5a3-f393-e0a9-e50e24dcca9e")
    assert str(nus) == "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
    assert nus.le_bytes()[0] == 0x9E
    assert ble.config("mac")[1] == ble.mac
    ble.active(False)
    try:
        ble.gap_advertise(100000, b"")
        raise AssertionError("advertised with the radio off")
    except OSError:
        pass
