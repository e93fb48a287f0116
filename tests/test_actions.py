"""The install_files action and the install events, on virtual boards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from esp32_ota_sim.bleak_backend import add_slot_listener
from homeassistant.components.update import ATTR_INSTALLED_VERSION
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import label_registry as lr
from homeassistant.helpers.service import _load_services_file
from homeassistant.loader import async_get_integration
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.esp32_ota.const import CONF_AUTH_KEY, DOMAIN
from custom_components.esp32_ota.history import EVENT_INSTALL
from custom_components.esp32_ota.services import INSTALL_FILES_SCHEMA
from custom_components.esp32_ota.source import MAX_FILE_SIZE
from tests.common import (
    BOARD_ADDRESS,
    ENTITY_ID,
    app_source,
    board_with_release,
    entity_update,
    install,
    install_fails,
    make_board,
    offer_release,
    setup_board,
    source_folder,
    write_release,
)

if TYPE_CHECKING:
    from homeassistant.core import Event, HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

SHARED = "esp32_ota/shared"


async def install_files(
    hass: HomeAssistant, *, response: bool = True, **data: Any
) -> dict[str, Any]:
    """Call esp32_ota.install_files; the response's boards (or {})."""
    result = await hass.services.async_call(
        DOMAIN,
        "install_files",
        data,
        blocking=True,
        return_response=response,
    )
    return result["boards"] if result is not None else {}  # type: ignore[return-value]


def shared_file(hass: HomeAssistant, name: str, text: str) -> str:
    """Write a file under the config dir's esp32_ota folder; its relative path."""
    folder = Path(hass.config.path(SHARED))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return f"{SHARED}/{name}"


def steps(events: list[Event[dict[str, Any]]]) -> list[tuple[str, str]]:
    """(type, entity) of each install event, in order."""
    return [(event.data["type"], event.data["entity_id"]) for event in events]


async def test_install_files_from_a_path_with_response(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board(config='VERSION = "1.0.0"\nAUTH_KEY = "s3cret"\n')
    await setup_board(hass, proxy, board, options={CONF_AUTH_KEY: "s3cret"})
    events = async_capture_events(hass, EVENT_INSTALL)
    app = app_source("2.0.0")
    path = shared_file(hass, "app.py", app)

    boards = await install_files(hass, entity_id=ENTITY_ID, files=[path])

    assert board.read("app.py") == app.encode()
    result = boards[ENTITY_ID]
    assert result["result"] == "installed"
    assert result["trigger"] == "action"
    assert result["files"] == ["app.py"]
    assert result["files_sent"] == ["app.py"]
    assert result["bytes"] == len(app)
    assert result["protocol"] == 2
    assert result["seconds"] > 0
    assert result["connection"] == f"sim-proxy ({proxy.source})"
    assert result["name"] == "ESP32-OTA-0001"
    assert result["address"] == BOARD_ADDRESS
    assert steps(events) == [("started", ENTITY_ID), ("finished", ENTITY_ID)]
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, BOARD_ADDRESS)})
    assert device is not None
    assert events[1].data["device_id"] == device.id
    assert events[1].data["result"] == "installed"
    # The key travels nowhere but to the board.
    dumped = json.dumps([boards, [event.data for event in events]])
    assert "s3cret" not in dumped


async def test_install_files_by_device_inline_with_version_and_force(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board()
    await setup_board(hass, proxy, board)
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, BOARD_ADDRESS)})
    assert device is not None
    app = app_source("1.3.0")
    call = {ATTR_DEVICE_ID: device.id, "content": {"app.py": app}, "version": "1.3.0"}

    boards = await install_files(hass, **call)
    assert boards[ENTITY_ID]["result"] == "installed"
    assert boards[ENTITY_ID]["version"] == "1.3.0"
    assert board.read("app.py") == app.encode()
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.3.0"

    # The board has it: nothing is sent, unless forced.
    resets = board.resets
    boards = await install_files(hass, **call)
    assert boards[ENTITY_ID]["result"] == "unchanged"
    assert boards[ENTITY_ID]["files_sent"] == []
    assert board.resets == resets
    boards = await install_files(hass, **call, force=True)
    assert boards[ENTITY_ID]["result"] == "installed"
    assert board.resets == resets + 1

    # Without a response the action just runs.
    assert await install_files(hass, response=False, **call, force=True) == {}
    assert board.resets == resets + 2


