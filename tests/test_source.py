"""The source folder: layout, manifest, versions, change detection, errors."""

from __future__ import annotations

import binascii
import json
import os
from typing import TYPE_CHECKING

import pytest

from custom_components.esp32_ota.nus_ota.board_info import MAX_TEXT
from custom_components.esp32_ota.source import (
    MAX_FILE_SIZE,
    MAX_VERSION_LENGTH,
    Release,
    SourceError,
    SourceFolder,
    is_content_hash,
    read_release,
    version_key,
)

if TYPE_CHECKING:
    from pathlib import Path


def write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def manifest(folder: Path, content: object, name: str = "esp32_ota.json") -> None:
    write(folder, name, json.dumps(content))


def test_scripts_without_manifest_get_a_content_hash_version(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "print('main')\n")
    write(tmp_path, "app.py", "print('app')\n")
    write(tmp_path, "README.md", "docs, not a script")
    write(tmp_path, ".hidden", "editor state")
    write(tmp_path, "app.py~", "editor backup")
    (tmp_path / "lib").mkdir()

    release = read_release(tmp_path, None)

    assert release is not None
    assert release.names == ["app.py", "main.py"]
    assert not release.declared
    assert len(release.version) == 8
    int(release.version, 16)
    app = release.files[0]
    assert app.size == len(b"print('app')\n")
    assert app.crc == f"{binascii.crc32(b"print('app')\n"):08x}"
    assert release.summary is None
    assert release.changelog is None


def test_hash_version_follows_the_content(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "a = 1\n")
    first = read_release(tmp_path, None)
    write(tmp_path, "main.py", "a = 2\n")
    second = read_release(tmp_path, None)
    write(tmp_path, "main.py", "a = 1\n")
    third = read_release(tmp_path, None)
    assert first is not None
    assert second is not None
    assert third is not None
    assert first.version != second.version
    assert first.version == third.version


def test_manifest_declares_version_files_and_notes(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "main\n")
    write(tmp_path, "app.py", "app\n")
    write(tmp_path, "notes.txt", "not listed, so not sent")
    manifest(
        tmp_path,
        {
            "version": "1.2.0",
            "files": ["main.py", "app.py"],
            "release_notes": "Faster blinking",
            "release_url": "https://example.com/1.2.0",
        },
    )
    write(tmp_path, "CHANGELOG.md", "# 1.2.0\n- Faster blinking\n")

    release = read_release(tmp_path, None)

    assert release is not None
    assert release.version == "1.2.0"
    assert release.declared
    assert release.names == ["app.py", "main.py"]
    assert release.summary == "Faster blinking"
    assert release.release_url == "https://example.com/1.2.0"
    assert release.changelog == "# 1.2.0\n- Faster blinking\n"


def test_manifest_json_name_and_numeric_version(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "main\n")
    manifest(tmp_path, {"version": 3, "release_notes": "Only notes"}, "manifest.json")
    release = read_release(tmp_path, None)
    assert release is not None
    assert release.version == "3"
    assert release.names == ["main.py"]
    # Without a changelog the notes are the full release notes too.
    assert release.changelog == "Only notes"


def test_empty_folder_offers_nothing(tmp_path: Path) -> None:
    manifest(tmp_path, {"version": "1.0"})
    assert read_release(tmp_path, None) is None


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "top level must be an object"),
        ('{"version": "1.0", "colour": "red"}', "unknown key 'colour'"),
        ('{"version": ""}', "version must be"),
        ('{"version": "1:0"}', "version must be"),
        ('{"version": "1,0"}', "version must be"),
        ('{"version": true}', "version must be"),
        ('{"version": "1.0.0-très"}', "version must be"),
        ('{"version": "' + "1" * (MAX_VERSION_LENGTH + 1) + '"}', "version must be"),
        ('{"files": []}', "files must be a non-empty list"),
        ('{"files": "main.py"}', "files must be a non-empty list"),
        ('{"files": ["main.py", 3]}', "files must be a non-empty list"),
        ('{"files": ["main.py", "main.py"]}', "lists a name twice"),
        ('{"release_notes": ["a"]}', "release_notes must be text"),
        ('{"release_url": 5}', "release_url must be text"),
    ],
)
def test_malformed_manifest_is_a_clear_error(
    tmp_path: Path, content: str, error: str
) -> None:
    write(tmp_path, "main.py", "main\n")
    write(tmp_path, "esp32_ota.json", content)
    with pytest.raises(SourceError) as info:
        read_release(tmp_path, None)
    assert info.value.key == "manifest_invalid"
    assert error in str(info.value)
    assert info.value.placeholders["path"] == str(tmp_path / "esp32_ota.json")


def test_manifest_that_is_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "main\n")
    write(tmp_path, "esp32_ota.json", b'{"version": "\xff"}')
    with pytest.raises(SourceError, match="not UTF-8") as info:
        read_release(tmp_path, None)
    assert info.value.key == "unreadable"


def test_manifest_listing_a_missing_file(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "main\n")
    manifest(tmp_path, {"files": ["main.py", "app.py"]})
    with pytest.raises(SourceError, match=r"lists app\.py") as info:
        read_release(tmp_path, None)
    assert info.value.key == "file_missing"


def test_two_manifests_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "main\n")
    manifest(tmp_path, {"version": "1"})
    manifest(tmp_path, {"version": "2"}, "manifest.json")
    with pytest.raises(SourceError, match="keep one") as info:
        read_release(tmp_path, None)
    assert info.value.key == "two_manifests"


@pytest.mark.parametrize("name", ["bad name.py", "ünï.py", "a,b.py"])
def test_file_names_a_board_cannot_hold(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "x\n")
    with pytest.raises(SourceError) as info:
        read_release(tmp_path, None)
    assert info.value.key == "file_name_invalid"
    assert info.value.placeholders["file"] == name


