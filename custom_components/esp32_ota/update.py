"""The update entity of a board: its scripts, against its source folder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.update import UpdateEntity, UpdateEntityFeature
from homeassistant.core import HomeAssistant, callback

from . import repairs
from .entity import BoardEntity, async_show_firmware
from .source import is_content_hash

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import BoardCoordinator
    from .data import Esp32OtaConfigEntry

# Installs are serialised per board by its installer; boards are independent.
PARALLEL_UPDATES = 0

# Latest version of scripts edited in the folder without a new version.
FOLDER_CHANGED = " (folder changed)"

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


class BoardScriptsUpdate(BoardEntity, UpdateEntity):
    """The scripts of one board."""

    _attr_translation_key = "scripts"

    def __init__(self, coordinator: BoardCoordinator) -> None:
        """Keep the unique id of the board's address (the first entity)."""
        super().__init__(coordinator, None)
        self._update_attrs()

    @property
    def entity_picture(self) -> str | None:
        """No picture, so icons.json's icon shows.

        Update entities default to the brands CDN, which has no icon for a
        custom integration; Home Assistant serves our brand/ from 2026.3.
        """
        return None

    async def async_added_to_hass(self) -> None:
        """Follow the coordinator; report a refused file from the start."""
        await super().async_added_to_hass()
        self._report_refused()
        async_show_firmware(self.hass, self.coordinator)

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_attrs()
        self._report_refused()
        async_show_firmware(self.hass, self.coordinator)
        super()._handle_coordinator_update()

    @property
    def available(self) -> bool:
        """Available while the board is in range, and throughout an install."""
        return self.coordinator.available or self.coordinator.installer.installing

    @callback
    def _refused(self) -> tuple[list[str], list[str]]:
        """Files of the latest release the board would refuse, and its allowlist."""
        board = self.coordinator
        latest = board.source.latest
        info = board.data.board_info
        if latest is None or info is None:
            return [], []
        return board.data.refused(latest.names), sorted(info.allowed_files)

    @callback
    def _report_refused(self) -> None:
        refused, allowed = self._refused()
        board = self.coordinator
        repairs.async_track_refused(
            self.hass, board.config_entry, refused, allowed, str(board.folder.folder)
        )

    @callback
    def _update_attrs(self) -> None:
        board = self.coordinator
        installer = board.installer
        source = board.source
        latest = source.latest
        refused, allowed = self._refused()
        self._attr_installed_version = board.installed_version
        self._attr_latest_version = None
        if latest is not None:
            self._attr_latest_version = latest.version + (
                FOLDER_CHANGED if board.data.folder_changed(source) else ""
            )
        self._attr_in_progress = installer.installing
        self._attr_update_percentage = installer.progress
        self._attr_release_url = latest.release_url if latest else None
        features = _FEATURES
        if refused:  # an install certain to fail is not offered
            features &= ~UpdateEntityFeature.INSTALL
        elif len(source.releases) > 1:
            features |= UpdateEntityFeature.SPECIFIC_VERSION
        self._attr_supported_features = features
        summary = latest.summary if latest else None
        if refused:
            summary = _refusal(board.name, refused, allowed)
        elif source.problem is not None:
            summary = f"Source folder problem: {source.problem}"
        self._attr_release_summary = summary
        info = board.data.board_info
        self._attr_extra_state_attributes = {
            "protocol": board.data.protocol,
            "source_folder": str(board.folder.folder),
            "available_versions": sorted(source.releases),
            "files_to_update": board.data.files_to_send(latest) if latest else [],
            "files_refused": refused,
            "firmware": info.firmware if info else None,
            "trial": info.trial is not None if info else None,
            "queued": installer.queued,
            "install_phase": installer.phase,
            "connection": board.link.connection,
        }

    def version_is_newer(self, latest_version: str, installed_version: str) -> bool:
        """Compare versions; a content hash has no order, it only differs."""
        if latest_version.endswith(FOLDER_CHANGED):
            return True
        if is_content_hash(latest_version) or is_content_hash(installed_version):
            return latest_version != installed_version
        return super().version_is_newer(latest_version, installed_version)

    async def async_release_notes(self) -> str | None:
        """Return what stops an install, the changelog (or notes), what changes."""
        board = self.coordinator
        latest = board.source.latest
        if latest is None:
            return None
        lines: list[str] = []
        refused, allowed = self._refused()
        if refused:
            warning = _refusal(board.name, refused, allowed)
            lines += [f'<ha-alert alert-type="warning">{warning}</ha-alert>', ""]
        if latest.changelog:
            lines += [latest.changelog.rstrip(), ""]
        # The frontend fetches the notes once per opening of the dialog:
        # they say what they compare with, so they stay true after an install.
        changed = board.data.files_to_send(latest)
        installed = board.installed_version or "unknown"
        lines.append(
            f"Files in version {latest.version}, compared with {installed} on "
            "the board when this dialog opened:"
        )
        lines.extend(
            f"- {file.name} ({file.size} bytes)"
            + (" (to send)" if file.name in changed else " (on the board)")
            + (" (refused by the board)" if file.name in refused else "")
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


def _refusal(name: str, refused: list[str], allowed: list[str]) -> str:
    """Say which files the board would refuse, and what it accepts."""
    return (
        f"{name} would refuse {', '.join(refused)}: it accepts only "
        f"{', '.join(allowed)}. Remove the file from the folder (or from the "
        "manifest's files), or add it to ALLOWED_FILES on the board. Until "
        "then there is nothing to install."
    )
