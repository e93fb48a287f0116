"""The coordinator of one board: presence, its source folder, what it runs.

Built on Home Assistant's `DataUpdateCoordinator`, with the Bluetooth
callbacks registered here (as `led_ble` does), rather than on
`ActiveBluetoothDataUpdateCoordinator`. The active coordinator polls when an
advertisement arrives and its poll decision is made per advertisement; our
"poll" is a connection that must first win one of the few connection slots
of an adapter or proxy (the fleet scheduler), must never overlap an
install, and is wanted on a clock (hourly, when the board comes back in
range, on request), not per advertisement. `DataUpdateCoordinator` gives
exactly that clock, the listeners and `CoordinatorEntity`; the Bluetooth
callbacks only say whether a connectable scanner hears the board.

`data` is a `BoardData` (inventory.py): what the board reported, or for a
v1 board what we last installed. Installing is `BoardInstaller`'s job
(installer.py); connecting is `BoardLink`'s (link.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from homeassistant.components import bluetooth
from homeassistant.const import CONF_ADDRESS
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from . import repairs
from .const import DOMAIN
from .data import BoardSettings, StoredBoard, board_store
from .errors import LINK_ERRORS
from .fleet import BoardOutOfReachError, QueueTimeoutError
from .installer import BoardInstaller
from .inventory import BoardData
from .link import BoardLink
from .nus_ota.advert import AdvertisedState, parse_advertised_state
from .nus_ota.errors import OTAError
from .source import SourceState
from .source_watch import async_watch_folder

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .data import Esp32OtaConfigEntry
    from .history import TransferRecord

_LOGGER = logging.getLogger(__name__)


class BoardCoordinator(DataUpdateCoordinator[BoardData]):
    """One board: in range or not, its folder, what it runs, its installs."""

    config_entry: Esp32OtaConfigEntry

    def __init__(self, hass: HomeAssistant, entry: Esp32OtaConfigEntry) -> None:
        """Read the entry and join the watcher of its folder."""
        settings = BoardSettings.from_entry(hass, entry)
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=entry.title,
            update_interval=settings.probe_interval,
        )
        self.address: str = entry.data[CONF_ADDRESS]
        self.settings = settings
        self.source = SourceState()
        self.available = False  # a connectable adapter or proxy hears it
        self.data = BoardData()
        self.link = BoardLink(hass, self.address, self.name)
        self.installer = BoardInstaller(self)
        self._store = board_store(hass, entry.entry_id)
        self._issue_id = f"source_problem_{entry.entry_id}"
        self.advertised: AdvertisedState | None = None  # the last OTA state heard
        self._read_bundle: int | None = None  # the advertised bundle last read
        self._watcher, unwatch = async_watch_folder(
            hass, settings.source_dir, self._async_take_source
        )
        entry.async_on_unload(unwatch)
        self.folder = self._watcher.folder

    # -- life cycle

    async def async_start(self) -> None:
        """Load what we know, watch the board and its folder."""
        stored = StoredBoard.from_dict(await self._store.async_load())
        self.data = BoardData(
            protocol=stored.protocol,
            spoke_v2=stored.spoke_v2,
            record=stored.installed,
        )
        self.installer.history.extend(stored.history)
        await self.async_rescan_source()
        entry = self.config_entry
        entry.async_on_unload(
            lambda: ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)
        )
        self.available = bluetooth.async_address_present(
            self.hass, self.address, connectable=True
        )
        entry.async_on_unload(
            bluetooth.async_register_callback(
                self.hass,
                self._async_advertisement,
                bluetooth.BluetoothCallbackMatcher(address=self.address),
                bluetooth.BluetoothScanningMode.ACTIVE,
            )
        )
        entry.async_on_unload(
            bluetooth.async_track_unavailable(
                self.hass, self._async_unavailable, self.address, connectable=True
            )
        )
        if self.available:
            self.async_schedule_read()

    async def async_save(self) -> None:
        """Store what survives a restart."""
        stored = StoredBoard(
            installed=self.data.record,
            protocol=self.data.protocol,
            spoke_v2=self.data.spoke_v2,
            history=tuple(self.installer.history),
        )
        await self._store.async_save(stored.as_dict())

    # -- presence

    @callback
    def _async_advertisement(
        self,
        service_info: bluetooth.BluetoothServiceInfoBleak,
        change: bluetooth.BluetoothChange,
    ) -> None:
        """Follow the advertised OTA state; mark the board available.

        Home Assistant calls back when the advertisement changed; the
        entities are written each time (the signal strength is new too).
        """
        state = parse_advertised_state(service_info.service_data)
        came_back = service_info.connectable and not self.available
        if came_back:
            self.available = True
            _LOGGER.info("%s is back in range of a connectable scanner", self.name)
        if state is not None and state != self.advertised:
            self._async_follow(state)
        elif came_back and state is None:
            self.async_schedule_read()  # firmware that advertises no state
        self.async_update_listeners()

    @callback
    def _async_follow(self, state: AdvertisedState) -> None:
        """Take a new advertised state in, without connecting when we can.

        A bundle we can explain (the last HELLO, or it with a release of the
        folder installed) moves the installed version; another one is read
        over one connection. A rollback raises its repair at once, or with a
        key configured once a HELLO signed with the key confirmed it.
        Nothing is installed: anyone can advertise anything.
        """
        was_rolled_back = self.advertised is not None and self.advertised.rolled_back
        self.advertised = state
        known = None
        if state.bundle != self._read_bundle:
            known = self.data.with_bundle(state.bundle, self.source)
            if known is None:
                self.async_schedule_read()
            else:
                self.data = known
        if state.rolled_back and not was_rolled_back:
            if self.settings.auth_key is None:
                self._async_report_rollback()
            elif known is not None or state.bundle == self._read_bundle:
                self.async_schedule_read()  # the read confirms it (or not)

    @callback
    def _async_report_rollback(self) -> None:
        repairs.async_report_failure(
            self.hass,
            self.config_entry,
            "rolled_back",
            "the board went back to its previous version",
        )

    @callback
    def _async_unavailable(
        self, service_info: bluetooth.BluetoothServiceInfoBleak
    ) -> None:
        """No connectable scanner hears the board any more."""
        if not self.available:
            return
        self.available = False
        _LOGGER.info(
            "%s is unavailable: no connectable adapter or proxy hears it", self.name
        )
        self.async_update_listeners()

    # -- the source folder

    async def async_rescan_source(self) -> SourceState:
        """Re-read the folder now, for every board that uses it."""
        return await self._watcher.async_scan()

    @callback
    def _async_take_source(self, state: SourceState) -> None:
        """Follow a scan of the folder (its watcher calls this every time)."""
        if state is self.source:
            return
        self.source = state
        if (problem := state.problem) is not None:
            _LOGGER.warning("%s: %s", self.name, problem)
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="source_problem",
                translation_placeholders={
                    "name": self.name,
                    "folder": str(self.folder.folder),
                    "error": str(problem),
                },
            )
        else:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id)
        self.async_update_listeners()

    # -- what the board runs

    @property
    def installed_version(self) -> str | None:
        """Return the version on the board, as far as we know."""
        return self.data.installed_version(self.source)

    @callback
    def async_schedule_read(self) -> None:
        """Read the board soon, in the background."""
        self.config_entry.async_create_background_task(
            self.hass, self.async_refresh_board(), f"{DOMAIN} refresh {self.address}"
        )

    async def _async_update_data(self) -> BoardData:
        """Look at a board that does not advertise its state now and then.

        Every `probe_interval`, only while it is in range. A board that
        advertises its OTA state is read only when the state says something
        we cannot explain.
        """
        if self.available and self.advertised is None:
            await self.async_refresh_board()
        return self.data

    async def async_refresh_board(self) -> bool:
        """Ask the board what it runs; False when it could not be reached."""
        if self.link.busy or self.installer.installing:
            return False
        try:
            async with self.link.claim():
                info, app_version, signed = await self.link.read(self.settings.auth_key)
        except (
            OTAError,
            BoardOutOfReachError,
            QueueTimeoutError,
            *LINK_ERRORS,
        ) as err:
            _LOGGER.debug("%s: cannot read the board: %s", self.name, err)
            return False
        except Exception:  # a background task: log anything else, never die
            _LOGGER.exception("%s: unexpected error reading the board", self.name)
            return False
        if info is None and self.pinned_to_v2:
            # Never a silent fallback: old firmware, or a relay pretending.
            _LOGGER.warning("%s answered like protocol v1 firmware", self.name)
            repairs.async_report_answered_like_v1(self.hass, self.config_entry)
            return False
        self.data = replace(
            self.data,
            board_info=info,
            protocol=1 if info is None else 2,
            spoke_v2=self.data.spoke_v2 or info is not None,
            app_version=app_version if info is None else info.app_version,
        )
        _LOGGER.debug(
            "%s read: protocol %s, firmware %s, app %s, free flash %s, files %s",
            self.name,
            self.data.protocol,
            info.firmware if info else None,
            self.data.app_version,
            info.free if info else None,
            sorted(info.files) if info else None,
        )
        repairs.async_track_protocol(self.hass, self.config_entry, self.data.protocol)
        if self.advertised is not None:
            # What we just read is what the board advertises.
            self._read_bundle = self.advertised.bundle
            keyed = self.settings.auth_key is not None
            if (
                self.advertised.rolled_back
                and info is not None
                and info.rollback is not None
                and (signed or not keyed)
            ):
                self._async_report_rollback()
        await self.async_save()
        self.async_update_listeners()
        return True

    @property
    def pinned_to_v2(self) -> bool:
        """A v1 answer is an error: the board spoke v2, or a key is configured."""
        return self.data.spoke_v2 or self.settings.auth_key is not None

    async def async_forget_v2(self) -> None:
        """Forget that the board spoke v2 (the user confirmed a v1 reflash)."""
        self.data = replace(self.data, spoke_v2=False, protocol=None, board_info=None)
        await self.async_save()
        self.async_update_listeners()

    # -- installing (see installer.py)

    async def async_install(self, version: str | None) -> TransferRecord:
        """Install the latest release, or `version` from versions/ (forced)."""
        return await self.installer.async_install(version)

    async def async_install_files(
        self, contents: Mapping[str, bytes], version: str | None, force: bool
    ) -> TransferRecord:
        """Install the given files (the install_files action checked them)."""
        return await self.installer.async_install_files(contents, version, force)
