"""End to end: the update entity installs scripts on virtual boards.

Everything between the entity and the board is real: Home Assistant's
Bluetooth wrapper connects through a proxy-like remote scanner to a
VirtualBoard running the firmware; the OTA library speaks the protocol.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.bleak_backend import set_connection_slots
from esp32_ota_sim.board import FIRMWARE_DIR
from homeassistant.components.update import (
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    UpdateEntityFeature,
)
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir

from custom_components.esp32_ota.const import CONF_AUTH_KEY, CONF_TOKEN, DOMAIN
from custom_components.esp32_ota.fleet import QUEUE_TIMEOUT
from tests.bluetooth_helpers import (
    async_register_sim_local_adapter,
    use_sim_for_local_adapters,
)
from tests.common import (
    ENTITY_ID,
    ProgressRecorder,
    app_source,
    board_with_release,
    corrupt_first_data_line,
    install,
    install_fails,
    keep_busy,
    make_board,
    offer_release,
    set_options,
    source_folder,
    wait_until_sending,
    write_release,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.typing import WebSocketGenerator

    from tests.bluetooth_helpers import SimProxyScanner


async def test_install_v2_board(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    app = app_source("1.1.0")
    main = (FIRMWARE_DIR / "main.py").read_text()  # what the board has already
    manifest = json.dumps({"version": "1.1.0", "release_notes": "Faster blinking"})
    files = {"app.py": app, "main.py": main, "esp32_ota.json": manifest}
    board, _ = await board_with_release(hass, proxy, None, files=files)
    resets = board.resets

    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.state == STATE_ON
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.0.0"
    assert state.attributes[ATTR_LATEST_VERSION] == "1.1.0"
    assert state.attributes["release_summary"] == "Faster blinking"
    assert state.attributes["protocol"] == 2
    assert state.attributes["files_to_update"] == ["app.py"]

    progress = ProgressRecorder(hass)
    await install(hass)

    assert board.read("app.py") == app.encode()
    assert board.read("main.py") == main.encode()
    assert board.resets == resets + 1  # one bundle, one reset
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"
    assert state.attributes["in_progress"] is False
    assert state.attributes["files_to_update"] == []
    pct = progress.percentages
    assert len(pct) > 3
    assert pct == sorted(pct)
    # The transfer takes most of the bar; 100 % is never shown before the end.
    assert pct[-1] < 100
    assert any(60 < p <= 80 for p in pct)
    # The demo app confirms nothing itself: healthy after 30 s up on trial.
    assert progress.phases == [
        "connecting",
        "transfer",
        "applying",
        "restarting",
        "checking",
        "trial",
    ]
    assert progress.seen[-1] == (False, None)
    assert state.attributes["install_phase"] is None


async def test_install_v1_board_file_by_file(
    hass: HomeAssistant, proxy: SimProxyScanner, hass_storage: dict[str, Any]
) -> None:
    main = (FIRMWARE_DIR / "main.py").read_text() + "\n# tuned\n"
    app = app_source("1.1.0")
    board, entry = await board_with_release(
        hass, proxy, files={"app.py": app, "main.py": main}, board=make_board(v1=True)
    )

    state = hass.states.get(ENTITY_ID)
    assert state is not None
    # A v1 board cannot list its files: the application's VERSION reply.
    assert state.attributes["protocol"] == 1
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.0.0"
    assert state.state == STATE_ON

    progress = ProgressRecorder(hass)
    resets = board.resets
    await install(hass)

    assert board.read("app.py") == app.encode()
    assert board.read("main.py") == main.encode()
    assert board.resets == resets + 2  # one commit, one reset per file
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"
    assert progress.percentages[-1] < 100
    assert progress.phases[-3:] == ["applying", "restarting", "checking"]
    stored = hass_storage[f"esp32_ota.{entry.entry_id}"]["data"]
    assert stored["protocol"] == 1
    assert stored["installed"]["version"] == "1.1.0"
    assert set(stored["installed"]["files"]) == {"app.py", "main.py"}

    # Only what changed goes again (each v1 file costs a reset).
    await offer_release(hass, "1.2.0")
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_LATEST_VERSION] == "1.2.0"
    assert state.attributes["files_to_update"] == ["app.py"]
    resets = board.resets
    await install(hass)
    assert board.read("app.py") == app_source("1.2.0").encode()
    assert board.resets == resets + 1

    # What we installed survives a restart of the integration.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.2.0"
    assert state.state == STATE_OFF


async def test_undeclared_version_is_a_content_hash(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(
        hass, proxy, None, files={"app.py": app_source("x")}
    )
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    latest = state.attributes[ATTR_LATEST_VERSION]
    assert len(latest) == 8
    assert state.state == STATE_ON

    await install(hass)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == latest
    assert state.state == STATE_OFF

    # Edit the script: a new hash, an update again (hashes do not order).
    await offer_release(hass, None, files={"app.py": app_source("y")})
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_LATEST_VERSION] != latest
    assert state.state == STATE_ON
    await install(hass)
    assert board.read("app.py") == app_source("y").encode()

    entity = hass.data["entity_components"]["update"].get_entity(ENTITY_ID)
    assert entity.version_is_newer("00000001", "99999999") is True
    assert entity.version_is_newer("0abc0001", "1.2.0") is True
    assert entity.version_is_newer("1.0.0", "2.0.0") is False
    assert entity.version_is_newer("2.0.0", "1.0.0") is True


async def test_edited_scripts_without_a_new_version_say_the_folder_changed(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(hass, proxy)
    await install(hass)
    await offer_release(hass, None, files={"app.py": app_source("1.1.0") + "# fix\n"})
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    # The board did not change: it still runs 1.1.0; the folder changed.
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.1.0"
    assert state.attributes[ATTR_LATEST_VERSION] == "1.1.0 (folder changed)"
    assert state.state == STATE_ON
    await install(hass)
    assert board.read("app.py").endswith(b"# fix\n")
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_LATEST_VERSION] == "1.1.0"


async def test_specific_version_from_the_versions_folder(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    older = source_folder(hass) / "versions" / "1.0.5"
    write_release(older, {"app.py": app_source("1.0.5")})
    board, _ = await board_with_release(hass, proxy, "1.2.0")
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["supported_features"] & UpdateEntityFeature.SPECIFIC_VERSION
    assert state.attributes["available_versions"] == ["1.0.5", "1.2.0"]

    await install(hass)
    # Going back on purpose passes the board's downgrade guard.
    await install(hass, "1.0.5")
    assert board.read("app.py") == app_source("1.0.5").encode()
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.0.5"
    assert state.state == STATE_ON

    with pytest.raises(ServiceValidationError) as err:
        await install(hass, "0.9")
    assert err.value.translation_key == "unknown_version"
    assert "Available: 1.0.5, 1.2.0" in str(err.value)


async def test_downgrade_is_refused_by_the_board(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(hass, proxy, "2.0.0")
    await install(hass)
    await offer_release(hass, "1.5.0")

    err = await install_fails(hass, "downgrade_refused")
    assert "runs a newer version than 1.5.0" in str(err)
    assert board.read("app.py") == app_source("2.0.0").encode()


async def test_a_file_the_board_would_refuse_is_shown_and_not_offered(
    hass: HomeAssistant, proxy: SimProxyScanner, hass_ws_client: WebSocketGenerator
) -> None:
    files = {"app.py": app_source("1.1.0"), "secrets.py": "KEY = 1\n"}
    board, entry = await board_with_release(hass, proxy, files=files)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["files_refused"] == ["secrets.py"]
    assert "would refuse secrets.py" in state.attributes["release_summary"]
    # No Update button for an install certain to fail.
    assert not state.attributes["supported_features"] & UpdateEntityFeature.INSTALL
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "update/release_notes", "entity_id": ENTITY_ID}
    )
    notes = (await client.receive_json())["result"]
    assert notes.startswith(
        '<ha-alert alert-type="warning">ESP32-OTA-0001 would refuse secrets.py: '
        "it accepts only app.py, main.py."
    )
    assert "- secrets.py (8 bytes) (to send) (refused by the board)" in notes
    found = ir.async_get(hass).async_get_issue(
        DOMAIN, f"files_refused_{entry.entry_id}"
    )
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    assert found.translation_placeholders == {
        "name": "ESP32-OTA-0001",
        "files": "secrets.py",
        "allowed": "app.py, main.py",
        "folder": str(source_folder(hass)),
    }

    # Asked anyway (an automation calling the coordinator): refused, nothing sent.
    before = board.files()
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.async_install(None)
    assert err.value.translation_key == "files_not_allowed"
    assert "only accepts app.py, main.py" in str(err.value)
    assert board.files() == before

    # The file leaves the folder: the issue goes, the install is offered.
    (source_folder(hass) / "secrets.py").unlink()
    await offer_release(hass, files={"app.py": app_source("1.1.0")})
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["supported_features"] & UpdateEntityFeature.INSTALL
    assert state.attributes["files_refused"] == []
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"files_refused_{entry.entry_id}")
        is None
    )
    await install(hass)
    assert board.read("app.py") == app_source("1.1.0").encode()


async def test_no_entity_picture_the_icon_shows(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """HA 2026.2 serves no brand/ folder and the brands CDN has no icon for us."""
    await board_with_release(hass, proxy)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert "entity_picture" not in state.attributes


async def test_forbidden_file_on_a_v1_board(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(
        hass, proxy, files={"extra.py": "X = 1\n"}, board=make_board(v1=True)
    )
    err = await install_fails(hass, "file_forbidden")
    assert "does not accept extra.py" in str(err)
    assert "extra.py" not in board.files()


async def test_board_without_space(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    big = "# " + "x" * 200_000 + "\n"
    await board_with_release(
        hass, proxy, files={"app.py": big}, board=make_board(total_blocks=48)
    )
    err = await install_fails(hass, "no_space")
    assert "has no room for app.py" in str(err)


async def test_hmac_key(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    board, entry = await board_with_release(
        hass,
        proxy,
        board=make_board(config='VERSION = "1.0.0"\nAUTH_KEY = "right key"\n'),
    )

    err = await install_fails(hass, "auth_required")
    assert "requires authentication (hmac)" in str(err)

    await set_options(hass, entry, {CONF_AUTH_KEY: "wrong key"})
    await install_fails(hass, "auth_failed")

    await set_options(hass, entry, {CONF_AUTH_KEY: "right key"})
    await install(hass)
    assert board.read("app.py") == app_source("1.1.0").encode()


async def test_v1_token(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    board, entry = await board_with_release(
        hass,
        proxy,
        board=make_board(config='VERSION = "1.0.0"\nAUTH_TOKEN = "tok"\n', v1=True),
    )

    await install_fails(hass, "auth_failed")
    await set_options(hass, entry, {CONF_TOKEN: "tok"})
    await install(hass)
    assert board.read("app.py") == app_source("1.1.0").encode()

    # A token travels in START after the version: an undeclared one will not do.
    (source_folder(hass) / "esp32_ota.json").unlink()
    await offer_release(hass, None, files={"app.py": app_source("1.2.0")})
    await install_fails(hass, "version_required")


async def test_out_of_proxy_connection_slots(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    await board_with_release(hass, proxy)
    set_connection_slots(proxy.source, 0)
    began = hass.loop.time()
    err = await install_fails(hass, "queue_timeout")  # waited, then gave up
    assert hass.loop.time() - began >= QUEUE_TIMEOUT
    assert "stayed busy" in str(err)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes["in_progress"] is False


async def test_board_out_of_range(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    board, _ = await board_with_release(hass, proxy)
    board.stop()  # powered off; Home Assistant has not noticed yet
    err = await install_fails(hass, "not_found")
    assert "not in range" in str(err)


async def test_corrupted_transfer(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    # Plain frames: a byte changed in a deflated frame mostly breaks its
    # stream, which the board refuses (BAD_DATA) and the client resends.
    board, _ = await board_with_release(hass, proxy, board=make_board(deflate=False))
    corrupt_first_data_line(board)
    err = await install_fails(hass, "crc_mismatch")
    assert "The data of app.py arrived corrupted" in str(err)
    assert board.read("app.py") == (FIRMWARE_DIR / "app.py").read_bytes()


@pytest.mark.parametrize(
    ("declared", "app_version", "message"),
    [
        ("1.1.0", "1.1.0", "rejected version 1.1.0"),
        (None, "x", "went back to"),  # undeclared: the release is named by its hash
    ],
)
async def test_board_rolls_back_a_broken_version(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    declared: str | None,
    app_version: str,
    message: str,
) -> None:
    board, _ = await board_with_release(
        hass, proxy, declared, files={"app.py": app_source(app_version, crash=True)}
    )
    err = await install_fails(hass, "rolled_back")
    assert message in str(err)
    assert board.read("app.py") == (FIRMWARE_DIR / "app.py").read_bytes()
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.attributes[ATTR_INSTALLED_VERSION] == "1.0.0"


async def test_board_busy_with_another_transfer(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(hass, proxy)
    keep_busy(board)
    err = await install_fails(hass, "board_busy")
    assert "busy with another transfer" in str(err)


async def test_one_install_at_a_time(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy)
    task = hass.async_create_task(install(hass))
    await wait_until_sending(entry.runtime_data)
    # update.install refuses while in progress; so do the board's runtime
    # and the install_files action, with one rule and one error.
    with pytest.raises(HomeAssistantError, match="already in progress"):
        await install(hass)
    for attempt in (
        entry.runtime_data.async_install(None),
        hass.services.async_call(
            DOMAIN,
            "install_files",
            {"entity_id": ENTITY_ID, "content": {"app.py": app_source("9.0.0")}},
            blocking=True,
        ),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await attempt
        assert err.value.translation_key == "install_in_progress"
    await task
    assert board.read("app.py") == app_source("1.1.0").encode()


async def test_lossy_proxy_link_still_installs(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    app = app_source("1.1.0", padding=12_000)
    board, _ = await board_with_release(
        hass, proxy, files={"app.py": app}, profile="lossy-proxy"
    )
    await install(hass)
    assert board.read("app.py") == app.encode()


async def test_release_notes(
    hass: HomeAssistant, proxy: SimProxyScanner, hass_ws_client: WebSocketGenerator
) -> None:
    changelog = "# 1.1.0\n\n- Faster blinking\n"
    files = {"app.py": app_source("1.1.0"), "CHANGELOG.md": changelog}
    await board_with_release(hass, proxy, files=files)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "update/release_notes", "entity_id": ENTITY_ID}
    )
    result = await client.receive_json()
    notes = result["result"]
    assert notes.startswith("# 1.1.0\n\n- Faster blinking\n")
    size = len(app_source("1.1.0"))
    assert (
        "Files in version 1.1.0, compared with 1.0.0 on the board when this "
        f"dialog opened:\n- app.py ({size} bytes) (to send)"
    ) in notes

    # After the install the next opening says so (the frontend fetches the
    # notes once per opening, and the entity's state changed).
    await install(hass)
    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.state == STATE_OFF
    await client.send_json_auto_id(
        {"type": "update/release_notes", "entity_id": ENTITY_ID}
    )
    notes = (await client.receive_json())["result"]
    assert (
        f"compared with 1.1.0 on the board when this dialog opened:\n"
        f"- app.py ({size} bytes) (on the board)"
    ) in notes


async def test_board_does_not_come_back_after_the_update(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, _ = await board_with_release(hass, proxy)
    board.boot = board.stop  # type: ignore[method-assign]  # the reset never ends
    err = await install_fails(hass, "not_back")
    assert "was not seen again" in str(err)
    assert board.read("app.py") == app_source("1.1.0").encode()  # applied anyway


async def test_from_discovery_to_installed(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """The whole path: advertisement, discovery flow, entity, install."""
    board = make_board()
    proxy.inject(board)
    await hass.async_block_till_done(wait_background_tasks=True)
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    # The flow made the board's folder; the user drops scripts in it.
    assert source_folder(hass).is_dir()
    await offer_release(hass)
    assert hass.states.get(ENTITY_ID).state == STATE_ON
    await install(hass)
    assert board.read("app.py") == app_source("1.1.0").encode()
    assert hass.states.get(ENTITY_ID).state == STATE_OFF


@pytest.mark.usefixtures("enable_bluetooth")
async def test_install_through_a_local_adapter(hass: HomeAssistant) -> None:
    with use_sim_for_local_adapters():
        scanner, cleanup = async_register_sim_local_adapter(hass)
        board, _ = await board_with_release(hass, scanner)
        assert hass.states.get(ENTITY_ID).attributes["protocol"] == 2
        await install(hass)
        cleanup()
    assert board.read("app.py") == app_source("1.1.0").encode()