async def test_files_from_an_allowlisted_folder(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    board = make_board()
    await setup_board(hass, proxy, board)
    outside = tmp_path_factory.mktemp("outside")
    (outside / "app.py").write_text(app_source("3.0.0"))
    with pytest.raises(ServiceValidationError) as err:
        await install_files(hass, entity_id=ENTITY_ID, files=[str(outside / "app.py")])
    assert err.value.translation_key == "path_not_allowed"
    hass.config.allowlist_external_dirs.add(str(outside))
    boards = await install_files(
        hass, entity_id=ENTITY_ID, files=[str(outside / "app.py")]
    )
    assert boards[ENTITY_ID]["result"] == "installed"
    assert board.read("app.py") == app_source("3.0.0").encode()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"files": ["/etc/hostname"]}, "path_not_allowed"),
        ({"files": ["../escape.py"]}, "path_not_allowed"),
        ({"files": [f"{SHARED}/missing.py"]}, "file_not_found"),
        ({"files": [SHARED]}, "file_not_found"),
        ({"content": {"bad name.py": "x"}}, "file_name_invalid"),
        ({"files": [f"{SHARED}/app.py"], "content": {"app.py": "x"}}, "file_twice"),
        ({"content": {"app.py": "#" * (MAX_FILE_SIZE + 1)}}, "file_too_large"),
        ({}, "no_files"),
        ({"content": {"app.py": "x"}, "version": "1:2"}, "invalid_version"),
        ({"content": {"secrets.py": "KEY = 1\n"}}, "board_refuses_files"),
    ],
)
async def test_mistakes_are_refused_before_connecting(
    hass: HomeAssistant, proxy: SimProxyScanner, data: dict[str, Any], key: str
) -> None:
    board = make_board()
    await setup_board(hass, proxy, board)
    shared_file(hass, "app.py", app_source("2.0.0"))
    events = async_capture_events(hass, EVENT_INSTALL)
    connections: list[str] = []
    remove = add_slot_listener(connections.append)
    before = board.files()
    with pytest.raises(ServiceValidationError) as err:
        await install_files(hass, entity_id=ENTITY_ID, **data)
    remove()
    assert err.value.translation_key == key
    assert err.value.translation_domain == DOMAIN
    assert str(err.value) != key  # translated
    assert connections == []
    assert events == []
    assert board.files() == before


