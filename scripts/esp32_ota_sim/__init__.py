"""Simulated ESP32 boards for tests, the benchmark and the no-hardware demo.

One importable package. Its import roots (the repository root and scripts/)
are set in one place, pytest's `pythonpath` in pyproject.toml, which
`scripts/pyrun` also reads for the command-line entries:

- `scripts/bench` → `bench_cli` (cases and tables in `bench`);
- `scripts/virtual_proxy` → `esphome_proxy.cli`;
- `scripts/develop` → `esphome_proxy.develop`, the only module that imports
  Home Assistant and the integration (to write HA's `.storage`).

Modules:

- `memfs`: in-memory LittleFS-like flash with MicroPython's `os` subset and
  power-loss simulation.
- `board`: `VirtualBoard`, the real `device_firmware/*.py` booted from its own
  flash in an isolated namespace (boot.py, then `main.start()`);
  `runtime`: that namespace, the MicroPython world one boot runs in.
- `speed`: `BoardSpeed`, how long a board's work takes (CPU per write,
  flash, deflate decoder), with the ESP32's figures.
- `v1_board`: `V1OnlyBoard`, the one model of a board in the field that only
  speaks protocol v1 (its engine is `v1_firmware/ota_manager.py`).
- `link`: `SimLink` and `LinkProfile`/`PROFILES`, the BLE connection model
  (connection events, packets per event, proxy hop, loss, bounded queue).
- `fleet`: `fleet_topology`, N boards heard by random subsets of P proxies
  with random RSSI (seeded), and `board_address`.
- `bleak_backend`: `SimBleakClient`, a bleak backend reaching registered
  boards (also through Home Assistant's habluetooth wrapper).
- `clock`: `VirtualTimeLoop` / `run_virtual`, asyncio on virtual time;
  `ticks`: MicroPython's tick arithmetic on any clock.
- `stand_ins`: MicroPython's `machine`, `bluetooth`, `micropython` and
  `deflate` for CPython, the one set used by virtual boards and the firmware tests.
- `content`: what the benchmark and the tests send: random bytes, or real
  Python from `frozen_source.txt`, a snapshot that does not move with the code.

`bleak_backend` is not imported here so that the rest works without bleak.
"""

from .board import Advertisement, BootRecord, VirtualBoard
from .clock import VirtualTimeLoop, run_virtual
from .link import PROFILES, LinkClosedError, LinkError, LinkProfile, LinkStats, SimLink
from .memfs import MemFS, PowerLoss
from .speed import BoardSpeed

__all__ = [
    "PROFILES",
    "Advertisement",
    "BoardSpeed",
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
