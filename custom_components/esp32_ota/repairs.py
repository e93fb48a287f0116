"""Repair issues of a board, and the flows that fix them.

- `rolled_back`: the board rejected an update and went back (fix flow:
  acknowledge; it also goes away after the next successful install).
- `v1_firmware`: the board runs the old protocol-v1 firmware. Not fixable from
  Home Assistant: a v1 board accepts only the files in its ALLOWED_FILES
  (main.py and app.py by default), not the firmware's own modules, so the
  steps to install the firmware over USB are shown instead.
- `files_refused`: the folder's latest release holds a file the board
  would refuse (not on its allowlist). Not fixable from Home Assistant:
  the folder or the board's ALLOWED_FILES must change; it goes away then.
- `answered_like_v1`: a board that spoke v2 before, or whose key is set,
  answered HELLO like v1 firmware. Nothing was sent (no token). A relay can
  fake that answer; a reflash with v1 firmware really does it. Fix flow:
  confirm the reflash, and the board is no longer held to v2 (unless its
  key is still set).

A board refusing our credentials (or asking for some) starts Home
Assistant's reauthentication flow instead (config_flow.py).

(The `source_problem` issue of a bad scripts folder is raised by the
coordinator's folder watch and goes away when the folder is fixed.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN

if TYPE_CHECKING:
    from homeassistant import data_entry_flow
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

ISSUE_ROLLED_BACK: Final = "rolled_back"
ISSUE_V1: Final = "v1_firmware"
ISSUE_ANSWERED_LIKE_V1: Final = "answered_like_v1"
ISSUE_FILES_REFUSED: Final = "files_refused"
ISSUES: Final = (
    ISSUE_ROLLED_BACK,
    ISSUE_V1,
    ISSUE_ANSWERED_LIKE_V1,
    ISSUE_FILES_REFUSED,
)

# Install failures (translation keys) that ask for credentials.
_REAUTH_FAILURES: Final = frozenset({"auth_failed", "auth_required"})
# Install failures (translation keys) that raise an issue.
_FAILURE_ISSUES: Final = {
    "rolled_back": ISSUE_ROLLED_BACK,
    "answered_like_v1": ISSUE_ANSWERED_LIKE_V1,
}

INSTALL_FIRMWARE_DOC: Final = (
    "https://github.com/esp32-ota/esp32_ota/blob/main/device_firmware/README.md"
)


def issue_id(kind: str, entry_id: str) -> str:
    """Return the id of one kind of issue of one board."""
    return f"{kind}_{entry_id}"


def async_report_failure(
    hass: HomeAssistant, entry: ConfigEntry, key: str, error: str
) -> None:
    """Raise the issue an install failure calls for, or ask for credentials."""
    if key in _REAUTH_FAILURES:
        entry.async_start_reauth(hass)
        return
    if (kind := _FAILURE_ISSUES.get(key)) is None:
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(kind, entry.entry_id),
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=kind,
        translation_placeholders={"name": entry.title, "error": error},
        data={"entry_id": entry.entry_id},
    )


def async_report_answered_like_v1(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Raise the issue of a board held to v2 that answered like v1 firmware."""
    async_report_failure(hass, entry, ISSUE_ANSWERED_LIKE_V1, "")


def async_clear_after_success(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Drop the issues an install that went through has solved."""
    for kind in (ISSUE_ROLLED_BACK, ISSUE_ANSWERED_LIKE_V1):
        ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry.entry_id))


def _async_warn_while(
    hass: HomeAssistant,
    entry: ConfigEntry,
    kind: str,
    placeholders: dict[str, str] | None,
    learn_more_url: str | None = None,
) -> None:
    """Keep a warning of a board raised while it has placeholders (None: gone)."""
    kind_id = issue_id(kind, entry.entry_id)
    if placeholders is None:
        ir.async_delete_issue(hass, DOMAIN, kind_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        kind_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=kind,
        translation_placeholders={"name": entry.title, **placeholders},
        learn_more_url=learn_more_url,
    )


def async_track_protocol(
    hass: HomeAssistant, entry: ConfigEntry, protocol: int | None
) -> None:
    """Raise the v1 firmware issue while the board speaks only protocol v1."""
    _async_warn_while(
        hass, entry, ISSUE_V1, {} if protocol == 1 else None, INSTALL_FIRMWARE_DOC
    )


def async_track_refused(
    hass: HomeAssistant,
    entry: ConfigEntry,
    refused: list[str],
    allowed: list[str],
    folder: str,
) -> None:
    """Raise the refused-files issue while the latest release has some."""
    _async_warn_while(
        hass,
        entry,
        ISSUE_FILES_REFUSED,
        {"files": ", ".join(refused), "allowed": ", ".join(allowed), "folder": folder}
        if refused
        else None,
    )


def async_delete_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Forget every issue of a board (its entry was removed)."""
    for kind in ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry_id))


class ReflashedRepairFlow(RepairsFlow):
    """Confirm the board was reflashed with v1 firmware: stop holding it to v2."""

    def __init__(self, entry: ConfigEntry) -> None:
        """Fix the protocol pin of `entry`."""
        self.entry = entry

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Start with the confirmation (the input here is the issue's)."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Ask, then forget that the board spoke v2."""
        if user_input is not None:
            await self.entry.runtime_data.async_forget_v2()
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            description_placeholders={"name": self.entry.title},
        )


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Return the flow fixing an issue of ours."""
    entry_id = data.get("entry_id") if data else None
    entry = (
        hass.config_entries.async_get_entry(entry_id)
        if isinstance(entry_id, str)
        else None
    )
    if entry is not None and issue_id.startswith(f"{ISSUE_ANSWERED_LIKE_V1}_"):
        return ReflashedRepairFlow(entry)
    return ConfirmRepairFlow()
