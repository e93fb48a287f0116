"""The NUS peripheral takes lines only from the central it is connected to.

NimBLE reports a write with its connection handle. A write can come from a
central that is not ours: a second one the board is hanging up on (one
central at a time), or ours after its disconnect was reported. Such lines
must never reach the OTA engine or the application.
"""

import bluetooth
from fwtest import Recorder
from nus_central import Central
from nus_peripheral import NUSPeripheral
from ota_manager import OTAManager

_IRQ_GATTS_WRITE = 3


def _write_from(p, conn, data):
    """What the radio does for a write on connection `conn`."""
    bluetooth.BLE()._attr(p._rx).remote_write(data)
    p._irq(_IRQ_GATTS_WRITE, (conn, p._rx))


def test_lines_of_another_connection_are_dropped():
    OTAManager.RESET_DELAY_MS = 0
    app = Recorder()
    p = NUSPeripheral(app=app)
    c = Central(p, conn=1)
    _write_from(p, 2, b"OTA:START:main.py:10:0badf00d\nintruder\n")
    assert not p.poll()
    assert p.ota.state == OTAManager.IDLE
    c.send("mine")
    c.pump()
    assert app.lines == ["mine"]
    c.disconnect()
    _write_from(p, 1, b"after the disconnect\n")
    assert not p.poll()
    assert app.lines == ["mine"]
