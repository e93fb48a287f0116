"""A virtual ESPHome Bluetooth proxy in front of virtual boards.

- `server`: `VirtualProxy`, the ESPHome native API (plaintext) on TCP, with
  raw advertisements, connection slots and GATT over `SimLink`s.
- `framing`: the plaintext frames and aioesphomeapi's message classes.
- `gatt`: the NUS table as the proxy reports it.
- `boards`: boards from a spec ("v2,v1"), including a v1-only board
  (`esp32_ota_sim.v1_board`).
- `scanner`: bleak-esphome's scanner and client wired to a proxy through a
  real aioesphomeapi APIClient, for Home Assistant tests without HA's
  esphome integration.
- `cli`: `scripts/virtual_proxy`.
- `develop`: scripts/develop's esphome config entry and demo source folders.
"""

from esp32_ota_sim.v1_board import V1OnlyBoard

from .boards import make_boards
from .server import FEATURE_FLAGS, ProxyInfo, VirtualProxy

__all__ = ["FEATURE_FLAGS", "ProxyInfo", "V1OnlyBoard", "VirtualProxy", "make_boards"]
