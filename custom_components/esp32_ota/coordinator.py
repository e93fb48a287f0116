"""One board: presence, what it runs, what its folder offers, and installs."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bleak_retry_connector
from bleak.exc import BleakError
from bleak_retry_connector import (
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
    establish_connection,
)
from homeassistant.components import bluetooth
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_ADDRESS
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from . import repairs
from .const import (
    BOARD_REFRESH_INTERVAL,
    CONF_AUTH_KEY,
    CONF_CONFIRM_TRIAL,
    CONF_ENCODING,
    CONF_SOURCE_DIR,
    CONF_TOKEN,
    CONF_WINDOW,
    CONNECT_ATTEMPTS,
    DEFAULT_CONFIRM_TRIAL,
    DOMAIN,
    SOURCE_SCAN_INTERVAL,
    STORAGE_VERSION,
    TRIAL_POLL_INTERVAL,
    TRIAL_TIMEOUT,
    VERSION_REPLY_TIMEOUT,
)
from .fleet import (
    BoardOutOfReachError,
    QueueTimeoutError,
    connection_path,
    get_fleet,
)
from .nus_ota.client import FileImage, OTAClient
from .nus_ota.errors import (
    AuthRequiredError,
    ConnectFailedError,
    CrcMismatchError,
    DeviceError,
    LinkTooSmallError,
    NotInstalledError,
    OTAError,
    ProtocolError,
    RejectedError,
    RolledBackError,
    SizeMismatchError,
)
from .nus_ota.install import InstallOptions, InstallResult, install, probe
from .nus_ota.transport import BleakTransport, Transport
from .source import Release, SourceError, SourceFolder, SourceState
from .transfers import (
    EVENT_FAILED,
    EVENT_FINISHED,
    EVENT_INSTALL,
    EVENT_STARTED,
    HISTORY_LENGTH,
    RESULT_INSTALLED,
    RESULT_UNCHANGED,
    TRIGGER_ACTION,
    TRIGGER_ENTITY,
    TransferRecord,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from bleak.backends.device import BLEDevice

    from .nus_ota.board_info import BoardInfo

_LOGGER = logging.getLogger(__name__)

type Esp32OtaConfigEntry = ConfigEntry[BoardCoordinator]

# What a failed connection or conversation can raise besides OTAError.
_LINK_ERRORS = (BleakError, OSError, TimeoutError)
# Failures after which the board runs something else than we thought.
_READ_AGAIN_AFTER = frozenset({"rolled_back", "not_installed", "trial_unconfirmed"})


@dataclass(frozen=True, slots=True)
class InstalledRecord:
    """What this integration last installed on the board (persisted).

    A v1 board cannot say which files it holds, so this is all we know.
    """

    version: str
    files: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {"version": self.version, "files": dict(self.files)}

    @classmethod
    def from_dict(cls, data: Any) -> InstalledRecord | None:
        """Read the stored form; None when it is missing or damaged."""
        if not isinstance(data, dict):
            return None
        version = data.get("version")
        files = data.get("files")
        if not isinstance(version, str) or not isinstance(files, dict):
            return None
        return cls(version, {str(k): str(v) for k, v in files.items()})


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """What one install sends, and what to remember once it went through."""

    files: tuple[str, ...]  # every file of the request
    contents: Mapping[str, bytes]  # those to send
    version: str  # shown and reported ("" when the request has none)
    wire_version: str  # sent to the board
    force: bool
    record: InstalledRecord | None  # what the board holds afterwards

    @property
    def names(self) -> list[str]:
        """Return the file names of the request."""
        return list(self.files)


def install_error(key: str, **placeholders: str) -> HomeAssistantError:
    """Build a translated install error."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


