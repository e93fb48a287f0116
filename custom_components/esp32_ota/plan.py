"""Planning an install: what to send, as which version, and what to remember.

A release of the source folder (the update entity) or the files of the
install_files action become an `InstallPlan`: every file of the request,
those the board needs (a v1 board gets only the files our record says
changed), the version shown and the one sent, and what the board holds
afterwards. What the board would refuse anyway is refused here, before any
connection: files outside its allowlist, a v1 token without a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import install_error, invalid
from .inventory import InstalledRecord, file_crc
from .script_check import async_check_scripts
from .source import SourceError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .coordinator import BoardCoordinator
    from .source import Release, SourceState


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """What one install sends, and what to remember once it went through."""

    files: tuple[str, ...]  # every file of the request
    contents: Mapping[str, bytes]  # those to send
    version: str  # shown and reported ("" when the request has none)
    wire_version: str  # sent to the board
    force: bool
    record: InstalledRecord | None  # what the board holds afterwards


def _release(
    board: BoardCoordinator, state: SourceState, version: str | None
) -> Release:
    name = board.name
    if version is not None:
        if (release := state.releases.get(version)) is None:
            raise invalid(
                "unknown_version",
                name=name,
                version=version,
                versions=", ".join(sorted(state.releases)) or "-",
            )
        return release
    if state.latest is None:
        if state.problem is not None:
            raise install_error("source_problem", name=name, error=str(state.problem))
        raise install_error("no_update", name=name, folder=str(board.folder.folder))
    return state.latest


async def async_plan_release(
    board: BoardCoordinator, version: str | None
) -> InstallPlan:
    """Plan to install a release of the source folder (`version`: forced)."""
    release = _release(board, await board.async_rescan_source(), version)
    if refused := board.data.refused(release.names):
        assert board.data.board_info is not None
        raise install_error(
            "files_not_allowed",
            name=board.name,
            files=", ".join(refused),
            allowed=", ".join(sorted(board.data.board_info.allowed_files)),
        )
    try:
        contents = await board.hass.async_add_executor_job(release.read)
    except SourceError as err:
        raise install_error("source_problem", name=board.name, error=str(err)) from err
    await async_check_scripts(board.hass, board.name, contents)
    crcs = {file.name: file.crc for file in release.files}
    return _plan(
        board,
        files=release.names,
        contents=contents,
        crcs=crcs,
        version=release.version,
        # An undeclared (hash) version is for display only: on the
        # wire it would trip the board's dotted-integer downgrade guard.
        wire_version=release.version if release.declared else "",
        force=version is not None,
        record=InstalledRecord(release.version, crcs),
    )


async def async_plan_files(
    board: BoardCoordinator,
    contents: Mapping[str, bytes],
    version: str | None,
    force: bool,
) -> InstallPlan:
    """Plan to install files given by the install_files action."""
    await async_check_scripts(board.hass, board.name, contents)
    crcs = {name: file_crc(data) for name, data in contents.items()}
    old = board.data.record
    record = None
    if version or old is not None:
        record = InstalledRecord(
            version or (old.version if old else ""),
            {**(old.files if old else {}), **crcs},
        )
    return _plan(
        board,
        files=sorted(contents),
        contents=contents,
        crcs=crcs,
        version=version or "",
        wire_version=version or "",
        force=force,
        record=record,
    )


def _plan(
    board: BoardCoordinator,
    *,
    files: Iterable[str],
    contents: Mapping[str, bytes],
    crcs: Mapping[str, str],
    version: str,
    wire_version: str,
    force: bool,
    record: InstalledRecord | None,
) -> InstallPlan:
    """Keep what the board needs; refuse what it would refuse anyway."""
    to_send = {name: contents[name] for name in board.data.skip_unchanged(crcs, force)}
    v1_token = board.data.protocol == 1 and board.settings.token
    if to_send and v1_token and not wire_version:
        # A v1 token travels in START after the version.
        raise install_error("version_required", name=board.name)
    return InstallPlan(
        files=tuple(files),
        contents=to_send,
        version=version,
        wire_version=wire_version,
        force=force,
        record=record,
    )
