"""The typed config entry, a board's settings, and what is stored per board.

A board's store (`.storage/esp32_ota.<entry_id>`) holds::

    {"installed": {"version": str, "files": {name: crc}} | null,
     "protocol": 1 | 2 | null,
     "spoke_v2": bool,          # it answered HELLO once (protocol pinned)
     "transfers": [TransferRecord.as_dict(), ...]}   # the install history

`installed` is what we last installed (all we know of a v1 board's files);
damaged parts are dropped on load, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.storage import Store

from .const import (
    CONF_AUTH_KEY,
    CONF_CONFIRM_TRIAL,
    CONF_ENCODING,
    CONF_PROBE_MINUTES,
    CONF_SOURCE_DIR,
    CONF_TOKEN,
    CONF_WINDOW,
    DEFAULT_CONFIRM_TRIAL,
    DEFAULT_PROBE_MINUTES,
    DOMAIN,
    STORAGE_VERSION,
)
from .history import TransferRecord
from .inventory import InstalledRecord

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from homeassistant.core import HomeAssistant

    from .coordinator import BoardCoordinator

type Esp32OtaConfigEntry = ConfigEntry[BoardCoordinator]

# What an entry that has no such option (saved before it existed, or left at
# its default) means.
_OPTION_DEFAULTS: Final = {
    CONF_CONFIRM_TRIAL: DEFAULT_CONFIRM_TRIAL,
    CONF_PROBE_MINUTES: DEFAULT_PROBE_MINUTES,
}


def with_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return an entry's options with the meaning of absent ones filled in."""
    return {**_OPTION_DEFAULTS, **options}


@dataclass(frozen=True, slots=True)
class BoardSettings:
    """The options of a board's entry (a change reloads the entry)."""

    source_dir: Path
    auth_key: str | None = field(repr=False)  # secrets stay out of any log
    token: str | None = field(repr=False)
    window: int | None
    encoding: str | None
    confirm_trial: bool
    # How often a board that advertises no OTA state (v1 firmware) is read.
    probe_interval: timedelta

    @classmethod
    def from_entry(cls, hass: HomeAssistant, entry: ConfigEntry) -> BoardSettings:
        """Read the options; empty values mean 'not set'."""
        options = with_defaults(entry.options)
        return cls(
            source_dir=Path(hass.config.path(options[CONF_SOURCE_DIR])),
            auth_key=options.get(CONF_AUTH_KEY) or None,
            token=options.get(CONF_TOKEN) or None,
            window=options.get(CONF_WINDOW) or None,
            encoding=options.get(CONF_ENCODING) or None,
            confirm_trial=options[CONF_CONFIRM_TRIAL],
            probe_interval=timedelta(minutes=options[CONF_PROBE_MINUTES]),
        )


@dataclass(frozen=True, slots=True)
class StoredBoard:
    """What survives a restart."""

    installed: InstalledRecord | None = None
    protocol: int | None = None
    spoke_v2: bool = False
    history: tuple[TransferRecord, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "installed": self.installed.as_dict() if self.installed else None,
            "protocol": self.protocol,
            "spoke_v2": self.spoke_v2,
            "transfers": [record.as_dict() for record in self.history],
        }

    @classmethod
    def from_dict(cls, data: Any) -> StoredBoard:
        """Read the stored form, dropping whatever is damaged."""
        if not isinstance(data, dict):
            return cls()
        protocol = data.get("protocol")
        history = data.get("transfers")
        records: Iterable[Any] = history if isinstance(history, list) else ()
        return cls(
            installed=InstalledRecord.from_dict(data.get("installed")),
            protocol=protocol if protocol in (1, 2) else None,
            # Boards stored before this flag existed: protocol 2 says the same.
            spoke_v2=data.get("spoke_v2") is True or protocol == 2,
            history=tuple(
                record
                for item in records
                if (record := TransferRecord.from_dict(item)) is not None
            ),
        )


def board_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Return the store of one board's entry."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}")
