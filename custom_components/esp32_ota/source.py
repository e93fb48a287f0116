"""The source folder of a board: the scripts Home Assistant offers to install.

Layout (all of it optional but the scripts)::

    <folder>/
        main.py, app.py, ...    the scripts, installed under the same names
        esp32_ota.json          manifest (or manifest.json): version, files, notes
        CHANGELOG.md            full release notes
        versions/<version>/     older (or other) releases, same layout

The manifest is optional JSON with these keys, all optional:
`version` (text; dotted integers compare, anything else is just a name),
`files` (the scripts to send; default: every regular file except hidden
ones, the manifest, changelog and readme), `release_notes` (the short
summary) and `release_url`. Unknown keys are an error, so typos show.

Without a declared version a release is named by a short hash of its
content; it travels without a version, so the board's downgrade guard,
which compares dotted integers, never sees it. A folder under versions/ is
named by its version (a manifest inside may only repeat it).

Everything here does blocking file I/O: call it from the executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .checked_read import NotAFileError, OutsideError, read_checked
from .inventory import file_crc
from .nus_ota.board_info import MAX_TEXT, usable_version

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

MANIFEST_NAMES = ("esp32_ota.json", "manifest.json")
CHANGELOG_NAMES = ("changelog.md", "changelog.txt", "changelog")
README_NAMES = ("readme.md", "readme.txt", "readme")
VERSIONS_DIR = "versions"
MANIFEST_KEYS = frozenset({"version", "files", "release_notes", "release_url"})
# Scripts are small; anything bigger is a mistake (a firmware image, a log).
MAX_FILE_SIZE = 512 * 1024
# The longest text a board reports (nus_ota); a version is one.
MAX_VERSION_LENGTH = MAX_TEXT
# Releases without a declared version are named by this much of a SHA-256.
HASH_LENGTH = 8
_HEX = frozenset("0123456789abcdef")
# What a board file name may be (the protocol separates fields with ':' and
# files with ',').
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_SKIPPED_SUFFIXES = ("~", ".bak", ".tmp", ".swp", ".orig")


class SourceError(Exception):
    """A problem with a source folder, worded for the user."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Keep the translation key and its placeholders."""
        self.key = key
        self.placeholders = placeholders
        super().__init__(_MESSAGES[key].format(**placeholders))


# English wording for logs and the entity; the translated wording of the same
# keys lives in strings.json under "issues".
_MESSAGES = {
    "folder_missing": "The source folder {folder} does not exist",
    "not_a_folder": "The source path {folder} is not a folder",
    "manifest_invalid": "The manifest {path} is not valid: {error}",
    "file_missing": "The manifest {path} lists {file}, which is not in the folder",
    "file_name_invalid": "The file name {file} in {folder} cannot be sent to a board",
    "file_too_large": "{file} in {folder} is larger than {limit} bytes",
    "unreadable": "Cannot read {path}: {error}",
    "file_outside": "{file} in {folder} is a link to a file outside that folder",
    "version_mismatch": (
        "The manifest {path} declares version {declared}, but its folder is "
        "named {version}"
    ),
    "two_manifests": "{folder} holds both {first} and {second}; keep one",
    "version_invalid": "The folder {folder} is not named after a valid version",
}


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One script of a release."""

    name: str
    path: Path
    size: int
    crc: str


@dataclass(frozen=True, slots=True)
class Release:
    """The scripts of one version, as found in a folder."""

    version: str
    declared: bool
    files: tuple[SourceFile, ...]
    folder: Path
    summary: str | None = None
    release_url: str | None = None
    changelog: str | None = None

    @property
    def names(self) -> list[str]:
        """Return the file names, sorted."""
        return [file.name for file in self.files]

    def read(self) -> dict[str, bytes]:
        """Read the scripts, checking that they did not change since the scan."""
        contents: dict[str, bytes] = {}
        for file in self.files:
            data = _read_bytes(self.folder, file.path)
            if len(data) != file.size or file_crc(data) != file.crc:
                raise SourceError("unreadable", path=str(file.path), error="changed")
            contents[file.name] = data
        return contents


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a folder offers: the latest release, older ones, or a problem."""

    latest: Release | None = None
    releases: Mapping[str, Release] = field(default_factory=dict)
    problem: SourceError | None = None


