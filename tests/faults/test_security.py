"""Security end to end: HMAC challenge auth, replay, secrecy, path checks.

A board with `AUTH_KEY` in its config.py, the real client (and the HA
entity with the same key in its options), over the simulated link: a wrong
key is refused, a recorded session replayed in a new connection is refused
with nothing staged or applied, the key never appears in a written byte,
a log line or the diagnostics. The board refuses file names outside its
allowlist, however they are spelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.link import SimLink
from homeassistant.const import CONF_ADDRESS
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.esp32_ota.const import (
    CONF_AUTH_KEY,
    CONF_NAME,
    CONF_SOURCE_DIR,
    DOMAIN,
)
from custom_components.esp32_ota.nus_ota import InstallResult, RejectedError, probe
from tests.common import (
    BOARD_ADDRESS,
    SOURCE_DIR,
    app_source,
    install,
    install_fails,
    make_board,
    set_options,
    setup_board,
    source_folder,
    write_release,
)
from tests.faults.rig import (
    Recorder,
    bundle,
    fault_board,
    release,
    run_install,
    tap,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from esp32_ota_sim.board import VirtualBoard
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

    from tests.bluetooth_helpers import SimProxyScanner
    from tests.faults.rig import FaultLedger

KEY = "k3y-Never-On-Air"
KEYED = f'VERSION = "1.0.0"\nAUTH_KEY = "{KEY}"\n'


def record_writes(board: VirtualBoard) -> list[bytes]:
    """Every write the board receives, as it came over the air."""
    written: list[bytes] = []

    def recording(_link: object, data: bytes, deliver: Callable[[], None]) -> None:
        written.append(bytes(data))
        deliver()

    tap(board, recording)
    return written


async def converse(board: VirtualBoard, lines: list[bytes]) -> list[str]:
    """Send raw lines in one new connection; the board's reply lines."""
    got: list[bytes] = []
    link = SimLink(board, "fast", on_notify=got.append)
    await link.open()
    for line in lines:
        await link.write_with_response(line)
        await asyncio.sleep(0.05)
    await link.close()
    return b"".join(got).decode().splitlines()


def staged(board: VirtualBoard) -> list[str]:
    """Staged (.new) files and v1 temp files on the board."""
    return [n for n in board.files() if n.endswith(".new") or n == "_ota_tmp"]


def test_wrong_key_is_refused_before_anything_is_staged(faults: FaultLedger) -> None:
    board = fault_board("proxy", config=KEYED)
    old = bundle(board)
    new = release(board)
    result = run_virtual(run_install(Recorder(board), new, auth_key="guess"))
    faults.add("wrong key")
    assert isinstance(result, RejectedError), result
    assert result.reason == "AUTH"
    assert staged(board) == []
    assert faults.check_board(board, old, new) == "old"


def test_replayed_session_is_refused_and_the_key_never_travels(
    faults: FaultLedger,
) -> None:
    board = fault_board("proxy", config=KEYED)
    old = bundle(board)
    first = release(board, tag="1.1.0")
    second = release(board, tag="1.2.0")
    written = record_writes(board)

    async def scenario() -> tuple[Any, Any, list[str], Any]:
        done = await run_install(Recorder(board), first, "1.1.0", auth_key=KEY)
        recorded = list(written)
        newer = await run_install(Recorder(board), second, "1.2.0", auth_key=KEY)
        # An attacker replays the recorded 1.1.0 session (a downgrade).
        replies = await converse(board, recorded)
        await asyncio.sleep(3)
        return done, newer, replies, await probe(Recorder(board))

    done, newer, replies, info = run_virtual(scenario())

    assert isinstance(done, InstallResult), done
    assert isinstance(newer, InstallResult), newer
    faults.add("replayed session")
    assert "OTA:OK" not in replies
    assert replies.count("OTA:REJECT:AUTH") == 3  # two FILE lines and APPLY
    assert not any(r.startswith("OTA:READY") for r in replies)
    assert info is not None
    assert info.staged == {}
    assert staged(board) == []
    assert faults.check_board(board, old, second) == "new"
    # The key is never written, in any form the board could get it from.
    air = b"".join(written)
    assert any(line.startswith(b"OTA:FILE:") for line in written)
    for form in (KEY.encode(), KEY.encode().hex().encode(), KEY.lower().encode()):
        assert form not in air


