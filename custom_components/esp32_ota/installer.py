"""Installing on one board: plan, wait for a slot, install, then report.

1. Plan (plan.py): which files (a release of the source folder, or the
   files of the install_files action), which of them to send, which version
   to send and what the board holds afterwards; refuse what the board would
   refuse.
2. Wait for a connection slot of the fleet scheduler (the entity shows
   "queued"), then install with the library, showing the progress, and give
   the slot back. With trial confirmation on, wait until the board's program
   confirms the new version: a short look now and then, each with a slot
   taken ahead of the boards that have not started.
3. Report: a history record (kept for diagnostics, returned by the action),
   `esp32_ota_install` events (started, then finished or failed), repair
   issues, and a translated error on failure.

One install at a time per board; the board's entity shows it throughout.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING

from homeassistant.core import callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

from . import repairs
from .const import DOMAIN, TRIAL_POLL_INTERVAL, TRIAL_TIMEOUT
from .errors import LINK_ERRORS, install_error, invalid, translate
from .fleet import BoardOutOfReachError, QueueTimeoutError
from .history import (
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
from .nus_ota.errors import AnsweredLikeV1Error, OTAError, RolledBackError
from .nus_ota.install import InstallOptions, InstallResult, install, probe
from .phases import Phase, percentage
from .plan import async_plan_files, async_plan_release

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from .coordinator import BoardCoordinator
    from .nus_ota.board_info import BoardInfo
    from .nus_ota.transport import Transport
    from .plan import InstallPlan

_LOGGER = logging.getLogger(__name__)

# Failures after which the board runs something else than we thought.
_READ_AGAIN_AFTER = frozenset({"rolled_back", "not_installed", "trial_unconfirmed"})


class BoardInstaller:
    """Installs on the board of one coordinator, one install at a time."""

    def __init__(self, coordinator: BoardCoordinator) -> None:
        """Nothing runs before an install is asked for."""
        self.coordinator = coordinator
        self.installing = False
        self.queued = False  # waiting for a connection slot
        self.progress: float | None = None  # percent of the bar (phases.py)
        self.phase: Phase | None = None
        self.history: deque[TransferRecord] = deque(maxlen=HISTORY_LENGTH)

    def ensure_idle(self) -> None:
        """Refuse a second install while one runs."""
        if self.installing:
            raise invalid("install_in_progress", name=self.coordinator.name)

    async def async_install(
        self, version: str | None, trigger: str = TRIGGER_ENTITY
    ) -> TransferRecord:
        """Install the latest release, or `version` from versions/ (forced)."""
        return await self._async_job(
            lambda: async_plan_release(self.coordinator, version), trigger
        )

    async def async_install_files(
        self, contents: Mapping[str, bytes], version: str | None, force: bool
    ) -> TransferRecord:
        """Install the given files (the install_files action checked them)."""
        return await self._async_job(
            lambda: async_plan_files(self.coordinator, contents, version, force),
            TRIGGER_ACTION,
        )

    # -- one install

    async def _async_job(
        self, plan: Callable[[], Awaitable[InstallPlan]], trigger: str
    ) -> TransferRecord:
        self.ensure_idle()
        board = self.coordinator
        self.installing = True
        self.progress = self.phase = None
        board.async_update_listeners()
        read_again = False
        try:
            return await self._async_run(await plan(), trigger)
        except HomeAssistantError as err:
            read_again = err.translation_key in _READ_AGAIN_AFTER
            raise
        finally:
            self.installing = False
            self.queued = False
            self.progress = self.phase = None
            board.async_update_listeners()
            if read_again:  # show what the board runs now
                board.async_schedule_read()

    async def _async_run(self, plan: InstallPlan, trigger: str) -> TransferRecord:
        """Wait for a connection slot, install, report (events, issues, history)."""
        board = self.coordinator
        loop = board.hass.loop
        record = TransferRecord(
            trigger=trigger,
            version=plan.version,
            files=plan.files,
            started=dt_util.utcnow().isoformat(),
        )
        self._fire(EVENT_STARTED, record)
        asked = began = loop.time()
        try:
            async with board.link.claim(self._on_queued):
                began = loop.time()
                self.queued = False
                self._enter(Phase.CONNECTING)
                result = await self._async_transfer(plan)
            if result is not None and result.trial and board.settings.confirm_trial:
                self._enter(Phase.TRIAL)
                result = await self._async_confirmed(plan, result)
        except (HomeAssistantError, BoardOutOfReachError, QueueTimeoutError) as err:
            failure = err if isinstance(err, HomeAssistantError) else self._queue(err)
            record = replace(
                record,
                queued_seconds=began - asked,
                seconds=loop.time() - began,
                connection=board.link.connection,
                reason=failure.translation_key,
                error=str(failure),
            )
            await self._async_remember(record, EVENT_FAILED)
            repairs.async_report_failure(
                board.hass,
                board.config_entry,
                failure.translation_key or "",
                str(failure),
            )
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
            protocol=record.protocol or board.data.protocol,
            queued_seconds=began - asked,
            seconds=loop.time() - began,
            connection=board.link.connection,
        )
        if plan.record is not None:
            board.async_set_updated_data(replace(board.data, record=plan.record))
        repairs.async_clear_after_success(board.hass, board.config_entry)
        await self._async_remember(record, EVENT_FINISHED)
        return record

    def _queue(
        self, err: BoardOutOfReachError | QueueTimeoutError
    ) -> HomeAssistantError:
        if isinstance(err, BoardOutOfReachError):
            return install_error("not_found", name=self.coordinator.name)
        return install_error("queue_timeout", name=self.coordinator.name)

    @callback
    def _on_queued(self) -> None:
        self.queued = True
        self._enter(Phase.QUEUED)

    @callback
    def _enter(self, phase: Phase, acknowledged: int = 0, total: int = 0) -> None:
        progress = percentage(phase, acknowledged, total)
        if (phase, progress) != (self.phase, self.progress):
            self.phase, self.progress = phase, progress
            self.coordinator.async_update_listeners()

    @callback
    def _on_progress(self, acknowledged: int, total: int) -> None:
        """Show the transfer, then (all data acknowledged) the board applying."""
        if total and acknowledged < total:
            self._enter(Phase.TRANSFER, acknowledged, total)
        else:
            self._enter(Phase.APPLYING)

    async def _async_connect(self) -> Transport:
        """Connect for the library; a connection after applying is the check."""
        if self.phase is Phase.APPLYING:
            self._enter(Phase.RESTARTING)
        transport = await self.coordinator.link.connect()
        if self.phase is Phase.RESTARTING:
            self._enter(Phase.CHECKING)
        elif self.phase is Phase.CONNECTING:
            self._enter(Phase.TRANSFER)
        return transport

    def _fire(self, step: str, record: TransferRecord) -> None:
        """Tell automations and the log (no secrets: the record holds none)."""
        board = self.coordinator
        _log(board.name, step, record)
        hass = board.hass
        device = dr.async_get(hass).async_get_device(
            identifiers={(DOMAIN, board.address)}
        )
        hass.bus.async_fire(
            EVENT_INSTALL,
            {
                "type": step,
                "device_id": device.id if device else None,
                "entity_id": er.async_get(hass).async_get_entity_id(
                    "update", DOMAIN, board.address
                ),
                "address": board.address,
                "name": board.name,
                **record.as_dict(),
            },
        )

    async def _async_remember(self, record: TransferRecord, step: str) -> None:
        self.history.append(record)
        await self.coordinator.async_save()
        self._fire(step, record)

    # -- talking to the board

    def _options(self, plan: InstallPlan) -> InstallOptions:
        board = self.coordinator
        settings = board.settings
        return InstallOptions(
            auth_key=settings.auth_key,
            token=settings.token,
            # Pinned: a v1 answer fails before anything, the token above
            # included, is sent (AnsweredLikeV1Error).
            protocol=2 if board.pinned_to_v2 else None,
            force=plan.force,
            window=settings.window,
            encoding=settings.encoding,
            # link.connect bounds itself: it may queue for a proxy slot up to
            # the fleet's QUEUE_TIMEOUT, longer than the library's default.
            connect_timeout=None,
        )

    async def _async_transfer(self, plan: InstallPlan) -> InstallResult | None:
        """Send the files; None when there was nothing to send."""
        if not plan.contents:
            return None
        board = self.coordinator
        try:
            result = await install(
                self._async_connect,
                plan.contents,
                plan.wire_version,
                self._options(plan),
                progress=self._on_progress,
            )
            _LOGGER.debug(
                "%s: sent %s, skipped %s; %d bytes on the link, %d retries, "
                "%d connections, transfer %.2f s, trial %s; free flash after: %s",
                board.name,
                result.files_sent,
                result.files_skipped,
                result.wire_bytes,
                result.retries,
                result.connections,
                result.transfer_seconds,
                result.trial,
                result.board.free if result.board else "unknown",
            )
            data = replace(
                board.data,
                protocol=result.protocol,
                spoke_v2=board.data.spoke_v2 or result.protocol == 2,
                board_info=result.board,
            )
            if result.board is not None:
                data = replace(data, app_version=result.board.app_version)
            board.async_set_updated_data(data)
        except (OTAError, *LINK_ERRORS) as err:
            raise self._translated(err, plan) from err
        return result

    def _translated(self, err: Exception, plan: InstallPlan) -> HomeAssistantError:
        board = self.coordinator
        return translate(
            err,
            name=board.name,
            files=list(plan.files),
            version=plan.version,
            heard_now=board.link.heard_now(),
        )

    async def _async_confirmed(
        self, plan: InstallPlan, result: InstallResult
    ) -> InstallResult:
        """Wait until the board's program confirms the new version."""
        try:
            info = await self._async_wait_for_confirmation(plan)
        except (OTAError, *LINK_ERRORS) as err:
            raise self._translated(err, plan) from err
        return replace(result, trial=False, board=info)

    async def _async_wait_for_confirmation(self, plan: InstallPlan) -> BoardInfo | None:
        """Ask the board now and then until its program confirms the new version.

        Between looks the board holds no connection and no slot: other boards
        use it. Each look is a short connection that waits for a slot ahead
        of boards that have not started yet.
        """
        board = self.coordinator
        options = self._options(plan)
        deadline = board.hass.loop.time() + TRIAL_TIMEOUT
        while True:
            await asyncio.sleep(TRIAL_POLL_INTERVAL)
            async with board.link.claim(first=True):
                info = await probe(board.link.connect, options)
            if info is None:  # it just applied over v2: not a v1 board
                raise AnsweredLikeV1Error(applied=True)
            board.async_set_updated_data(replace(board.data, board_info=info))
            rollback = info.rollback
            if rollback is not None and rollback.version == (plan.wire_version or None):
                raise RolledBackError(
                    rollback.version, rollback.restored, rollback.cause
                )
            if info.trial is None:
                return info
            if board.hass.loop.time() >= deadline:
                raise install_error(
                    "trial_unconfirmed",
                    name=board.name,
                    version=plan.version,
                    seconds=str(int(TRIAL_TIMEOUT)),
                )


def _log(name: str, step: str, record: TransferRecord) -> None:
    """One INFO line per install start, finish and failure."""
    version = record.version or "(no version)"
    if step == EVENT_STARTED:
        _LOGGER.info(
            "%s: installing %s (%s), asked by %s",
            name,
            version,
            ", ".join(record.files),
            record.trigger,
        )
        return
    outcome = record.error if step == EVENT_FAILED else record.result
    _LOGGER.info(
        "%s: %s %s: %s; protocol %s, %d bytes in %.1f s (%.1f s waiting for a "
        "slot) through %s",
        name,
        "failed to install" if step == EVENT_FAILED else "installed",
        version,
        outcome,
        record.protocol or "unknown",
        record.bytes,
        record.seconds,
        record.queued_seconds,
        record.connection or "no connection",
    )
