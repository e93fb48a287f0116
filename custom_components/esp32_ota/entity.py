"""What the entities of a board share: its device and its coordinator."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import BoardCoordinator


def _firmware(coordinator: BoardCoordinator) -> str | None:
    """Return the firmware version of the board's last HELLO (v1 boards: None)."""
    info = coordinator.data.board_info
    return info.firmware if info is not None else None


class BoardEntity(CoordinatorEntity[BoardCoordinator]):
    """An entity of one board, on the board's device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: BoardCoordinator, key: str | None) -> None:
        """Describe the board as a device known by its Bluetooth address."""
        super().__init__(coordinator)
        address = coordinator.address
        self._attr_unique_id = address if key is None else f"{address}_{key}"
        self._attr_device_info = DeviceInfo(
            connections={(dr.CONNECTION_BLUETOOTH, address)},
            identifiers={(DOMAIN, address)},
            name=coordinator.name,
            manufacturer="Espressif",
            model="ESP32 (MicroPython)",
            sw_version=_firmware(coordinator),
        )


@callback
def async_show_firmware(hass: HomeAssistant, coordinator: BoardCoordinator) -> None:
    """Show the firmware version of the board's last HELLO on its device."""
    if (firmware := _firmware(coordinator)) is None:
        return
    registry = dr.async_get(hass)
    device = registry.async_get_device(identifiers={(DOMAIN, coordinator.address)})
    if device is not None and device.sw_version != firmware:
        registry.async_update_device(device.id, sw_version=firmware)
