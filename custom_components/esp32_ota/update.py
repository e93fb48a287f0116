"""The update entity of a board: its scripts, against its source folder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.update import UpdateEntity, UpdateEntityFeature
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import BoardCoordinator
from .source import is_content_hash

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .data import Esp32OtaConfigEntry

# Installs are serialised per board by its installer; boards are independent.
PARALLEL_UPDATES = 0

_FEATURES = (
    UpdateEntityFeature.INSTALL
    | UpdateEntityFeature.PROGRESS
    | UpdateEntityFeature.RELEASE_NOTES
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: Esp32OtaConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One update entity per board."""
    async_add_entities([BoardScriptsUpdate(entry.runtime_data)])


class BoardScriptsUpdate(CoordinatorEntity[BoardCoordinator], UpdateEntity):
    """The scripts of one board."""

    _attr_has_entity_name = True
    _attr_translation_key = "scripts"

    def __init__(self, coordinator: BoardCoordinator) -> None:
        """Describe the board as a device known by its Bluetooth address."""
        super().__init__(coordinator)
        self._attr_unique_id = coordinator.address
        self._attr_device_info = DeviceInfo(
            connections={(dr.CONNECTION_BLUETOOTH, coordinator.address)},
            identifiers={(DOMAIN, coordinator.address)},
            name=coordinator.name,
            manufacturer="Espressif",
            model="ESP32 (MicroPython)",
        )
        self._update_attrs()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_attrs()
        super()._handle_coordinator_update()

    @property
    def available(self) -> bool:
        """Available while the board is in range, and throughout an install."""
        return self.coordinator.available or self.coordinator.installer.installing

    @callback
    def _update_attrs(self) -> None:
        board = self.coordinator
        installer = board.installer
        source = board.source
        latest = source.latest
        self._attr_installed_version = board.installed_version
        self._attr_latest_version = latest.version if latest else None
        self._attr_in_progress = installer.installing
        self._attr_update_percentage = installer.progress
        self._attr_release_url = latest.release_url if latest else None
        features = _FEATURES
        if len(source.releases) > 1:
            features |= UpdateEntityFeature.SPECIFIC_VERSION
        self._attr_supported_features = features
        summary = latest.summary if latest else None
        if latest is not None and (refused := board.data.refused(latest.names)):
            summary = (
                f"The board would refuse {', '.join(refused)}: "
                "remove it from the folder or allow it on the board."
            )
        elif source.problem is not None:
            summary = f"Source folder problem: {source.problem}"
        self._attr_release_summary = summary
        info = board.data.board_info
        self._attr_extra_state_attributes = {
            "protocol": board.data.protocol,
            "source_folder": str(board.folder.folder),
            "available_versions": sorted(source.releases),
            "files_to_update": board.data.files_to_send(latest) if latest else [],
            "firmware": info.firmware if info else None,
            "trial": info.trial is not None if info else None,
            "queued": installer.queued,
            "connection": board.link.connection,
        }

    def version_is_newer(self, latest_version: str, installed_version: str) -> bool:
        """Compare versions; a content hash has no order, it only differs."""
        if is_content_hash(latest_version) or is_content_hash(installed_version):
            return latest_version != installed_version
        return super().version_is_newer(latest_version, installed_version)

    async def async_release_notes(self) -> str | None:
        """Return the latest changelog (or notes) and what will change."""
        board = self.coordinator
        latest = board.source.latest
        if latest is None:
            return None
        changed = board.data.files_to_send(latest)
        lines = [latest.changelog.rstrip(), ""] if latest.changelog else []
        lines.append(f"Files in version {latest.version}:")
        lines.extend(
            f"- {file.name} ({file.size} bytes)"
            + (" (changed)" if file.name in changed else "")
            for file in latest.files
        )
        return "\n".join(lines)

    async def async_install(
        self, version: str | None, backup: bool, **kwargs: Any
    ) -> None:
        """Send the changed scripts and wait until the board runs them."""
        await self.coordinator.async_install(version)

    async def async_update(self) -> None:
        """On request (homeassistant.update_entity): re-read folder and board."""
        await self.coordinator.async_rescan_source()
        if self.coordinator.available:
            await self.coordinator.async_refresh_board()
