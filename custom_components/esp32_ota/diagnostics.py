"""Diagnostics: what the board reported, what the folder offers, no secrets."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from homeassistant.components.diagnostics import async_redact_data

from .const import CONF_AUTH_KEY, CONF_TOKEN
from .fleet import get_fleet

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .data import Esp32OtaConfigEntry

TO_REDACT = {CONF_AUTH_KEY, CONF_TOKEN, "nonce"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: Esp32OtaConfigEntry
) -> dict[str, Any]:
    """Return the board's state as the integration sees it.

    `board` is what the board reported (capabilities: protocol, window, line
    size, encodings, auth scheme, free space; inventory: files, staged files,
    trial, rollback), `transfers` the last installs with timing, retries and
    the adapter or proxy used, `fleet` the boards admitted to connect and
    waiting, connections refused for lack of slots, and each adapter's or
    proxy's slots (free, ours, the most in use).
    """
    board = entry.runtime_data
    data = board.data
    installer = board.installer
    source = board.source
    info = asdict(data.board_info) if data.board_info else None
    if info is not None:
        info["encodings"] = sorted(info["encodings"])
    return {
        "options": async_redact_data(dict(entry.options), TO_REDACT),
        "available": board.available,
        "installing": installer.installing,
        "queued": installer.queued,
        "connection": board.link.connection,
        "protocol": data.protocol,
        "app_version": data.app_version,
        "installed_version": board.installed_version,
        "board": async_redact_data(info, TO_REDACT) if info else None,
        "recorded": data.record.as_dict() if data.record else None,
        "transfers": [record.as_dict() for record in installer.history],
        "fleet": get_fleet(hass).as_dict(),
        "source": {
            "folder": str(board.folder.folder),
            "problem": str(source.problem) if source.problem else None,
            "releases": {
                version: {
                    "declared": release.declared,
                    "files": {
                        f.name: {"size": f.size, "crc": f.crc} for f in release.files
                    },
                }
                for version, release in source.releases.items()
            },
        },
    }
