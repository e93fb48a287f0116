"""What a board holds, and what it would take: one place for each rule.

No Home Assistant imports. `BoardData` is what the coordinator knows about a
board (what it reported, or for a v1 board what we last installed); its
methods answer the questions the entity, the action and the installer ask:
which version runs, which files differ from a release, which files the
board would refuse, which files an install sends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .nus_ota.advert import bundle_hash
from .nus_ota.board_info import InstalledFile
from .nus_ota.client import FileImage

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .nus_ota.board_info import BoardInfo
    from .source import Release, SourceState


def file_crc(data: bytes) -> str:
    """CRC-32 of a file as the protocol writes it (the library's FileImage)."""
    return FileImage("", data).crc


@dataclass(frozen=True, slots=True)
class InstalledRecord:
    """What this integration last installed on the board (persisted).

    A v1 board cannot say which files it holds, so this is all we know.
    """

    version: str
    files: Mapping[str, str]  # name -> CRC

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


def _differing(known: Mapping[str, str], crcs: Mapping[str, str]) -> list[str]:
    """Names whose CRC differs from the known one (or that are unknown)."""
    return [name for name, crc in crcs.items() if known.get(name) != crc]


@dataclass(frozen=True, slots=True)
class BoardData:
    """What we know of one board."""

    board_info: BoardInfo | None = None  # its last HELLO (v2 boards)
    protocol: int | None = None
    # It answered HELLO once: from then on a v1 answer is an error (a relay
    # pretending to be old firmware), until the user confirms a reflash.
    spoke_v2: bool = False
    app_version: str | None = None  # what its application reports
    record: InstalledRecord | None = None

    def crcs(self) -> Mapping[str, str] | None:
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

    def files_to_send(self, release: Release) -> list[str]:
        """Files of a release that differ from what the board holds."""
        return _differing(
            self.crcs() or {}, {file.name: file.crc for file in release.files}
        )

    def skip_unchanged(self, crcs: Mapping[str, str], force: bool) -> list[str]:
        """Names of a request (name -> CRC) that an install sends.

        A v2 board says what it holds and the library skips what it has; a v1
        board sends whole files and resets after each, so we skip the files
        our record says it already holds (unless forced).
        """
        if self.protocol != 1 or self.record is None or force:
            return list(crcs)
        return _differing(self.record.files, crcs)

    def refused(self, names: Iterable[str]) -> list[str]:
        """Files the board would refuse, sorted (only v2 boards say which)."""
        if self.board_info is None:
            return []
        allowed = self.board_info.allowed_files
        return sorted(name for name in set(names) if name not in allowed)

    def with_bundle(self, bundle: int, source: SourceState) -> BoardData | None:
        """Return what the board holds when it advertises `bundle`, if we can tell.

        Its last HELLO, or its last HELLO with a release of the folder
        installed over it (the files the release replaces, with the version
        an install sends); None for a bundle neither explains: an
        out-of-band change, which only a connection can tell.
        """
        info = self.board_info
        if info is None:
            return None
        if bundle_hash(info.files) == bundle:
            return self
        for release in _candidates(source):
            version = release.version if release.declared else None
            files = dict(info.files)
            for file in release.files:
                if file.name in files:
                    files[file.name] = InstalledFile(file.size, file.crc, version)
            if bundle_hash(files) == bundle:
                return replace(self, board_info=replace(info, files=files))
        return None

    def matching_release(self, source: SourceState) -> Release | None:
        """Return the release of the folder the board holds exactly, if any."""
        crcs = self.crcs()
        if crcs is None:
            return None
        for release in _candidates(source):
            if all(crcs.get(file.name) == file.crc for file in release.files):
                return release
        return None

    def _reported_version(self, latest: Release | None) -> str | None:
        """Return the version the board (or our record of it) reports."""
        info = self.board_info
        if info is None:
            return self.record.version if self.record else self.app_version
        names = latest.names if latest is not None else list(info.files)
        versions = {
            file.version
            for name in names
            if (file := info.files.get(name)) is not None and file.version
        }
        if len(versions) == 1:
            return versions.pop()
        return info.app_version

    def installed_version(self, source: SourceState) -> str | None:
        """Return the version on the board, as far as we know."""
        if (release := self.matching_release(source)) is not None:
            return release.version
        return self._reported_version(source.latest)

    def folder_changed(self, source: SourceState) -> bool:
        """Tell whether the folder's latest files changed, not their version.

        The scripts were edited in the folder without a new version: the
        board did not change, the folder did.
        """
        latest = source.latest
        return (
            latest is not None
            and self.matching_release(source) is None
            and self._reported_version(latest) == latest.version
        )


def _candidates(source: SourceState) -> list[Release]:
    """Return the folder's releases, the latest first."""
    candidates = list(source.releases.values())
    if source.latest is not None:
        candidates.insert(0, source.latest)
    return candidates