async def test_targets_must_be_loaded_boards(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    entry = await setup_board(hass, proxy, make_board())
    content = {"content": {"app.py": app_source("2.0.0")}}

    async def refused(key: str, **target: Any) -> str:
        with pytest.raises(ServiceValidationError) as err:
            await install_files(hass, **target, **content)
        assert err.value.translation_key == key, err.value
        return str(err.value)

    assert "update.nothing is not an ESP32 OTA board" in await refused(
        "not_a_board", entity_id="update.nothing"
    )
    await refused("not_a_board", device_id="0123456789abcdef")
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    stranger = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    await refused("not_a_board", device_id=stranger.id)
    await refused("no_boards", area_id="nowhere")

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert "is not set up" in await refused("board_not_loaded", entity_id=ENTITY_ID)


async def test_a_failing_board_is_reported(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    # A v1 board cannot tell its allowlist: the board itself refuses.
    board = make_board(v1=True)
    await setup_board(hass, proxy, board)
    events = async_capture_events(hass, EVENT_INSTALL)
    content = {"content": {"extra.py": "X = 1\n"}, "version": "1.1.0"}

    boards = await install_files(hass, entity_id=ENTITY_ID, **content)
    result = boards[ENTITY_ID]
    assert result["result"] == "failed"
    assert result["reason"] == "file_forbidden"
    assert "does not accept extra.py" in result["error"]
    assert steps(events) == [("started", ENTITY_ID), ("failed", ENTITY_ID)]
    assert events[1].data["reason"] == "file_forbidden"
    assert events[1].data["error"] == result["error"]

    with pytest.raises(HomeAssistantError) as err:
        await install_files(hass, response=False, entity_id=ENTITY_ID, **content)
    assert err.value.translation_key == "install_files_failed"
    assert "on 1 of 1 boards: ESP32-OTA-0001: " in str(err.value)


async def test_entity_installs_fire_events(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    await board_with_release(hass, proxy)
    events = async_capture_events(hass, EVENT_INSTALL)
    await install(hass)
    assert steps(events) == [("started", ENTITY_ID), ("finished", ENTITY_ID)]
    finished = events[1].data
    assert finished["trigger"] == "update_entity"
    assert finished["version"] == "1.1.0"
    assert finished["result"] == "installed"
    assert finished["files_sent"] == ["app.py"]
    assert finished["protocol"] == 2

    await offer_release(
        hass, "1.2.0", files={"app.py": app_source("1.2.0", crash=True)}
    )
    events.clear()
    await install_fails(hass, "rolled_back")
    assert steps(events) == [("started", ENTITY_ID), ("failed", ENTITY_ID)]
    assert events[1].data["reason"] == "rolled_back"
    assert "rejected version 1.2.0" in events[1].data["error"]


async def test_update_install_version_and_backup(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(hass, proxy)
    # Scripts cannot be read back from a board: no backup to take.
    with pytest.raises(HomeAssistantError, match="Backup is not supported"):
        await hass.services.async_call(
            "update", "install", {"entity_id": ENTITY_ID, "backup": True}, blocking=True
        )
    # One release: no version to choose.
    with pytest.raises(HomeAssistantError, match="specific version is not supported"):
        await install(hass, "1.1.0")
    await install(hass)
    with pytest.raises(HomeAssistantError, match="No update available"):
        await install(hass)

    # With older releases, a version is offered; naming the installed one
    # sends it again (forced), which repairs a board whose files were edited.
    older = source_folder(hass) / "versions" / "1.0.0"
    write_release(older, {"app.py": app_source("1.0.0")})
    await entity_update(hass)
    resets = board.resets
    await install(hass, "1.1.0")
    assert board.resets == resets + 1
    await install(hass, "1.0.0")
    assert board.read("app.py") == app_source("1.0.0").encode()


async def test_a_v1_board_gets_only_what_changed(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board(v1=True)
    await setup_board(hass, proxy, board)
    call = {"content": {"app.py": app_source("1.1.0")}, "version": "1.1.0"}
    boards = await install_files(hass, entity_id=ENTITY_ID, **call)
    assert boards[ENTITY_ID]["result"] == "installed"
    assert boards[ENTITY_ID]["protocol"] == 1
    # A v1 board cannot list its files: what we sent is remembered.
    resets = board.resets
    boards = await install_files(hass, entity_id=ENTITY_ID, **call)
    assert boards[ENTITY_ID]["result"] == "unchanged"
    assert board.resets == resets
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"


async def test_boards_of_an_area(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    board = make_board()
    await setup_board(hass, proxy, board)
    area = ar.async_get(hass).async_create("Workshop")
    devices = dr.async_get(hass)
    ours = devices.async_get_device(identifiers={(DOMAIN, BOARD_ADDRESS)})
    assert ours is not None
    devices.async_update_device(ours.id, area_id=area.id)
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    stranger = devices.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    devices.async_update_device(stranger.id, area_id=area.id)

    boards = await install_files(
        hass, area_id=area.id, content={"app.py": app_source("2.0.0")}
    )
    assert list(boards) == [ENTITY_ID]
    assert boards[ENTITY_ID]["result"] == "installed"

    # Entities by label; the board once, however often it is named.
    label = lr.async_get(hass).async_create("Boards")
    er.async_get(hass).async_update_entity(ENTITY_ID, labels={label.label_id})
    boards = await install_files(
        hass,
        label_id=label.label_id,
        device_id=ours.id,
        content={"app.py": app_source("2.1.0")},
    )
    assert list(boards) == [ENTITY_ID]
    assert boards[ENTITY_ID]["result"] == "installed"


async def test_unreadable_file(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    await setup_board(hass, proxy, make_board())
    path = shared_file(hass, "app.py", app_source("2.0.0"))
    with (
        patch(
            "custom_components.esp32_ota.checked_read._read",
            side_effect=PermissionError("denied"),
        ),
        pytest.raises(ServiceValidationError) as err,
    ):
        await install_files(hass, entity_id=ENTITY_ID, files=[path])
    assert err.value.translation_key == "file_unreadable"
    assert "denied" in str(err.value)


async def test_an_unexpected_error_is_not_hidden(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    entry = await setup_board(hass, proxy, make_board())
    with (
        patch.object(
            entry.runtime_data, "async_install_files", side_effect=RuntimeError("bug")
        ),
        pytest.raises(RuntimeError, match="bug"),
    ):
        await install_files(
            hass, entity_id=ENTITY_ID, content={"app.py": app_source("2.0.0")}
        )


async def test_action_is_described(hass: HomeAssistant) -> None:
    integration = await async_get_integration(hass, DOMAIN)
    described = await hass.async_add_executor_job(_load_services_file, integration)
    assert isinstance(described, dict)
    action = described["install_files"]
    assert set(action["fields"]) == set(INSTALL_FILES_SCHEMA.schema) - set(
        cv.ENTITY_SERVICE_FIELDS
    )
    assert action["target"]["device"] == [{"integration": DOMAIN}]


async def test_files_in_the_config_root_are_not_readable(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """Anyone who may call actions must not get secrets.yaml onto a board."""
    await setup_board(hass, proxy, make_board())
    secrets = Path(hass.config.path("secrets.yaml"))
    await hass.async_add_executor_job(secrets.write_text, "api_key: hunter2\n")
    with pytest.raises(ServiceValidationError) as err:
        await install_files(hass, entity_id=ENTITY_ID, files=["secrets.yaml"])
    assert err.value.translation_key == "path_not_allowed"
