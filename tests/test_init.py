"""Setup, availability, the folder watch, persistence and error wording."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from bleak.exc import BleakError
from homeassistant.components import bluetooth
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_ADDRESS, STATE_UNAVAILABLE
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import frame
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.esp32_ota.const import (
    CONF_AUTH_KEY,
    CONF_NAME,
    CONF_SOURCE_DIR,
    CONF_TOKEN,
    DOMAIN,
)
from custom_components.esp32_ota.data import board_store
from custom_components.esp32_ota.errors import translate
from custom_components.esp32_ota.history import EVENT_INSTALL
from custom_components.esp32_ota.nus_ota.errors import (
    ConnectFailedError,
    DeviceError,
    LinkTooSmallError,
    NoReplyError,
    RejectedError,
)
from tests.bluetooth_helpers import async_register_sim_proxy
from tests.common import (
    ENTITY_ID,
    SOURCE_DIR,
    app_source,
    board_with_release,
    entity_update,
    install,
    install_fails,
    make_board,
    offer_release,
    setup_board,
    source_folder,
    wait_until_sending,
    write_release,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

    from tests.bluetooth_helpers import SimProxyScanner


async def test_unload_and_remove(
    hass: HomeAssistant, proxy: SimProxyScanner, hass_storage: dict[str, Any]
) -> None:
    _, entry = await board_with_release(hass, proxy)
    key = f"{DOMAIN}.{entry.entry_id}"
    assert hass_storage[key]["data"]["protocol"] == 2
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get(ENTITY_ID).state == STATE_UNAVAILABLE
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


@pytest.mark.usefixtures("enable_bluetooth")
async def test_availability_follows_the_scanners(hass: HomeAssistant) -> None:
    scanner, cleanup = async_register_sim_proxy(hass)
    board, entry = await board_with_release(hass, scanner)
    assert hass.states.get(ENTITY_ID).state == "on"

    # The only proxy that heard the board goes away.
    cleanup()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=6))
    await hass.async_block_till_done()
    assert hass.states.get(ENTITY_ID).state == STATE_UNAVAILABLE
    coordinator = entry.runtime_data
    # No hourly look at a board nobody hears; an install says why.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=2))
    await hass.async_block_till_done(wait_background_tasks=True)
    with pytest.raises(HomeAssistantError) as err:
        await coordinator.async_install(None)
    assert err.value.translation_key == "not_found"

    # Meanwhile another client updated the board.
    board.write("app.py", app_source("1.1.0"))
    board.reboot()

    # It is heard again: available again, and read again by itself.
    scanner, cleanup = async_register_sim_proxy(hass, name="another proxy")
    scanner.inject(board)
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get(ENTITY_ID)
    assert state.state == "off"
    assert state.attributes["installed_version"] == "1.1.0"
    cleanup()


async def test_source_problems_raise_a_repair_issue_until_fixed(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    files = {"app.py": app_source("1.1.0"), "esp32_ota.json": "{broken"}
    _, entry = await board_with_release(hass, proxy, None, files=files)
    issues = ir.async_get(hass)
    issue = issues.async_get_issue(DOMAIN, f"source_problem_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "source_problem"
    assert "is not valid: not JSON" in issue.translation_placeholders["error"]
    # Unloading takes the issue away; setting up again brings it back.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert issues.async_get_issue(DOMAIN, f"source_problem_{entry.entry_id}")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert issues.async_get_issue(DOMAIN, f"source_problem_{entry.entry_id}") is None
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get(ENTITY_ID)
    assert state.attributes["latest_version"] is None
    assert state.attributes["release_summary"].startswith("Source folder problem:")

    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.async_install(None)
    assert err.value.translation_key == "source_problem"

    # Fixed in the folder: picked up by the periodic scan, issue gone.
    (source_folder(hass) / "esp32_ota.json").write_text(
        json.dumps({"version": "1.1.0"})
    )
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert issues.async_get_issue(DOMAIN, f"source_problem_{entry.entry_id}") is None
    assert hass.states.get(ENTITY_ID).attributes["latest_version"] == "1.1.0"


async def test_empty_folder_has_nothing_to_install(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    source_folder(hass).mkdir(parents=True)
    entry = await setup_board(hass, proxy, make_board())
    state = hass.states.get(ENTITY_ID)
    assert state.attributes["latest_version"] is None
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.async_install(None)
    assert err.value.translation_key == "no_update"
    assert str(source_folder(hass)) in str(err.value)


async def test_damaged_storage_is_ignored(
    hass: HomeAssistant, proxy: SimProxyScanner, hass_storage: dict[str, Any]
) -> None:
    board = make_board()  # not in range: nothing overwrites what was loaded
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=board.address,
        title="ESP32-OTA-0001",
        data={CONF_ADDRESS: board.address, CONF_NAME: "ESP32-OTA-0001"},
        options={CONF_SOURCE_DIR: SOURCE_DIR},
    )
    hass_storage[f"{DOMAIN}.{entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}",
        "data": {"installed": {"version": 3}, "protocol": 9},
    }
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = entry.runtime_data
    assert coordinator.data.record is None
    assert coordinator.data.protocol is None
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_another_clients_update_is_seen_in_the_advertisement(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    # (Boards that advertise no OTA state are read every hour instead:
    # test_advertised_state.py.)
    board, _ = await board_with_release(hass, proxy)
    assert hass.states.get(ENTITY_ID).attributes["installed_version"] == "1.0.0"
    board.write("app.py", app_source("1.1.0"))  # another client updated it
    board.reboot()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=1))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(ENTITY_ID).attributes["installed_version"] == "1.0.0"
    proxy.relay(board)  # its next advertisement
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(ENTITY_ID).attributes["installed_version"] == "1.1.0"


async def test_v1_board_that_does_not_answer_version(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board(v1=True)
    board.write("app.py", "def handle(line):\n    return None\n")
    board.reboot()
    entry = await setup_board(hass, proxy, board)
    assert entry.runtime_data.data.protocol == 1
    assert entry.runtime_data.data.app_version is None

    board.write("app.py", 'def handle(line):\n    return "VERSION:unknown"\n')
    board.reboot()
    await entity_update(hass)
    assert entry.runtime_data.data.app_version is None


async def test_v1_board_with_nothing_changed(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy, board=make_board(v1=True))
    coordinator = entry.runtime_data
    await coordinator.async_install(None)
    resets = board.resets
    # Same scripts under a new version: nothing to send, only recorded.
    write_release(
        source_folder(hass), {"app.py": app_source("1.1.0")}, {"version": "1.1.1"}
    )
    await coordinator.async_install(None)
    assert board.resets == resets
    assert coordinator.data.record is not None
    assert coordinator.data.record.version == "1.1.1"


async def test_refresh_waits_for_no_one(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    """A look at the board while an install holds the link is skipped."""
    _, entry = await board_with_release(hass, proxy)
    coordinator = entry.runtime_data
    task = hass.async_create_task(coordinator.async_install(None))
    await wait_until_sending(coordinator)
    assert await coordinator.async_refresh_board() is False
    await task


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (RejectedError("BAD_ARGS", "FILE"), "bad_request"),
        (DeviceError("WRITE", "ENOSPC", "FILE"), "board_error"),
        (LinkTooSmallError(60, 20), "link_too_small"),
        (NoReplyError("FILE", 5.0, 3), "link_lost"),
        (BleakError("le-connection-abort-by-local"), "not_reachable"),
        (ConnectFailedError(3, BleakError("timeout")), "not_reachable"),
        (ConnectFailedError(3, None), "not_reachable"),
    ],
)
async def test_error_wording(
    hass: HomeAssistant, proxy: SimProxyScanner, error: Exception, key: str
) -> None:
    _, entry = await board_with_release(hass, proxy)
    release = entry.runtime_data.source.latest
    assert release is not None
    translated = translate(
        error,
        name=entry.title,
        files=release.names,
        version=release.version,
        heard_now=True,
    )
    assert translated.translation_key == key
    assert translated.translation_domain == DOMAIN
    assert "ESP32-OTA-0001" in str(translated)


async def test_diagnostics(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    hass_client: ClientSessionGenerator,
) -> None:
    _, entry = await board_with_release(
        hass,
        proxy,
        board=make_board(config='VERSION = "1.0.0"\nAUTH_KEY = "k"\n'),
        options={CONF_AUTH_KEY: "k"},
    )
    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert data["options"][CONF_AUTH_KEY] == "**REDACTED**"
    assert data["board"]["nonce"] == "**REDACTED**"
    assert data["board"]["auth"] == "hmac"
    assert data["board"]["encodings"] == ["b64", "bin", "hex"]
    assert data["protocol"] == 2
    assert data["installed_version"] == "1.0.0"
    assert data["source"]["releases"]["1.1.0"]["declared"] is True
    assert data["source"]["problem"] is None


async def test_diagnostics_before_the_board_was_read(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    hass_client: ClientSessionGenerator,
) -> None:
    source_folder(hass).mkdir(parents=True)
    (source_folder(hass) / "esp32_ota.json").write_text("[]")
    board = make_board()
    board.stop()
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=board.address,
        data={CONF_ADDRESS: board.address, CONF_NAME: "x"},
        options={CONF_SOURCE_DIR: SOURCE_DIR},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert data["board"] is None
    assert data["available"] is False
    assert "top level must be an object" in data["source"]["problem"]


async def test_a_board_that_cannot_be_read_keeps_what_we_knew(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy)
    board.stop()  # gone, though still heard recently
    assert await entry.runtime_data.async_refresh_board() is False
    state = hass.states.get(ENTITY_ID)
    assert state.attributes["installed_version"] == "1.0.0"
    assert state.attributes["protocol"] == 2


async def test_diagnostics_after_transfers(
    hass: HomeAssistant,
    proxy: SimProxyScanner,
    hass_client: ClientSessionGenerator,
) -> None:
    board = make_board(config='VERSION = "1.0.0"\nAUTH_KEY = "hmac-s3cret"\n')
    options = {CONF_AUTH_KEY: "hmac-s3cret", CONF_TOKEN: "v1-s3cret"}
    _, entry = await board_with_release(hass, proxy, board=board, options=options)
    events = async_capture_events(hass, EVENT_INSTALL)
    await install(hass)
    await offer_release(
        hass, "1.2.0", files={"app.py": app_source("1.2.0", crash=True)}
    )
    await install_fails(hass, "rolled_back")
    await hass.async_block_till_done(wait_background_tasks=True)  # read again

    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert "s3cret" not in json.dumps(data)
    assert data["options"][CONF_TOKEN] == "**REDACTED**"
    assert data["connection"] == f"sim-proxy ({proxy.source})"
    first, second = data["transfers"]
    assert first["result"] == "installed"
    assert first["version"] == "1.1.0"
    assert first["connection"] == f"sim-proxy ({proxy.source})"
    assert first["seconds"] > 0
    assert first["transfer_seconds"] > 0
    # The history says what the events said (retries: the library's count of
    # go-backs and resends, which a board stalling on flash can cause).
    assert first == {k: v for k, v in events[1].data.items() if k in first}
    assert 0 < first["wire_bytes"] < first["bytes"]  # deflated frames
    assert first["connections"] == 2  # the transfer, then the check after reset
    assert second["result"] == "failed"
    assert second["reason"] == "rolled_back"
    assert data["board"]["rollback"]["version"] == "1.2.0"
    assert data["board"]["window"] > 0
    assert data["fleet"]["admitted"] == []

    # The history survives a restart; damaged records are skipped.
    store = board_store(hass, entry.entry_id)
    stored = await store.async_load()
    assert stored is not None
    stored["transfers"] += [{"result": "broken"}, "junk"]
    await store.async_save(stored)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert [r.result for r in entry.runtime_data.installer.history] == [
        "installed",
        "failed",
    ]


async def test_deprecated_usage_reported_by_home_assistant_fails_the_test(
    hass: HomeAssistant,
) -> None:
    """The conftest fixture makes frame.report_usage an error, not a log line."""
    await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(RuntimeError, match="does something deprecated"):
        frame.report_usage("does something deprecated", integration_domain=DOMAIN)


async def test_unavailable_and_back_are_logged_once_each(
    hass: HomeAssistant, proxy: SimProxyScanner, caplog: pytest.LogCaptureFixture
) -> None:
    board = make_board()
    entry = await setup_board(hass, proxy, board)
    coordinator = entry.runtime_data
    info = bluetooth.async_last_service_info(hass, board.address, connectable=True)
    assert info is not None
    caplog.clear()
    for _ in range(2):
        coordinator._async_unavailable(info)
    for _ in range(2):
        coordinator._async_advertisement(info, bluetooth.BluetoothChange.ADVERTISEMENT)
    await hass.async_block_till_done(wait_background_tasks=True)
    messages = [
        r.getMessage() for r in caplog.records if r.name == coordinator.logger.name
    ]
    assert (
        messages.count(
            "ESP32-OTA-0001 is unavailable: no connectable adapter or proxy hears it"
        )
        == 1
    )
    assert (
        messages.count("ESP32-OTA-0001 is back in range of a connectable scanner") == 1
    )
