"""What the integration reads is what it checked: links cannot smuggle files.

The install_files action reads only our `esp32_ota/` folder and allowlisted
directories, and a scripts folder only its own files. A file is opened once
and the opened file is checked, so neither a symlink swapped between a check
and the read nor a hard link to, say, secrets.yaml gets a file onto a board.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from homeassistant.exceptions import ServiceValidationError

from custom_components.esp32_ota.checked_read import OutsideError, read_checked
from custom_components.esp32_ota.const import DOMAIN
from custom_components.esp32_ota.source import SourceError, read_release
from tests.common import ENTITY_ID, app_source, make_board, setup_board

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

SECRET = "api_key: hunter2\n"


@contextmanager
def after_resolving(path: Path, swap: Callable[[], None]) -> Iterator[None]:
    """Run `swap` right after `path` is resolved (checked) the first time.

    What an attacker racing the check wins some of the time, every time.
    """
    resolve = Path.resolve
    swapped = False

    def resolve_then_swap(self: Path, strict: bool = False) -> Path:
        nonlocal swapped
        resolved = resolve(self, strict)
        if not swapped and self == path:
            swapped = True
            swap()
        return resolved

    with patch.object(Path, "resolve", resolve_then_swap):
        yield
    assert swapped, "the path was never looked at"


def relink(link: Path, target: Path) -> Callable[[], None]:
    """Point the symlink `link` at `target`."""

    def swap() -> None:
        link.unlink()
        link.symlink_to(target)

    return swap


def dir_to_link(folder: Path, target: Path) -> Callable[[], None]:
    """Replace the directory `folder` by a symlink to `target`."""

    def swap() -> None:
        folder.rename(folder.with_name(folder.name + ".old"))
        folder.symlink_to(target, target_is_directory=True)

    return swap


def _secrets(hass: HomeAssistant) -> Path:
    secrets = Path(hass.config.path("secrets.yaml"))
    secrets.write_text(SECRET)
    return secrets


def _own_folder(hass: HomeAssistant) -> Path:
    folder = Path(hass.config.path("esp32_ota", "shared"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _install_files(hass: HomeAssistant, path: str) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "install_files",
        {"entity_id": ENTITY_ID, "files": [path]},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return response["boards"][ENTITY_ID]  # type: ignore[index,no-any-return]


async def _refused(hass: HomeAssistant, path: str) -> str | None:
    """The translation key the action refuses `path` with (None: it went ahead)."""
    try:
        await _install_files(hass, path)
    except ServiceValidationError as err:
        return err.translation_key
    return None


@dataclass
class Setup:
    """A set-up board, secrets.yaml in the config folder, our esp32_ota/shared/."""

    board: VirtualBoard
    secrets: Path
    folder: Path


@pytest.fixture
async def setup(hass: HomeAssistant, proxy: SimProxyScanner) -> Setup:
    """A board set up next to a secrets.yaml."""
    board = make_board()
    await setup_board(hass, proxy, board)
    secrets = await hass.async_add_executor_job(_secrets, hass)
    folder = await hass.async_add_executor_job(_own_folder, hass)
    return Setup(board, secrets, folder)


async def test_action_refuses_a_hard_link_to_secrets(
    hass: HomeAssistant, setup: Setup
) -> None:
    board, secrets, folder = setup.board, setup.secrets, setup.folder
    await hass.async_add_executor_job(os.link, secrets, folder / "app.py")

    assert await _refused(hass, "esp32_ota/shared/app.py") == "path_not_allowed"
    assert SECRET.encode() not in board.read("app.py")


async def test_action_reads_what_it_checked_when_a_link_is_swapped(
    hass: HomeAssistant, setup: Setup
) -> None:
    board, secrets, folder = setup.board, setup.secrets, setup.folder
    good = folder / "app_v2.py"
    await hass.async_add_executor_job(good.write_text, app_source("2.0.0"))
    link = folder / "app.py"
    await hass.async_add_executor_job(link.symlink_to, good)

    with after_resolving(link, relink(link, secrets)):
        result = await _install_files(hass, "esp32_ota/shared/app.py")

    assert result["result"] == "installed"
    assert board.read("app.py") == app_source("2.0.0").encode()  # what it checked


async def test_action_refuses_dot_dot_after_the_allowed_prefix(
    hass: HomeAssistant, setup: Setup
) -> None:
    """Issue 20: `esp32_ota/../secrets.yaml` starts inside and ends outside."""
    board = setup.board

    assert await _refused(hass, "esp32_ota/../secrets.yaml") == "path_not_allowed"
    assert await _refused(hass, "esp32_ota/shared/../../secrets.yaml") == (
        "path_not_allowed"
    )
    assert SECRET.encode() not in board.read("app.py")


def _source_with_secret(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "main.py").write_text("print('main')\n")
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(SECRET)
    return folder, secrets


def test_source_folder_refuses_a_hard_link_to_a_file_outside(tmp_path: Path) -> None:
    folder, secrets = _source_with_secret(tmp_path)
    os.link(secrets, folder / "app.py")
    with pytest.raises(SourceError) as info:
        read_release(folder, None)
    assert info.value.key == "file_outside"
    assert info.value.placeholders["file"] == "app.py"


def test_source_folder_reads_what_it_checked_when_a_link_is_swapped(
    tmp_path: Path,
) -> None:
    folder, secrets = _source_with_secret(tmp_path)
    (folder / "lib").mkdir()
    good = folder / "lib" / "app_v2.py"
    good.write_text("print('app 2')\n")
    link = folder / "app.py"
    link.symlink_to(good)

    with after_resolving(link, relink(link, secrets)):
        release = read_release(folder, None)
    assert release is not None
    assert release.files[0].size == len(b"print('app 2')\n")  # the file it checked
    # Read again for an install, the link now leads out of the folder.
    with pytest.raises(SourceError) as info:
        release.read()
    assert info.value.key == "file_outside"


def test_a_folder_swapped_for_a_link_after_the_check_is_refused(
    tmp_path: Path,
) -> None:
    """A folder on the way replaced by a link to elsewhere: what opens is outside."""
    folder = tmp_path / "board"
    (folder / "lib").mkdir(parents=True)
    app = folder / "lib" / "app.py"
    app.write_text("print('app')\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.py").write_text(SECRET)

    with (
        after_resolving(app, dir_to_link(folder / "lib", elsewhere)),
        pytest.raises(OutsideError),
    ):
        read_checked(app, [folder.resolve()], 1024)
