"""Prepare scripts/develop's Home Assistant for the virtual proxy (no hardware).

    python -m esp32_ota_sim.esphome_proxy.develop --config .develop/config \
        --port 6053 --boards v2,v1

Run it while Home Assistant is stopped. It

- adds a config entry of HA's esphome integration for the virtual proxy
  (127.0.0.1:<port>, no password, no encryption key) to
  `.storage/core.config_entries`, built with Home Assistant's own
  `ConfigEntry` so the stored form is exactly what HA writes; an entry for
  the same host and port is left alone;
- gives every virtual board a source folder at the integration's default
  place (`esp32_ota/<board>/`) holding a newer demo app (1.1.0), and an
  older one in `versions/1.0.1/` (a specific version to pick), unless the
  folder already has scripts.

The boards then show up as discovered in Home Assistant, and once added,
their update entity offers 1.1.0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import (
    SOURCE_USER,
    STORAGE_KEY,
    STORAGE_VERSION,
    STORAGE_VERSION_MINOR,
    ConfigEntry,
)
from homeassistant.helpers.device_registry import format_mac

from custom_components.esp32_ota.config_flow import default_source_dir

from .boards import make_boards
from .server import ProxyInfo

__all__ = ["add_esphome_entry", "write_demo_sources"]

DEMO_VERSION = "1.1.0"
# An older release in versions/, to try installing a specific version.
OLDER_VERSION = "1.0.1"


def demo_app(version: str) -> str:
    """The demo application of one version."""
    return f'''"""The demo application, version {version}, installed over the air.

handle(line) gets every received line that is not OTA traffic and may return
a reply line.
"""

VERSION = "{version}"


def handle(line):
    if line == "PING":
        return "PONG"
    if line == "VERSION":
        return "VERSION:" + VERSION
    if line == "HELLO":
        return "Hello from the demo app " + VERSION
    return None
'''


DEMO_CHANGELOG = f"""# {DEMO_VERSION}

- Answers HELLO with a greeting.
- VERSION reports the app's own version.

Sent by Home Assistant over Bluetooth, through the virtual ESPHome proxy.
"""


def add_esphome_entry(
    config_dir: Path, host: str, port: int, info: ProxyInfo | None = None
) -> bool:
    """Add the proxy's esphome config entry; False if one for host:port exists."""
    info = info or ProxyInfo()
    path = config_dir / ".storage" / STORAGE_KEY
    stored: dict[str, Any]
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = {
            "version": STORAGE_VERSION,
            "minor_version": STORAGE_VERSION_MINOR,
            "key": STORAGE_KEY,
            "data": {"entries": []},
        }
    entries: list[dict[str, Any]] = stored["data"]["entries"]
    for existing in entries:
        data = existing.get("data", {})
        if (
            existing.get("domain") == "esphome"
            and data.get("host") == host
            and data.get("port") == port
        ):
            return False
    entry: ConfigEntry[Any] = ConfigEntry(
        data={
            "host": host,
            "port": port,
            "password": "",
            "noise_psk": None,
            "device_name": info.name,
        },
        discovery_keys=MappingProxyType({}),
        domain="esphome",
        minor_version=1,
        options={},
        source=SOURCE_USER,
        subentries_data=None,
        title=info.friendly_name,
        unique_id=format_mac(info.mac_address),
        version=1,
    )
    entries.append(json.loads(json.dumps(entry.as_dict(), default=str)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, indent=2))
    return True


def write_demo_sources(config_dir: Path, boards_spec: str) -> list[Path]:
    """A newer demo app in each board's default source folder; returns the new ones."""
    written: list[Path] = []
    for board in make_boards(boards_spec):
        name = board.name or board.address
        folder = config_dir / default_source_dir(name, board.address)
        board.stop()
        if folder.exists() and any(folder.glob("*.py")):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "app.py").write_text(demo_app(DEMO_VERSION))
        older = folder / "versions" / OLDER_VERSION
        older.mkdir(parents=True)
        (older / "app.py").write_text(demo_app(OLDER_VERSION))
        (folder / "CHANGELOG.md").write_text(DEMO_CHANGELOG)
        (folder / "esp32_ota.json").write_text(
            json.dumps(
                {
                    "version": DEMO_VERSION,
                    "release_notes": "Answers HELLO; VERSION reports the app.",
                },
                indent=2,
            )
            + "\n"
        )
        written.append(folder)
    return written


def main(argv: list[str] | None = None) -> int:
    """Prepare the configuration directory."""
    parser = argparse.ArgumentParser(prog="esp32_ota_sim.esphome_proxy.develop")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6053)
    parser.add_argument("--boards", default="v2,v1")
    args = parser.parse_args(argv)
    if add_esphome_entry(args.config, args.host, args.port):
        print(f"develop: added an ESPHome entry for {args.host}:{args.port}")
    for folder in write_demo_sources(args.config, args.boards):
        print(f"develop: demo scripts {DEMO_VERSION} in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