class BoardCoordinator:
    """State of one board, shared with its entity; one connection at a time."""

    def __init__(self, hass: HomeAssistant, entry: Esp32OtaConfigEntry) -> None:
        """Read the entry; nothing runs before async_start()."""
        self.hass = hass
        self.entry = entry
        self.address: str = entry.data[CONF_ADDRESS]
        self.name: str = entry.title
        self.folder = SourceFolder(
            Path(hass.config.path(entry.options[CONF_SOURCE_DIR]))
        )
        self.auth_key: str | None = entry.options.get(CONF_AUTH_KEY) or None
        self.token: str | None = entry.options.get(CONF_TOKEN) or None
        self.window: int | None = entry.options.get(CONF_WINDOW) or None
        self.encoding: str | None = entry.options.get(CONF_ENCODING) or None
        self.confirm_trial: bool = entry.options.get(
            CONF_CONFIRM_TRIAL, DEFAULT_CONFIRM_TRIAL
        )
        self.source = SourceState()
        self.available = False
        self.board_info: BoardInfo | None = None
        self.protocol: int | None = None
        self.app_version: str | None = None
        self.record: InstalledRecord | None = None
        self.installing = False
        self.queued = False
        self.progress: float | None = None
        self.transfers: deque[TransferRecord] = deque(maxlen=HISTORY_LENGTH)
        # The adapter or proxy of the last connection: "name (source)".
        self.connection: str | None = None
        self._listeners: list[CALLBACK_TYPE] = []
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}"
        )
        self._link_lock = asyncio.Lock()
        self._read_again = False
        self._gave_up: BleakError | None = None
        self._issue_id = f"source_problem_{entry.entry_id}"

    # -- life cycle

    async def async_start(self) -> None:
        """Load what we know, watch the board and its folder."""
        stored = await self._store.async_load() or {}
        self.record = InstalledRecord.from_dict(stored.get("installed"))
        protocol = stored.get("protocol")
        self.protocol = protocol if protocol in (1, 2) else None
        transfers = stored.get("transfers")
        for data in transfers if isinstance(transfers, list) else []:
            if (record := TransferRecord.from_dict(data)) is not None:
                self.transfers.append(record)
        await self.async_rescan_source()
        entry = self.entry
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
        entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_scan_timer,
                SOURCE_SCAN_INTERVAL,
                name=f"{DOMAIN} source scan",
                cancel_on_shutdown=True,
            )
        )
        entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_refresh_timer,
                BOARD_REFRESH_INTERVAL,
                name=f"{DOMAIN} board refresh",
                cancel_on_shutdown=True,
            )
        )
        if self.available:
            self._schedule_refresh()

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` whenever anything shown changes."""
        self._listeners.append(listener)

        @callback
        def remove() -> None:
            self._listeners.remove(listener)

        return remove

    @callback
    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    # -- presence

    @callback
    def _async_advertisement(
        self,
        service_info: bluetooth.BluetoothServiceInfoBleak,
        change: bluetooth.BluetoothChange,
    ) -> None:
        """Mark the board available; read it again if it was away."""
        if not service_info.connectable or self.available:
            return
        self.available = True
        self._notify()
        self._schedule_refresh()

    @callback
    def _async_unavailable(
        self, service_info: bluetooth.BluetoothServiceInfoBleak
    ) -> None:
        """No connectable scanner hears the board any more."""
        self.available = False
        self._notify()

    # -- the source folder

    async def _async_scan_timer(self, _now: Any) -> None:
        await self.async_rescan_source()

    async def async_rescan_source(self) -> SourceState:
        """Re-read the folder if it changed (a stat walk in the executor)."""
        state = await self.hass.async_add_executor_job(self.folder.scan)
        if state is self.source:
            return state
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
        self._notify()
        return state

    # -- what the board runs

    def board_crcs(self) -> Mapping[str, str] | None:
        """CRC of each file on the board, as far as we know."""
        if self.board_info is not None:
            return {
                name: file.crc
                for name, file in self.board_info.files.items()
                if file is not None
            }
        if self.record is not None:
            return self.record.files
        return None

    def _matching_release(self) -> Release | None:
        """Return the release of the folder the board holds exactly, if any."""
        crcs = self.board_crcs()
        if crcs is None:
            return None
        candidates = list(self.source.releases.values())
        if self.source.latest is not None:
            candidates.insert(0, self.source.latest)
        for release in candidates:
            if all(crcs.get(file.name) == file.crc for file in release.files):
                return release
        return None

    def _reported_version(self) -> str | None:
        """Return the version the board (or our record of it) reports."""
        info = self.board_info
        if info is None:
            return self.record.version if self.record else self.app_version
        latest = self.source.latest
        names = latest.names if latest is not None else list(info.files)
        versions = {
            file.version
            for name in names
            if (file := info.files.get(name)) is not None and file.version
        }
        if len(versions) == 1:
            return versions.pop()
        return info.app_version

    @property
    def installed_version(self) -> str | None:
        """The version on the board; '(modified)' when it only claims the latest."""
        if (release := self._matching_release()) is not None:
            return release.version
        version = self._reported_version()
        latest = self.source.latest
        if version is not None and latest is not None and version == latest.version:
            return f"{version} (modified)"
        return version

    def files_to_send(self, release: Release) -> list[str]:
        """Files of a release that differ from what the board holds."""
        crcs = self.board_crcs() or {}
        return [file.name for file in release.files if crcs.get(file.name) != file.crc]

    def not_allowed(self, release: Release) -> list[str]:
        """Files of a release the board would refuse (v2 boards say which)."""
        if self.board_info is None:
            return []
        return release.not_allowed(self.board_info.allowed_files)

    # -- connections

    async def _async_connect(self) -> Transport:
        """Connect through whichever adapter or proxy hears the board best."""
        if self._gave_up is not None:
            # establish_connection already retried for half a minute.
            raise self._gave_up
        device = bluetooth.async_ble_device_from_address(
            self.hass, self.address, connectable=True
        )
        if device is None:
            raise BleakNotFoundError(f"{self.name} ({self.address}) is not in range")

        def fresh_device() -> BLEDevice:
            return (
                bluetooth.async_ble_device_from_address(
                    self.hass, self.address, connectable=True
                )
                or device
            )

        try:
            transport = await self._async_open(device, fresh_device)
        except (BleakOutOfConnectionSlotsError, BleakNotFoundError) as err:
            self._gave_up = err
            raise
        self._note_connection_path()
        return transport

    def _note_connection_path(self) -> None:
        """Remember which adapter or proxy holds our connection now."""
        if (path := connection_path(self.hass, self.address)) is not None:
            self.connection = path

    async def _async_open(
        self, device: BLEDevice, fresh_device: Callable[[], BLEDevice]
    ) -> Transport:
        return await BleakTransport.open(
            lambda disconnected: establish_connection(
                # Looked up now: Home Assistant's Bluetooth integration swaps
                # in its wrapper (adapter or proxy, by signal and free slots).
                bleak_retry_connector.BleakClientWithServiceCache,
                device,
                self.name,
                disconnected,
                max_attempts=CONNECT_ATTEMPTS,
                ble_device_callback=fresh_device,
            )
        )

    def _schedule_refresh(self) -> None:
        self.entry.async_create_background_task(
            self.hass, self.async_refresh_board(), f"{DOMAIN} refresh {self.address}"
        )

    async def _async_refresh_timer(self, _now: Any) -> None:
        if self.available:
            await self.async_refresh_board()

    async def async_refresh_board(self) -> bool:
        """Ask the board what it runs; False when it could not be reached."""
        if self._link_lock.locked() or self.installing:
            return False
        try:
            # Slot first, then the board: the order installs take them in.
            async with get_fleet(self.hass).slot(self.address), self._link_lock:
                self._gave_up = None
                await self._async_probe()
        except (
            OTAError,
            BoardOutOfReachError,
            QueueTimeoutError,
            *_LINK_ERRORS,
        ) as err:
            _LOGGER.debug("%s: cannot read the board: %s", self.name, err)
            return False
        except Exception:  # a background task: log anything else, never die
            _LOGGER.exception("%s: unexpected error reading the board", self.name)
            return False
        repairs.async_track_protocol(self.hass, self.entry, self.protocol)
        await self._async_save()
        self._notify()
        return True

    async def _async_probe(self) -> None:
        """One short connection: HELLO, or for a v1 board its app VERSION."""
        replies: asyncio.Queue[str] = asyncio.Queue()
        client = OTAClient(await self._async_connect(), on_app_line=replies.put_nowait)
        try:
            await client.start()
            info = await client.hello()
            if info is not None:
                self.board_info = info
                self.protocol = 2
                self.app_version = info.app_version
                return
            self.board_info = None
            self.protocol = 1
            await client.transport.write(b"VERSION\n", response=True)
            async with asyncio.timeout(VERSION_REPLY_TIMEOUT):
                while not (line := await replies.get()).startswith("VERSION:"):
                    pass
            version = line.removeprefix("VERSION:").strip()
            self.app_version = None if version in ("", "unknown") else version
        except TimeoutError:
            _LOGGER.debug("%s: no VERSION reply from the application", self.name)
        finally:
            await client.close()

    async def _async_save(self) -> None:
        await self._store.async_save(
            {
                "installed": self.record.as_dict() if self.record else None,
                "protocol": self.protocol,
                "transfers": [record.as_dict() for record in self.transfers],
            }
        )

    # -- installing

    async def async_install(
        self, version: str | None, trigger: str = TRIGGER_ENTITY
    ) -> TransferRecord:
        """Install the latest release, or `version` from versions/ (forced)."""
        return await self._async_job(lambda: self._async_plan_release(version), trigger)

    async def async_install_files(
        self, contents: Mapping[str, bytes], version: str | None, force: bool
    ) -> TransferRecord:
        """Install the given files (the install_files action checked them)."""
        return await self._async_job(
            lambda: self._async_plan_files(contents, version, force), TRIGGER_ACTION
        )

    async def _async_job(
        self, plan: Callable[[], Awaitable[InstallPlan]], trigger: str
    ) -> TransferRecord:
        """One install at a time per board; the entity shows it throughout."""
        if self.installing:
            raise install_error("install_in_progress", name=self.name)
        self.installing = True
        self.progress = None
        self._notify()
        try:
            return await self._async_run(await plan(), trigger)
        finally:
            self.installing = False
            self.queued = False
            self.progress = None
            self._notify()
            if self._read_again:  # show what the board runs now
                self._read_again = False
                self._schedule_refresh()

    async def _async_run(self, plan: InstallPlan, trigger: str) -> TransferRecord:
        """Wait for a connection slot, install, report (events, issues, history)."""
        loop = self.hass.loop
        record = TransferRecord(
            trigger=trigger,
            version=plan.version,
            files=plan.files,
            started=dt_util.utcnow().isoformat(),
        )
        self._fire(EVENT_STARTED, record)
        asked = began = loop.time()
        try:
            async with get_fleet(self.hass).slot(self.address, self._on_queued):
                began = loop.time()
                self.queued = False
                self.progress = 0
                self._notify()
                async with self._link_lock:
                    self._gave_up = None
                    result = await self._async_transfer(plan)
        except (HomeAssistantError, BoardOutOfReachError, QueueTimeoutError) as err:
            failure = err if isinstance(err, HomeAssistantError) else self._queue(err)
            record = replace(
                record,
                queued_seconds=began - asked,
                seconds=loop.time() - began,
                connection=self.connection,
                reason=failure.translation_key,
                error=str(failure),
            )
            await self._async_remember(record, EVENT_FAILED)
            repairs.async_report_failure(
                self.hass, self.entry, failure.translation_key or "", str(failure)
            )
            self._read_again = failure.translation_key in _READ_AGAIN_AFTER
            if failure is err:
                raise
            raise failure from err
        if result is not None:
            record = replace(
                record,
                files_sent=result.files_sent,
                protocol=result.protocol,
                bytes=result.bytes_total,
                wire_bytes=result.wire_bytes,
                transfer_seconds=result.transfer_seconds,
                retries=result.retries,
                connections=result.connections,
                trial=result.trial,
            )
        record = replace(
            record,
            result=RESULT_INSTALLED if result and result.applied else RESULT_UNCHANGED,
            protocol=record.protocol or self.protocol,
            queued_seconds=began - asked,
            seconds=loop.time() - began,
            connection=self.connection,
        )
        if plan.record is not None:
            self.record = plan.record
        repairs.async_clear_after_success(self.hass, self.entry)
        await self._async_remember(record, EVENT_FINISHED)
        return record

    def _queue(
        self, err: BoardOutOfReachError | QueueTimeoutError
    ) -> HomeAssistantError:
        if isinstance(err, BoardOutOfReachError):
            return install_error("not_found", name=self.name)
        return install_error("queue_timeout", name=self.name)

    @callback
    def _on_queued(self) -> None:
        self.queued = True
        self._notify()

    def _fire(self, step: str, record: TransferRecord) -> None:
        """Tell automations (no secrets: the record holds none)."""
        device = dr.async_get(self.hass).async_get_device(
            identifiers={(DOMAIN, self.address)}
        )
        self.hass.bus.async_fire(
            EVENT_INSTALL,
            {
                "type": step,
                "device_id": device.id if device else None,
                "entity_id": er.async_get(self.hass).async_get_entity_id(
                    "update", DOMAIN, self.address
                ),
                "address": self.address,
                "name": self.name,
                **record.as_dict(),
            },
        )

    async def _async_remember(self, record: TransferRecord, step: str) -> None:
        self.transfers.append(record)
        await self._async_save()
        self._fire(step, record)

    def _release(self, state: SourceState, version: str | None) -> Release:
        if version is not None:
            if (release := state.releases.get(version)) is None:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="unknown_version",
                    translation_placeholders={
                        "name": self.name,
                        "version": version,
                        "versions": ", ".join(sorted(state.releases)) or "-",
                    },
                )
            return release
        if state.latest is None:
            if state.problem is not None:
                raise install_error(
                    "source_problem", name=self.name, error=str(state.problem)
                )
            raise install_error(
                "no_update", name=self.name, folder=str(self.folder.folder)
            )
        return state.latest

    async def _async_plan_release(self, version: str | None) -> InstallPlan:
        """Plan to install a release of the source folder."""
        state = await self.async_rescan_source()
        release = self._release(state, version)
        if refused := self.not_allowed(release):
            assert self.board_info is not None
            raise install_error(
                "files_not_allowed",
                name=self.name,
                files=", ".join(refused),
                allowed=", ".join(sorted(self.board_info.allowed_files)),
            )
        try:
            contents = await self.hass.async_add_executor_job(release.read)
        except SourceError as err:
            raise install_error(
                "source_problem", name=self.name, error=str(err)
            ) from err
        force = version is not None
        if self.protocol == 1 and self.record is not None and not force:
            # v1 sends whole files and resets after each: skip unchanged ones.
            changed = self.files_to_send(release)
            contents = {name: contents[name] for name in changed}
        return self._checked(
            InstallPlan(
                files=tuple(release.names),
                contents=contents,
                version=release.version,
                # An undeclared (hash) version is for display only: on the
                # wire it would trip the board's dotted-integer downgrade guard.
                wire_version=release.version if release.declared else "",
                force=force,
                record=InstalledRecord(
                    release.version, {file.name: file.crc for file in release.files}
                ),
            )
        )

    async def _async_plan_files(
        self, contents: Mapping[str, bytes], version: str | None, force: bool
    ) -> InstallPlan:
        """Plan to install files given by the install_files action."""
        crcs = {name: FileImage(name, data).crc for name, data in contents.items()}
        old = self.record
        record = None
        if version or old is not None:
            record = InstalledRecord(
                version or (old.version if old else ""),
                {**(old.files if old else {}), **crcs},
            )
        to_send = dict(contents)
        if self.protocol == 1 and old is not None and not force:
            to_send = {n: d for n, d in contents.items() if old.files.get(n) != crcs[n]}
        return self._checked(
            InstallPlan(
                files=tuple(sorted(contents)),
                contents=to_send,
                version=version or "",
                wire_version=version or "",
                force=force,
                record=record,
            )
        )

    def _checked(self, plan: InstallPlan) -> InstallPlan:
        """Refuse what the board would refuse anyway, before connecting."""
        if (
            plan.contents
            and self.protocol == 1
            and self.token
            and not plan.wire_version
        ):
            # A v1 token travels in START after the version.
            raise install_error("version_required", name=self.name)
        return plan

    async def _async_transfer(self, plan: InstallPlan) -> InstallResult | None:
        """Send the files; None when there was nothing to send."""
        if not plan.contents:
            return None
        options = InstallOptions(
            auth_key=self.auth_key,
            token=self.token,
            force=plan.force,
            window=self.window,
            encoding=self.encoding,
        )
        try:
            result = await install(
                self._async_connect,
                plan.contents,
                plan.wire_version,
                options,
                progress=self._on_progress,
            )
            self.protocol = result.protocol
            self.board_info = result.board
            if result.board is not None:
                self.app_version = result.board.app_version
            if result.trial and self.confirm_trial:
                board = await self._async_wait_for_confirmation(plan, options)
                result = replace(result, trial=False, board=board)
        except (OTAError, *_LINK_ERRORS) as err:
            raise self._translate(err, plan) from err
        return result

    async def _async_wait_for_confirmation(
        self, plan: InstallPlan, options: InstallOptions
    ) -> BoardInfo | None:
        """Ask the board now and then until its program confirms the new version.

        Each look is a short connection (the slot stays ours meanwhile).
        """
        deadline = self.hass.loop.time() + TRIAL_TIMEOUT
        while True:
            await asyncio.sleep(TRIAL_POLL_INTERVAL)
            info = await probe(self._async_connect, options)
            if info is None:  # pragma: no cover - a v1 board reports no trial
                return None
            self.board_info = info
            self._notify()
            rollback = info.rollback
            if rollback is not None and rollback.version == (plan.wire_version or None):
                raise RolledBackError(rollback.version, rollback.restored)
            if info.trial is None:
                return info
            if self.hass.loop.time() >= deadline:
                raise install_error(
                    "trial_unconfirmed",
                    name=self.name,
                    version=plan.version,
                    seconds=str(int(TRIAL_TIMEOUT)),
                )

    @callback
    def _on_progress(self, acknowledged: int, total: int) -> None:
        progress = round(100 * acknowledged / total, 1) if total else 100.0
        if progress != self.progress:
            self.progress = progress
            self._notify()

    def _translate(
        self, err: Exception, release: Release | InstallPlan
    ) -> HomeAssistantError:
        """Tell the user what went wrong and what to do about it."""
        name = self.name
        if isinstance(err, ConnectFailedError) and err.applied:
            return install_error("not_back", name=name, error=str(err.cause))
        if isinstance(err, ConnectFailedError) and err.cause is not None:
            err = err.cause if isinstance(err.cause, Exception) else err
        if isinstance(err, BleakOutOfConnectionSlotsError):
            # Home Assistant keeps the last advertisement of a board whose
            # proxy went away; habluetooth then reports no free slot. Only
            # a scanner that hears the board now makes it a slot problem.
            if bluetooth.async_scanner_devices_by_address(
                self.hass, self.address, connectable=True
            ):
                return install_error("out_of_slots", name=name)
            return install_error("not_found", name=name)
        if isinstance(err, BleakNotFoundError):
            return install_error("not_found", name=name)
        if isinstance(err, RejectedError):
            files = ", ".join(release.names)
            match err.reason:
                case "FORBIDDEN":
                    return install_error("file_forbidden", name=name, file=files)
                case "NOSPACE":
                    return install_error("no_space", name=name, file=files)
                case "AUTH":
                    return install_error("auth_failed", name=name)
                case "VERSION":
                    return install_error(
                        "downgrade_refused", name=name, version=release.version
                    )
                case "BUSY":
                    return install_error("board_busy", name=name)
            return install_error("bad_request", name=name, error=str(err))
        if isinstance(err, AuthRequiredError):
            return install_error("auth_required", name=name, scheme=err.scheme)
        if isinstance(err, (CrcMismatchError, SizeMismatchError)):
            return install_error("crc_mismatch", name=name, file=err.file)
        if isinstance(err, RolledBackError):
            return install_error(
                "rolled_back",
                name=name,
                version=err.version or release.version,
                restored=err.restored or "the previous version",
            )
        if isinstance(err, NotInstalledError):
            return install_error(
                "not_installed", name=name, file=err.file, error=str(err)
            )
        if isinstance(err, LinkTooSmallError):
            return install_error("link_too_small", name=name, error=str(err))
        if isinstance(err, DeviceError):
            return install_error("board_error", name=name, error=str(err))
        if isinstance(err, ProtocolError):
            return install_error("invalid_reply", name=name, error=str(err))
        if isinstance(err, (BleakError, ConnectFailedError)):
            return install_error("not_reachable", name=name, error=str(err))
        return install_error("link_lost", name=name, error=str(err))
