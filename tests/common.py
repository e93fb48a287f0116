"""Helpers for the Home Assistant tests: boards, source folders, the entity."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from esp32_ota_sim.bleak_backend import set_connection_slots
from esp32_ota_sim.board import FIRMWARE_DIR, VirtualBoard
from esp32_ota_sim.fleet import board_address
from esp32_ota_sim.memfs import MemFS
from esp32_ota_sim.v1_board import V1_OTA_MANAGER, V1OnlyBoard
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_UPDATE_PERCENTAGE,
    ATTR_VERSION,
    SERVICE_INSTALL,
)
from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, CONF_ADDRESS
from homeassistant.core import Event, EventStateChangedData, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esp32_ota.const import CONF_NAME, CONF_SOURCE_DIR, DOMAIN
from custom_components.esp32_ota.nus_ota.lines import FRAME_HEAD, FRAME_MARK

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from custom_components.esp32_ota.coordinator import BoardCoordinator
    from tests.bluetooth_helpers import SimLocalScanner, SimProxyScanner

BOARD_ADDRESS = "24:0A:C4:00:00:01"
BOARD_NAME = "ESP32-OTA-0001"
ENTITY_ID = "update.esp32_ota_0001_scripts"
SOURCE_DIR = "esp32_ota/esp32_ota_0001"
V1_MANAGER = V1_OTA_MANAGER.read_bytes()


def app_source(version: str, padding: int = 4000, *, crash: bool = False) -> str:
    """An app.py like the demo's, of about `padding` bytes, reporting `version`."""
    lines = [
        f'"""Demo application {version}."""',
        "",
        f'VERSION = "{version}"',
        "",
    ]
    if crash:
        lines += ["raise RuntimeError('this version is broken')", ""]
    lines += [
        "",
        "def handle(line):",
        '    if line == "PING":',
        '        return "PONG"',
        '    if line == "VERSION":',
        '        return "VERSION:" + VERSION',
        "    return None",
        "",
    ]
    text = "\n".join(lines)
    filler = "# " + "padding so the transfer takes several chunks " * 2 + "\n"
    while len(text) < padding:
        text += filler
    return text


def make_board(
    address: str = BOARD_ADDRESS,
    *,
    config: str = 'VERSION = "1.0.0"\n',
    v1: bool = False,
    total_blocks: int | None = None,
    deflate: bool = True,
) -> VirtualBoard:
    """A board with the real firmware (or a v1-only OTA manager) and config.py.

    `deflate=False`: a MicroPython without the deflate module, so binary data
    goes as plain frames (tests that change a frame's bytes on the air)."""
    fs = None
    if total_blocks is not None:
        fs = MemFS(total_blocks=total_blocks)
        for path in sorted(FIRMWARE_DIR.glob("*.py")):
            fs.write_file(path.name, path.read_bytes())
    files: dict[str, bytes | str] = {"config.py": config}
    if v1:
        return V1OnlyBoard(address, files=files, fs=fs)
    return VirtualBoard(address, files=files, fs=fs, has_deflate=deflate)


def write_release(
    folder: Path, files: dict[str, str], manifest: dict[str, Any] | None = None
) -> None:
    """Put scripts (and a manifest) into a source folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    if manifest is not None:
        (folder / "esp32_ota.json").write_text(json.dumps(manifest))


async def setup_board(
    hass: HomeAssistant,
    proxy: SimProxyScanner | SimLocalScanner,
    board: VirtualBoard,
    *,
    options: dict[str, Any] | None = None,
    profile: str = "fast",
) -> MockConfigEntry:
    """Advertise the board, add its entry and wait until it was read once."""
    proxy.inject(board, profile)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=board.address,
        title=board.name or board.address,
        data={CONF_ADDRESS: board.address, CONF_NAME: board.name},
        options={CONF_SOURCE_DIR: SOURCE_DIR, **(options or {})},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return entry


class BoardSetUp(NamedTuple):
    """A board set up in Home Assistant, and its config entry."""

    board: VirtualBoard
    entry: MockConfigEntry


async def board_with_release(
    hass: HomeAssistant,
    scanner: SimProxyScanner | SimLocalScanner,
    version: str | None = "1.1.0",
    *,
    files: dict[str, str] | None = None,
    board: VirtualBoard | None = None,
    **setup: Any,
) -> BoardSetUp:
    """Offer a release in the board's folder, then set the board up.

    The release is `files` (default: app.py reporting `version`), declared
    as `version` in a manifest (None: undeclared, named by its hash). The
    board is `board` (default: our firmware on 1.0.0); `setup` goes to
    setup_board (options, profile).
    """
    _write_offer(hass, version, files)
    board = board if board is not None else make_board()
    return BoardSetUp(board, await setup_board(hass, scanner, board, **setup))


async def offer_release(
    hass: HomeAssistant,
    version: str | None = "1.1.0",
    *,
    files: dict[str, str] | None = None,
) -> None:
    """Put a release in the board's folder and let the entity see it now.

    `files` and `version` as in board_with_release.
    """
    _write_offer(hass, version, files)
    await entity_update(hass)


def _write_offer(
    hass: HomeAssistant, version: str | None, files: dict[str, str] | None
) -> None:
    if files is None:
        files = {"app.py": app_source(version or "1.1.0")}
    manifest = {"version": version} if version is not None else None
    write_release(source_folder(hass), files, manifest)


def board_entity(index: int) -> str:
    """The update entity of the index-th board of a fleet."""
    return f"update.esp32_ota_{index:04x}_scripts"


async def setup_fleet(
    hass: HomeAssistant,
    proxy: SimProxyScanner | SimLocalScanner,
    count: int,
    *,
    slots: int | None = None,
    **kwargs: Any,
) -> list[VirtualBoard]:
    """Boards 1..count behind one scanner, all set up (they share a folder).

    slots: the scanner's connection slots from then on (its own otherwise).
    """
    boards = [make_board(board_address(index)) for index in range(1, count + 1)]
    for board in boards:
        await setup_board(hass, proxy, board, **kwargs)
    if slots is not None:
        set_connection_slots(proxy.source, slots)
    return boards


async def wait(hass: HomeAssistant, seconds: float) -> None:
    """Let `seconds` of virtual time pass, and the work they bring finish."""
    await asyncio.sleep(seconds)
    await hass.async_block_till_done(wait_background_tasks=True)


def source_folder(hass: HomeAssistant) -> Path:
    """The board's default source folder."""
    return Path(hass.config.path(SOURCE_DIR))


