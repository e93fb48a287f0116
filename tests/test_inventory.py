"""What a board holds and would take: the rules, without Home Assistant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from custom_components.esp32_ota.inventory import BoardData, InstalledRecord, file_crc
from custom_components.esp32_ota.nus_ota.board_info import BoardInfo, InstalledFile
from custom_components.esp32_ota.source import SourceFolder, read_release

if TYPE_CHECKING:
    from pathlib import Path


def hello(files: dict[str, InstalledFile | None]) -> BoardInfo:
    """A v2 board's HELLO with this inventory (its keys are the allowlist)."""
    return BoardInfo(
        proto=2,
        firmware="2.0.0",
        app_version="1.0.0",
        window=8,
        max_line=244,
        encodings=frozenset({"b64"}),
        auth="none",
        nonce="00" * 8,
        sha256=False,
        free=None,
        files=files,
    )


def test_refused_lists_what_a_v2_board_refuses_sorted() -> None:
    board = BoardData(board_info=hello({"main.py": None, "app.py": None}))
    assert board.refused(["secret.cfg", "app.py", "boot.py"]) == [
        "boot.py",
        "secret.cfg",
    ]
    assert board.refused({"main.py": b"", "app.py": b""}) == []
    # A v1 board does not say: nothing is refused in advance.
    assert BoardData(protocol=1).refused(["secret.cfg"]) == []


def test_v1_skips_files_our_record_says_it_holds() -> None:
    record = InstalledRecord("1.0.0", {"app.py": file_crc(b"a"), "main.py": "0"})
    crcs = {"app.py": file_crc(b"a"), "main.py": file_crc(b"m")}
    v1 = BoardData(protocol=1, record=record)
    assert v1.skip_unchanged(crcs, force=False) == ["main.py"]
    assert v1.skip_unchanged(crcs, force=True) == ["app.py", "main.py"]
    # v2 boards: the library compares with the board's own inventory.
    assert BoardData(protocol=2, record=record).skip_unchanged(crcs, False) == [
        "app.py",
        "main.py",
    ]
    # Nothing recorded: everything goes.
    assert BoardData(protocol=1).skip_unchanged(crcs, False) == ["app.py", "main.py"]


def test_installed_version_and_files_to_send(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("new\n")
    (tmp_path / "esp32_ota.json").write_text('{"version": "1.1.0"}')
    release = read_release(tmp_path, None)
    assert release is not None
    state = SourceFolder(tmp_path).scan()
    app = release.files[0]
    same = BoardData(
        board_info=hello({"app.py": InstalledFile(app.size, app.crc, "1.1.0")})
    )
    assert same.installed_version(state) == "1.1.0"
    assert same.files_to_send(release) == []
    changed = BoardData(
        board_info=hello({"app.py": InstalledFile(3, "00000000", "1.1.0")})
    )
    assert changed.installed_version(state) == "1.1.0"
    assert changed.folder_changed(state) is True
    assert same.folder_changed(state) is False
    assert changed.files_to_send(release) == ["app.py"]
    assert BoardData(app_version="0.9").installed_version(state) == "0.9"
    assert BoardData().files_to_send(release) == ["app.py"]
