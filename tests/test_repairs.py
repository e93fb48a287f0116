"""Repair issues (a rolled-back update, v1 firmware) and reauthentication."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.esp32_ota.const import (
    CONF_AUTH_KEY,
    CONF_CONFIRM_TRIAL,
    CONF_TOKEN,
    DOMAIN,
)
from tests.common import (
    app_source,
    board_with_release,
    install,
    install_fails,
    make_board,
    offer_release,
    setup_board,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from tests.bluetooth_helpers import SimProxyScanner


def issue(
    hass: HomeAssistant, kind: str, entry: MockConfigEntry
) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


async def start_fix(
    hass: HomeAssistant, kind: str, entry: MockConfigEntry
) -> dict[str, Any]:
    """Open the fix flow of an issue, as the Repairs dashboard does."""
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    manager = hass.data[REPAIRS_DOMAIN]["flow_manager"]
    result: dict[str, Any] = await manager.async_init(
        DOMAIN, data={"issue_id": f"{kind}_{entry.entry_id}"}
    )
    return result


async def fix(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> Any:
    return await hass.data[REPAIRS_DOMAIN]["flow_manager"].async_configure(
        flow_id, data
    )


async def test_rolled_back_update(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    _, entry = await board_with_release(
        hass, proxy, files={"app.py": app_source("1.1.0", crash=True)}
    )
    await install_fails(hass, "rolled_back")
    found = issue(hass, "rolled_back", entry)
    assert found is not None
    assert found.is_fixable
    assert found.severity is ir.IssueSeverity.ERROR
    assert found.translation_placeholders is not None
    assert "rejected version 1.1.0" in found.translation_placeholders["error"]

    # Acknowledged in its fix flow...
    result = await start_fix(hass, "rolled_back", entry)
    assert result["step_id"] == "confirm"
    result = await fix(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert issue(hass, "rolled_back", entry) is None

    # ...or gone after the next install that works.
    await install_fails(hass, "rolled_back")
    assert issue(hass, "rolled_back", entry) is not None
    await offer_release(hass, "1.2.0")
    await install(hass)
    assert issue(hass, "rolled_back", entry) is None


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
        and flow["context"]["entry_id"] == entry.entry_id
    ]


async def test_refused_credentials_start_reauthentication(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(
        hass,
        proxy,
        board=make_board(config='VERSION = "1.0.0"\nAUTH_KEY = "right key"\n'),
        options={CONF_AUTH_KEY: "old", CONF_CONFIRM_TRIAL: True},
    )
    await install_fails(hass, "auth_failed")
    await hass.async_block_till_done()
    flows = reauth_flows(hass, entry)
    assert len(flows) == 1
    assert flows[0]["step_id"] == "reauth_confirm"
    # No repair issue of ours: Home Assistant's reauthentication is the fix.
    assert [key for key in ir.async_get(hass).issues if key[0] == DOMAIN] == []

    flow_id = flows[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_TOKEN: "a:b"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_token"}
    assert result["description_placeholders"] == {"name": "ESP32-OTA-0001"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_AUTH_KEY: "right key"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done(wait_background_tasks=True)
    # The other options stay; the entry reloaded with the key.
    assert entry.options[CONF_AUTH_KEY] == "right key"
    assert entry.options[CONF_CONFIRM_TRIAL] is True
    assert CONF_TOKEN not in entry.options
    assert entry.runtime_data.settings.auth_key == "right key"
    await install(hass)
    assert board.read("app.py") == app_source("1.1.0").encode()


async def test_missing_credentials_start_reauthentication_once(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board(config='VERSION = "1.0.0"\nAUTH_KEY = "k"\n')
    _, entry = await board_with_release(hass, proxy, board=board)
    await install_fails(hass, "auth_required")
    await install_fails(hass, "auth_required")
    await hass.async_block_till_done()
    assert len(reauth_flows(hass, entry)) == 1


async def test_v1_firmware(hass: HomeAssistant, proxy: SimProxyScanner) -> None:
    board = make_board(v1=True)
    entry = await setup_board(hass, proxy, board)
    found = issue(hass, "v1_firmware", entry)
    assert found is not None
    assert not found.is_fixable
    assert found.learn_more_url is not None
    assert found.translation_placeholders == {"name": "ESP32-OTA-0001"}

    # The firmware was installed over USB: the issue goes with the next look.
    board.write("ota_manager.py", make_board().read("ota_manager.py"))
    board.reboot()
    assert await entry.runtime_data.async_refresh_board() is True
    assert entry.runtime_data.data.protocol == 2
    assert issue(hass, "v1_firmware", entry) is None


async def test_an_issue_without_its_board_gets_a_plain_fix_flow(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = make_board()
    entry = await setup_board(hass, proxy, board)
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"answered_like_v1_{entry.entry_id}",
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="answered_like_v1",
        translation_placeholders={"name": "x", "error": "y"},
        data={"entry_id": "gone"},
    )
    result = await start_fix(hass, "answered_like_v1", entry)
    assert result["step_id"] == "confirm"
