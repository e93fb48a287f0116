"""ESP32 OTA over Bluetooth: install MicroPython scripts on ESP32 boards.

One config entry per board. The board is reached through whichever local
adapter or ESPHome Bluetooth proxy hears it; its scripts come from a folder
under the Home Assistant configuration directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.const import Platform
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN
from .coordinator import BoardCoordinator
from .data import Esp32OtaConfigEntry, board_store
from .repairs import async_delete_issues
from .services import async_setup_services

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.typing import ConfigType

PLATFORMS: list[Platform] = [Platform.SENSOR, Platform.UPDATE]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, whether or not any board is set up."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: Esp32OtaConfigEntry) -> bool:
    """Watch the board and its folder; the entity is unavailable until heard."""
    coordinator = BoardCoordinator(hass, entry)
    await coordinator.async_start()
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: Esp32OtaConfigEntry) -> bool:
    """Unload the entity; callbacks and timers go with the entry."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: Esp32OtaConfigEntry) -> None:
    """Forget what we recorded about a removed board, and its issues."""
    async_delete_issues(hass, entry.entry_id)
    await board_store(hass, entry.entry_id).async_remove()
