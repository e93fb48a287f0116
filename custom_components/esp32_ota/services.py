"""The install_files action: push given files to one or more boards.

Everything a user can get wrong is checked before any board is contacted:
the targets (our boards, set up), the files (under an allowed folder, present,
small enough, with names a board accepts), the version, and each v2 board's
allowlist. Then every board is installed at once; the fleet scheduler keeps
each adapter or proxy within its connection slots. The response has one entry
per board, keyed by its update entity.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import target as target_helpers

from .checked_read import NotAFileError, OutsideError, read_checked
from .const import DEFAULT_SOURCE_ROOT, DOMAIN
from .errors import invalid
from .history import RESULT_FAILED
from .source import MAX_FILE_SIZE, valid_file_name, valid_version

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .coordinator import BoardCoordinator
    from .data import Esp32OtaConfigEntry

SERVICE_INSTALL_FILES: Final = "install_files"
ATTR_FILES: Final = "files"
ATTR_CONTENT: Final = "content"
ATTR_VERSION: Final = "version"
ATTR_FORCE: Final = "force"

INSTALL_FILES_SCHEMA: Final = vol.Schema(
    {
        **cv.ENTITY_SERVICE_FIELDS,
        vol.Optional(ATTR_FILES, default=list): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_CONTENT, default=dict): vol.Schema({cv.string: cv.string}),
        vol.Optional(ATTR_VERSION): cv.string,
        vol.Optional(ATTR_FORCE, default=False): cv.boolean,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, not per board)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_INSTALL_FILES,
        _async_install_files,
        schema=INSTALL_FILES_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


@dataclass(frozen=True, slots=True)
class _Board:
    key: str  # the update entity's id (the address if it has none)
    coordinator: BoardCoordinator


async def _async_install_files(call: ServiceCall) -> ServiceResponse:
    hass = call.hass
    boards = _boards(hass, call)
    version: str | None = call.data.get(ATTR_VERSION)
    if version is not None:
        version = version.strip()
        if not valid_version(version):
            raise invalid("invalid_version", version=version)
    contents = await hass.async_add_executor_job(
        _read_files, hass, call.data[ATTR_FILES], call.data[ATTR_CONTENT]
    )
    for board in boards:
        _check_board(board.coordinator, contents)
    force: bool = call.data[ATTR_FORCE]
    outcomes = await asyncio.gather(
        *(
            board.coordinator.async_install_files(contents, version, force)
            for board in boards
        ),
        return_exceptions=True,
    )
    results: dict[str, Any] = {}
    failed: list[str] = []
    for board, outcome in zip(boards, outcomes, strict=True):
        coordinator = board.coordinator
        if isinstance(outcome, HomeAssistantError):
            failed.append(f"{coordinator.name}: {outcome}")
            results[board.key] = {
                "result": RESULT_FAILED,
                "reason": outcome.translation_key,
                "error": str(outcome),
            }
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results[board.key] = outcome.as_dict()
        results[board.key] |= {"name": coordinator.name, "address": coordinator.address}
    if call.return_response:
        return {"boards": results}
    if failed:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="install_files_failed",
            translation_placeholders={
                "failed": "; ".join(failed),
                "count": str(len(failed)),
                "total": str(len(boards)),
            },
        )
    return None


def _boards(hass: HomeAssistant, call: ServiceCall) -> list[_Board]:
    """Our boards among the targets; anything else targeted is a mistake."""
    selected = target_helpers.async_extract_referenced_entity_ids(
        hass, target_helpers.TargetSelection(call.data)
    )
    entity_registry = er.async_get(hass)
    device_registry = dr.async_get(hass)
    entry_ids: list[str] = []

    for entity_id in sorted(selected.referenced):
        entity = entity_registry.async_get(entity_id)
        if entity is None or entity.platform != DOMAIN or not entity.config_entry_id:
            raise invalid("not_a_board", target=entity_id)
        entry_ids.append(entity.config_entry_id)
    for entity_id in sorted(selected.indirectly_referenced):
        entity = entity_registry.async_get(entity_id)
        if entity is not None and entity.platform == DOMAIN and entity.config_entry_id:
            entry_ids.append(entity.config_entry_id)
    explicit_devices: Iterable[str] = call.data.get(ATTR_DEVICE_ID, [])
    if missing := sorted(selected.missing_devices):
        raise invalid("not_a_board", target=missing[0])
    for device_id in sorted(selected.referenced_devices):
        device = device_registry.async_get(device_id)
        ours = [
            entry_id
            for entry_id in (device.config_entries if device else ())
            if (owner := hass.config_entries.async_get_entry(entry_id)) is not None
            and owner.domain == DOMAIN
        ]
        if not ours and device_id in explicit_devices:
            raise invalid("not_a_board", target=device_id)
        entry_ids.extend(ours)

    boards: dict[str, _Board] = {}
    for entry_id in entry_ids:
        entry: Esp32OtaConfigEntry | None = hass.config_entries.async_get_entry(
            entry_id
        )
        if entry is None or entry.domain != DOMAIN or entry_id in boards:
            continue
        if entry.state is not ConfigEntryState.LOADED:
            raise invalid("board_not_loaded", name=entry.title)
        coordinator = entry.runtime_data
        key = (
            entity_registry.async_get_entity_id("update", DOMAIN, coordinator.address)
            or coordinator.address
        )
        boards[entry_id] = _Board(key, coordinator)
    if not boards:
        raise invalid("no_boards")
    return sorted(boards.values(), key=lambda board: board.key)


def _read_files(
    hass: HomeAssistant, paths: list[str], inline: Mapping[str, str]
) -> dict[str, bytes]:
    """Read the files to push (blocking); name on the board → content.

    Narrower than the scripts-folder option (anywhere in the config
    directory): any user allowed to call actions can call this one, so it
    reads only our own `esp32_ota/` folder and the allowlisted directories,
    never, say, `secrets.yaml`.
    """
    roots = [
        Path(folder).resolve()
        for folder in (
            hass.config.path(DEFAULT_SOURCE_ROOT),
            *hass.config.allowlist_external_dirs,
        )
    ]
    contents: dict[str, bytes] = {}
    for text in paths:
        path = Path(hass.config.path(text.strip()))
        _add(contents, path.name, _read(path, roots))
    for name, text in inline.items():
        _add(contents, name, text.encode())
    if not contents:
        raise invalid("no_files")
    return contents


def _read(path: Path, roots: list[Path]) -> bytes:
    try:
        return read_checked(path, roots, MAX_FILE_SIZE)
    except OutsideError as err:
        raise invalid("path_not_allowed", path=str(path)) from err
    except (NotAFileError, FileNotFoundError) as err:
        raise invalid("file_not_found", path=str(path)) from err
    except OSError as err:
        raise invalid("file_unreadable", path=str(path), error=str(err)) from err


def _add(contents: dict[str, bytes], name: str, data: bytes) -> None:
    if not valid_file_name(name):
        raise invalid("file_name_invalid", file=name)
    if name in contents:
        raise invalid("file_twice", file=name)
    if len(data) > MAX_FILE_SIZE:
        raise invalid("file_too_large", file=name, limit=str(MAX_FILE_SIZE))
    contents[name] = data


def _check_board(coordinator: BoardCoordinator, contents: Mapping[str, bytes]) -> None:
    """Refuse, before connecting, what a board is known to refuse."""
    coordinator.installer.ensure_idle()
    if refused := coordinator.data.refused(contents):
        info = coordinator.data.board_info
        assert info is not None
        raise invalid(
            "board_refuses_files",
            name=coordinator.name,
            files=", ".join(refused),
            allowed=", ".join(sorted(info.allowed_files)),
        )
