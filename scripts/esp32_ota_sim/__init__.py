"""Simulated ESP32 boards for tests, the benchmark and the no-hardware demo.

- `memfs`: in-memory LittleFS-like flash with MicroPython's `os` subset and
  power-loss simulation.
- `board`: `VirtualBoard`, the real `device_firmware/*.py` booted from its own
  flash in an isolated namespace (boot.py, then `main.start()`).
- `link`: `SimLink` and `LinkProfile`/`PROFILES`, the BLE connection model
  (connection events, packets per event, proxy hop, loss, bounded queue).
- `bleak_backend`: `SimBleakClient`, a bleak backend reaching registered
  boards (also through Home Assistant's habluetooth wrapper).
- `clock`: `VirtualTimeLoop` / `run_virtual`, asyncio on virtual time.
- `stand_ins`: MicroPython `machine` and `bluetooth` for CPython (owned by
  the firmware team).

`bleak_backend` is not imported here so that the rest works without bleak.
"""

from .board import Advertisement, BootRecord, VirtualBoard
from .clock import VirtualTimeLoop, run_virtual
from .link import PROFILES, LinkClosedError, LinkError, LinkProfile, LinkStats, SimLink
from .memfs import MemFS, PowerLoss

__all__ = [
    "PROFILES",
    "Advertisement",
    "BootRecord",
    "LinkClosedError",
    "LinkError",
    "LinkProfile",
    "LinkStats",
    "MemFS",
    "PowerLoss",
    "SimLink",
    "VirtualBoard",
    "VirtualTimeLoop",
    "run_virtual",
]
