"""Security on the board: idle connections dropped; (more below for content hashes)."""

import bluetooth
import nus_central
from nus_central import Central
from nus_peripheral import NUSPeripheral
from ota_manager import OTAManager


class Clock:
    """A clock the test moves by hand (NUSPeripheral.clock)."""

    def __init__(self):
        self.ms = 1000

    def __call__(self):
        return self.ms

    def advance(self, seconds):
        self.ms += int(seconds * 1000)


def _peripheral(app=None):
    OTAManager.RESET_DELAY_MS = 0
    p = NUSPeripheral(app=app)
    clock = Clock()
    p.clock = clock
    return p, clock


def test_silent_central_is_dropped_after_60_s():
    p, clock = _peripheral(app=lambda line: "PONG")
    ble = bluetooth.BLE()
    c = Central(p)
    p.poll()  # the connection's idle time starts
    clock.advance(59)
    assert c.ask("OTA:HELLO")[0].startswith("OTA:HELLO:")  # an OTA line: time resets
    clock.advance(59)
    p.poll()
    assert p.is_connected()
    assert c.ask("PING") == ["PONG"]  # application lines do not keep the link
    clock.advance(2)
    p.poll()
    assert not p.is_connected()
    assert ble.connected() == []
    assert ble.advertising is not None  # others can connect again
    assert p.idle_drops == 1
    c = Central(p, conn=2)  # the next central gets its own full minute
    p.poll()
    clock.advance(59)
    p.poll()
    assert p.is_connected()
    return {"idle_drops": p.idle_drops}


def test_longer_while_a_transfer_is_under_way_staged_data_kept():
    p, clock = _peripheral()
    c = Central(p)
    nus_central.hello(c)
    data = b"x = 1\n" * 100
    crc = nus_central.crc_hex(data)
    assert c.ask(f"OTA:FILE:app.py:{len(data)}:{crc}:2.0.0:b64:-:")[0].startswith(
        "OTA:READY:0:"
    )
    half = nus_central.b64(data[:150])
    assert c.ask(f"OTA:D:0:{half}") == ["OTA:A:150"]
    clock.advance(170)
    p.poll()
    assert p.is_connected()
    clock.advance(11)
    p.poll()
    assert not p.is_connected()
    p.poll()
    assert p.ota.state == OTAManager.IDLE
    c = Central(p, conn=2)
    assert nus_central.hello(c)["staged"]["app.py"]["have"] == 150


def test_idle_timeouts_from_config():
    import config

    config.IDLE_TIMEOUT_S = 5
    config.TRANSFER_IDLE_TIMEOUT_S = 20
    p, clock = _peripheral()
    assert (p.idle_ms, p.transfer_idle_ms) == (5000, 20000)
    Central(p)
    p.poll()
    clock.advance(6)
    p.poll()
    assert not p.is_connected()