async def install(hass: HomeAssistant, version: str | None = None) -> None:
    """Call update.install on the board's entity and wait for it."""
    data: dict[str, Any] = {ATTR_ENTITY_ID: ENTITY_ID}
    if version is not None:
        data[ATTR_VERSION] = version
    await hass.services.async_call(UPDATE_DOMAIN, SERVICE_INSTALL, data, blocking=True)


class ProgressRecorder:
    """Every (in_progress, update_percentage) and install phase the entity reported."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start listening."""
        self.seen: list[tuple[bool, float | None]] = []
        self.phases_seen: list[str | None] = []

        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            if (state := event.data["new_state"]) is not None:
                self.phases_seen.append(state.attributes.get("install_phase"))
                self.seen.append(
                    (
                        state.attributes.get(ATTR_IN_PROGRESS),
                        state.attributes.get(ATTR_UPDATE_PERCENTAGE),
                    )
                )

        self.remove = async_track_state_change_event(hass, ENTITY_ID, changed)

    @property
    def percentages(self) -> list[float]:
        """Percentages reported while in progress, in order."""
        return [pct for busy, pct in self.seen if busy and pct is not None]

    @property
    def phases(self) -> list[str]:
        """The install phases shown, in order, each once per stretch."""
        shown = [phase for phase in self.phases_seen if phase is not None]
        return [p for i, p in enumerate(shown) if i == 0 or shown[i - 1] != p]


async def install_fails(
    hass: HomeAssistant, key: str, version: str | None = None
) -> HomeAssistantError:
    """Call update.install, expect the translated error `key`; never stuck."""
    with pytest.raises(HomeAssistantError) as info:
        await install(hass, version)
    assert info.value.translation_key == key, info.value
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_IN_PROGRESS] is False
    assert state.attributes[ATTR_UPDATE_PERCENTAGE] is None
    return info.value


async def entity_update(hass: HomeAssistant) -> None:
    """homeassistant.update_entity: re-read the folder and the board."""
    assert await async_setup_component(hass, "homeassistant", {})
    await hass.services.async_call(
        "homeassistant", "update_entity", {ATTR_ENTITY_ID: ENTITY_ID}, blocking=True
    )


async def set_options(
    hass: HomeAssistant, entry: MockConfigEntry, changes: dict[str, Any]
) -> None:
    """Change options and reload, as the options flow does."""
    hass.config_entries.async_update_entry(entry, options={**entry.options, **changes})
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)


def corrupt_first_data_line(board: VirtualBoard) -> None:
    """Flip one payload byte of the first v2 data line or frame on the air."""
    receive = board.receive
    done = False

    def corrupting(link: Any, data: bytes) -> None:
        nonlocal done
        if not done and data.startswith((b"OTA:D:0:", bytes((FRAME_MARK,)))):
            done = True
            pos = len(b"OTA:D:0:") + 4 if data[:1] == b"O" else FRAME_HEAD + 4
            swapped = b"B" if data[pos : pos + 1] != b"B" else b"C"
            data = data[:pos] + swapped + data[pos + 1 :]
        receive(link, data)

    board.receive = corrupting  # type: ignore[method-assign]


def keep_busy(board: VirtualBoard) -> None:
    """Another client (say, over USB) starts a v1 transfer before each FILE."""
    receive = board.receive

    def busy(link: Any, data: bytes) -> None:
        if data.startswith(b"OTA:FILE:"):
            ota = board.peripheral.ota
            reply = ota._reply
            ota._reply = lambda line: None  # its answers go to the other client
            ota.handle("OTA:START:app.py:10:00000000")
            ota._reply = reply
        receive(link, data)

    board.receive = busy  # type: ignore[method-assign]


async def wait_until_sending(coordinator: BoardCoordinator) -> None:
    """Return once the board acknowledged the first data."""
    sending = asyncio.Event()

    def check() -> None:
        if coordinator.installer.progress:
            sending.set()

    remove = coordinator.async_add_listener(check)
    try:
        await sending.wait()
    finally:
        remove()