def test_too_large_file(tmp_path: Path) -> None:
    write(tmp_path, "main.py", b"#" * (MAX_FILE_SIZE + 1))
    with pytest.raises(SourceError, match="larger than") as info:
        read_release(tmp_path, None)
    assert info.value.key == "file_too_large"


def test_missing_and_non_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        read_release(tmp_path / "nope", None)
    assert info.value.key == "folder_missing"
    file = write(tmp_path, "file", "x")
    with pytest.raises(SourceError) as info:
        read_release(file, None)
    assert info.value.key == "not_a_folder"


def test_folder_state_with_older_versions(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "v3\n")
    manifest(tmp_path, {"version": "3.0.0"})
    write(tmp_path, "versions/2.0.0/main.py", "v2\n")
    write(tmp_path, "versions/1.0.0/main.py", "v1\n")
    manifest(tmp_path / "versions/1.0.0", {"version": "1.0.0", "release_notes": "One"})
    write(tmp_path, "versions/.trash/main.py", "ignored\n")
    write(tmp_path, "versions/stray.txt", "not a folder")
    (tmp_path / "versions/empty").mkdir()

    state = SourceFolder(tmp_path).scan()

    assert state.problem is None
    assert state.latest is not None
    assert state.latest.version == "3.0.0"
    assert sorted(state.releases) == ["1.0.0", "2.0.0", "3.0.0"]
    assert state.releases["2.0.0"].declared
    assert state.releases["1.0.0"].summary == "One"
    assert state.releases["1.0.0"].read() == {"main.py": b"v1\n"}


def test_a_broken_old_version_keeps_the_latest_usable(tmp_path: Path) -> None:
    write(tmp_path, "main.py", "v3\n")
    write(tmp_path, "versions/2.0.0/main.py", "v2\n")
    manifest(tmp_path / "versions/2.0.0", {"version": "2.0.1"})
    write(tmp_path, "versions/1.0.0/main.py", "v1\n")
    manifest(tmp_path / "versions/1.0.0", {"version": "one"})
    write(tmp_path, "versions/bad:name/main.py", "v0\n")

    state = SourceFolder(tmp_path).scan()

    assert state.latest is not None
    assert sorted(state.releases) == [state.latest.version]
    assert state.problem is not None
    assert state.problem.key == "version_mismatch"


def test_folder_state_with_a_problem(tmp_path: Path) -> None:
    state = SourceFolder(tmp_path / "missing").scan()
    assert state.latest is None
    assert state.problem is not None
    assert state.problem.key == "folder_missing"


def test_scan_is_cached_until_something_changes(tmp_path: Path) -> None:
    main = write(tmp_path, "main.py", "one\n")
    folder = SourceFolder(tmp_path)
    first = folder.scan()
    assert folder.scan() is first

    main.write_text("two, longer\n")
    second = folder.scan()
    assert second is not first
    assert second.latest is not None
    assert first.latest is not None
    assert second.latest.version != first.latest.version

    stamp = main.stat().st_mtime_ns + 5_000_000_000
    write(tmp_path, "versions/1.0/main.py", "old\n")
    third = folder.scan()
    assert "1.0" in third.releases
    os.utime(main, ns=(stamp, stamp))
    assert folder.scan() is not third


def test_read_detects_files_changed_since_the_scan(tmp_path: Path) -> None:
    main = write(tmp_path, "main.py", "one\n")
    release = read_release(tmp_path, None)
    assert isinstance(release, Release)
    assert release.read() == {"main.py": b"one\n"}
    main.write_text("two\n")
    with pytest.raises(SourceError, match="changed"):
        release.read()
    main.unlink()
    with pytest.raises(SourceError) as info:
        release.read()
    assert info.value.key == "unreadable"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("3f2a9c01", True), ("12345678", True), ("1.2.3", False), ("3F2A9C01", False)],
)
def test_is_content_hash(version: str, expected: bool) -> None:
    assert is_content_hash(version) is expected


@pytest.mark.parametrize(
    ("version", "key"),
    [("1.2.3", (1, 2, 3)), ("10", (10,)), ("1.2a", None), ("abcdef12", None)],
)
def test_version_key(version: str, key: tuple[int, ...] | None) -> None:
    assert version_key(version) == key


@pytest.mark.parametrize("name", ["app.py", "CHANGELOG.md", "esp32_ota.json"])
def test_links_out_of_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "board"
    write(folder, "main.py", "print('main')\n")
    secret = write(tmp_path, "secrets.yaml", "api_key: hunter2\n")
    (folder / name).symlink_to(secret)
    with pytest.raises(SourceError, match="outside that folder") as info:
        read_release(folder, None)
    assert info.value.key == "file_outside"
    assert info.value.placeholders["file"] == name


def test_links_inside_the_folder_are_followed(tmp_path: Path) -> None:
    write(tmp_path, "lib/app_v2.py", "print('app 2')\n")
    (tmp_path / "app.py").symlink_to(tmp_path / "lib" / "app_v2.py")
    release = read_release(tmp_path, None)
    assert release is not None
    assert release.names == ["app.py"]
    assert release.files[0].size == len(b"print('app 2')\n")


def test_version_limit_is_the_librarys(tmp_path: Path) -> None:
    """A folder may declare any version the library sends (and a board reports)."""
    longest = "1." + "0" * (MAX_VERSION_LENGTH - 2)
    manifest(tmp_path, {"version": longest})
    write(tmp_path, "app.py", "a\n")
    release = read_release(tmp_path, None)
    assert release is not None
    assert release.version == longest
    assert MAX_VERSION_LENGTH == MAX_TEXT