NAMES = [
    "../main.py",
    "../x",
    "/main.py",
    "main.py/..",
    "./main.py",
    "main.py\x00",
    "main\x00.py",
    "MAIN.PY",
    "main.py ",
    "x" * 300,
    "ota_state.json",
    "boot.py",
    "main.py.new",
]


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_the_board_refuses_names_outside_its_allowlist(
    faults: FaultLedger, name: str
) -> None:
    board = fault_board("fast")
    before = board.files()
    data = b"print('owned')\n"
    crc = "%08x" % (__import__("binascii").crc32(data) & 0xFFFFFFFF)
    lines = [
        b"OTA:HELLO\n",
        f"OTA:FILE:{name}:{len(data)}:{crc}:9.9:hex:f:\n".encode(),
        f"OTA:D:0:{data.hex()}\n".encode(),
        f"OTA:APPLY:{name}:\n".encode(),
        f"OTA:START:{name}:{len(data)}:{crc}\n".encode(),
        f"OTA:DATA:0:{data.hex()}\n".encode(),
        b"OTA:COMMIT\n",
    ]
    lines = [line[:250] for line in lines]  # one write each, as a client must

    replies = run_virtual(converse(board, lines))

    faults.add("hostile file name")
    assert "OTA:OK" not in replies
    assert not any(r.startswith("OTA:READY") for r in replies), replies
    assert any(r.startswith("OTA:REJECT:") for r in replies), replies
    assert board.files() == before  # no stray file, nothing replaced
    assert board.state == "running"


async def test_key_is_never_logged_nor_in_diagnostics(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
    faults: FaultLedger,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = app_source("1.1.0")
    write_release(source_folder(hass), {"app.py": app}, {"version": "1.1.0"})
    board = make_board(config=KEYED)
    written = record_writes(board)
    entry = await setup_board(hass, proxy, board)

    await set_options(hass, entry, {CONF_AUTH_KEY: "not the key"})
    await install_fails(hass, "auth_failed")
    faults.add("wrong key")
    assert staged(board) == []
    await set_options(hass, entry, {CONF_AUTH_KEY: KEY})
    await install(hass)

    assert board.read("app.py") == app.encode()
    assert KEY.encode() not in b"".join(written)
    assert KEY not in caplog.text
    assert "not the key" not in caplog.text
    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert KEY not in json.dumps(data)
    assert data["options"][CONF_AUTH_KEY] == "**REDACTED**"


async def test_options_refuse_folders_home_assistant_may_not_read(
    hass: HomeAssistant, tmp_path_factory: pytest.TempPathFactory
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=BOARD_ADDRESS,
        data={CONF_ADDRESS: BOARD_ADDRESS, CONF_NAME: "board"},
        options={CONF_SOURCE_DIR: SOURCE_DIR},
    )
    entry.add_to_hass(hass)
    outside = tmp_path_factory.mktemp("outside")
    link = Path(hass.config.path("sneaky"))
    await hass.async_add_executor_job(link.symlink_to, outside, True)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    for folder in ("../outside", str(outside), "/etc", "sneaky", "sneaky/deeper"):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SOURCE_DIR: folder}
        )
        assert result["type"] is FlowResultType.FORM, folder
        assert result["errors"] == {CONF_SOURCE_DIR: "folder_not_allowed"}, folder
    assert not (outside / "deeper").exists()  # refused before anything was made

    hass.config.allowlist_external_dirs = {str(outside)}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SOURCE_DIR: str(outside / "scripts")}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SOURCE_DIR] == str(outside / "scripts")
    assert (outside / "scripts").is_dir()