def valid_version(version: str) -> bool:
    """Whether a version can travel in a protocol field and be shown."""
    return usable_version(version) is not None


def valid_file_name(name: str) -> bool:
    """Whether a file name can travel in a protocol field."""
    return _NAME_RE.fullmatch(name) is not None


def is_content_hash(version: str) -> bool:
    """Whether a version looks like the hash given to undeclared releases."""
    return len(version) == HASH_LENGTH and all(c in _HEX for c in version)


def version_key(version: str) -> tuple[int, ...] | None:
    """Return dotted integers as a tuple, or None for anything else."""
    parts = version.split(".")
    if not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


class SourceFolder:
    """Scans a folder, re-reading it only when a stat says something changed."""

    def __init__(self, folder: Path) -> None:
        """Remember the folder; nothing is read yet."""
        self.folder = folder
        self._signature: tuple[Any, ...] | None = None
        self._state = SourceState()

    def scan(self) -> SourceState:
        """Return the folder's state (blocking; run it in the executor)."""
        signature = self._stat_signature()
        if signature == self._signature:
            return self._state
        self._signature = signature
        self._state = self._read_state()
        return self._state

    def _stat_signature(self) -> tuple[Any, ...]:
        """Names, sizes and times of everything a scan would look at."""
        entries: list[tuple[str, int, int, int]] = []
        folders = [self.folder]
        versions = self.folder / VERSIONS_DIR
        with contextlib.suppress(OSError):
            folders.extend(sorted(p for p in versions.iterdir() if p.is_dir()))
        for folder in folders:
            try:
                with_stats = [(p, p.stat()) for p in folder.iterdir()]
            except OSError as err:
                entries.append((str(folder), -1, 0, err.errno or 0))
                continue
            entries.extend(
                (str(p), st.st_mtime_ns, st.st_size, st.st_mode) for p, st in with_stats
            )
        return tuple(sorted(entries))

    def _read_state(self) -> SourceState:
        """Read the latest release and every release under versions/."""
        try:
            latest = read_release(self.folder, None)
        except SourceError as err:
            return SourceState(problem=err)
        releases: dict[str, Release] = {}
        problem: SourceError | None = None
        versions = self.folder / VERSIONS_DIR
        if versions.is_dir():
            for sub in sorted(versions.iterdir()):
                if not sub.is_dir() or sub.name.startswith("."):
                    continue
                try:
                    release = read_release(sub, sub.name)
                except SourceError as err:
                    problem = problem or err
                    continue
                if release is not None:
                    releases[release.version] = release
        if latest is not None:
            releases[latest.version] = latest
        return SourceState(latest=latest, releases=releases, problem=problem)


def read_release(folder: Path, version: str | None) -> Release | None:
    """Read one release folder; None when it holds no scripts at all.

    `version` is the name of a versions/<version> folder, None for the top one.
    """
    if version is not None and not valid_version(version):
        raise SourceError("version_invalid", folder=str(folder))
    if not folder.exists():
        raise SourceError("folder_missing", folder=str(folder))
    if not folder.is_dir():
        raise SourceError("not_a_folder", folder=str(folder))
    try:
        children = sorted(folder.iterdir())
    except OSError as err:
        raise SourceError("unreadable", path=str(folder), error=str(err)) from err
    manifest_path = _single_manifest(folder, children)
    manifest = _read_manifest(folder, manifest_path) if manifest_path else {}

    candidates: dict[str, Path] = {}
    changelog: str | None = None
    for path in children:
        lower = path.name.lower()
        if lower in CHANGELOG_NAMES and path.is_file():
            changelog = _read_text(folder, path)
        if _is_script_candidate(path):
            candidates[path.name] = path

    names: list[str]
    if "files" in manifest:
        names = manifest["files"]
        for name in names:
            if name not in candidates:
                raise SourceError("file_missing", path=str(manifest_path), file=name)
    else:
        names = sorted(candidates)
    if not names:
        return None

    files: list[SourceFile] = []
    hasher = hashlib.sha256()
    for name in sorted(names):
        if not valid_file_name(name):
            raise SourceError("file_name_invalid", file=name, folder=str(folder))
        path = candidates[name]
        data = _read_bytes(folder, path)
        if len(data) > MAX_FILE_SIZE:
            raise SourceError(
                "file_too_large",
                file=name,
                folder=str(folder),
                limit=str(MAX_FILE_SIZE),
            )
        files.append(SourceFile(name, path, len(data), file_crc(data)))
        hasher.update(name.encode() + b"\0" + len(data).to_bytes(4, "big") + data)

    declared: str | None = manifest.get("version")
    if version is not None and declared is not None and declared != version:
        raise SourceError(
            "version_mismatch",
            path=str(manifest_path),
            declared=declared,
            version=version,
        )
    name_version = declared or version
    notes: str | None = manifest.get("release_notes")
    return Release(
        version=name_version or hasher.hexdigest()[:HASH_LENGTH],
        declared=name_version is not None,
        files=tuple(files),
        folder=folder,
        summary=notes,
        release_url=manifest.get("release_url"),
        changelog=changelog if changelog is not None else notes,
    )


def _is_script_candidate(path: Path) -> bool:
    """Whether a folder entry is offered as a script when no list is declared."""
    name = path.name
    lower = name.lower()
    if (
        name.startswith(".")
        or lower in MANIFEST_NAMES
        or lower in CHANGELOG_NAMES
        or lower in README_NAMES
        or lower.endswith(_SKIPPED_SUFFIXES)
    ):
        return False
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _single_manifest(folder: Path, children: list[Path]) -> Path | None:
    """Return the manifest file of a folder, refusing two of them."""
    found = [p for p in children if p.name.lower() in MANIFEST_NAMES and p.is_file()]
    if len(found) > 1:
        raise SourceError(
            "two_manifests",
            folder=str(folder),
            first=found[0].name,
            second=found[1].name,
        )
    return found[0] if found else None


def _read_manifest(folder: Path, path: Path) -> dict[str, Any]:
    """Parse and check a manifest; every problem becomes a SourceError."""

    def invalid(error: str) -> SourceError:
        return SourceError("manifest_invalid", path=str(path), error=error)

    try:
        raw = json.loads(_read_text(folder, path))
    except ValueError as err:
        raise invalid(f"not JSON ({err})") from err
    if not isinstance(raw, dict):
        raise invalid("the top level must be an object")
    if unknown := sorted(set(raw) - MANIFEST_KEYS):
        raise invalid(f"unknown key {unknown[0]!r}")
    manifest: dict[str, Any] = {}
    if "version" in raw:
        version = raw["version"]
        if isinstance(version, (int, float)) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or not valid_version(version.strip()):
            raise invalid(
                "version must be a short text without ':', ',' or '|' "
                f"(at most {MAX_VERSION_LENGTH} characters)"
            )
        manifest["version"] = version.strip()
    if "files" in raw:
        files = raw["files"]
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(name, str) and name for name in files)
        ):
            raise invalid("files must be a non-empty list of file names")
        if len(set(files)) != len(files):
            raise invalid("files lists a name twice")
        manifest["files"] = files
    for key in ("release_notes", "release_url"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise invalid(f"{key} must be text")
            manifest[key] = raw[key]
    return manifest


def _read_bytes(folder: Path, path: Path) -> bytes:
    """Read a file of `folder` (at most MAX_FILE_SIZE + 1 bytes).

    Only the folder the user chose (checked against the allowed paths) is
    read: a link, symbolic or hard, must not smuggle, say, secrets.yaml onto
    a board. Links that stay inside the folder are fine.
    """
    try:
        return read_checked(path, [folder.resolve()], MAX_FILE_SIZE)
    except OutsideError as err:
        raise SourceError("file_outside", file=path.name, folder=str(folder)) from err
    except NotAFileError as err:
        raise SourceError("unreadable", path=str(path), error="not a file") from err
    except OSError as err:
        raise SourceError("unreadable", path=str(path), error=str(err)) from err


def _read_text(folder: Path, path: Path) -> str:
    """Read a UTF-8 text file of `folder`, turning errors into a SourceError."""
    try:
        return _read_bytes(folder, path).decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError("unreadable", path=str(path), error="not UTF-8") from err
