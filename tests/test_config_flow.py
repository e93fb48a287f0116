"""Config flow: Bluetooth discovery, manual pick, options; every step and error.

Option and form field names are spelled out here, not taken from const.py:
they are what users' entries have stored and what strings.json translates, so
renaming one must fail a test rather than lose everyone's settings.
"""

# ruff: noqa: ASYNC240

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from bluetooth_data_tools import monotonic_time_coarse
from esp32_ota_sim.bleak_backend import register_board
from esp32_ota_sim.board import VirtualBoard
from homeassistant.components import bluetooth
from homeassistant.config_entries import (
    SOURCE_BLUETOOTH,
    SOURCE_USER,
    ConfigEntryDisabler,
)
from homeassistant.const import CONF_ADDRESS
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esp32_ota.config_flow import default_source_dir
from custom_components.esp32_ota.const import DOMAIN, NUS_SERVICE_UUID

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigFlowResult
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

pytestmark = pytest.mark.usefixtures("enable_bluetooth")

BOARD = "24:0A:C4:00:00:01"
OTHER_NUS = "24:0A:C4:00:00:77"
UNRELATED = "24:0A:C4:00:00:99"


def advertise(
    scanner: SimProxyScanner,
    address: str,
    name: str | None,
    *,
    uuids: list[str] | None = None,
) -> None:
    """Report an advertisement of any device through the scanner."""
    scanner._async_on_advertisement(
        address,
        -60,
        name,
        uuids or [],
        {},
        {},
        None,
        {"address_type": 0},
        monotonic_time_coarse(),
    )


def known_entry(address: str) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=address,
        data={CONF_ADDRESS: address, "name": "known"},
        options={"source_dir": "esp32_ota/known"},
        disabled_by=ConfigEntryDisabler.USER,
    )


def board_info(
    hass: HomeAssistant, address: str
) -> bluetooth.BluetoothServiceInfoBleak:
    info = bluetooth.async_last_service_info(hass, address, connectable=True)
    assert info is not None
    return info


async def start_flow(
    hass: HomeAssistant,
    source: str,
    info: bluetooth.BluetoothServiceInfoBleak | None = None,
) -> ConfigFlowResult:
    """Start our config flow as `source` starts it (the user, a discovery)."""
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": source}, data=info
    )


async def test_discovery_creates_an_entry_with_a_default_folder(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board = VirtualBoard(BOARD)
    proxy.inject(board)
    await hass.async_block_till_done(wait_background_tasks=True)

    # The manifest's matchers started a discovery flow.
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    flow = flows[0]
    assert flow["step_id"] == "bluetooth_confirm"
    assert flow["context"]["title_placeholders"] == {"name": "ESP32-OTA-0001"}

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "ESP32-OTA-0001"
    assert result["data"] == {CONF_ADDRESS: BOARD, "name": "ESP32-OTA-0001"}
    assert result["options"] == {"source_dir": "esp32_ota/esp32_ota_0001"}
    assert result["result"].unique_id == BOARD
    assert Path(hass.config.path("esp32_ota/esp32_ota_0001")).is_dir()
    await hass.async_block_till_done()


async def test_discovery_of_a_configured_board_changes_nothing(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=BOARD,
        data={CONF_ADDRESS: BOARD, "name": "old name"},
        options={"source_dir": "esp32_ota/x"},
    )
    entry.add_to_hass(hass)
    advertise(proxy, BOARD, "ESP32-OTA-NEW", uuids=[NUS_SERVICE_UUID])
    result = await start_flow(hass, SOURCE_BLUETOOTH, board_info(hass, BOARD))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # The address is the unique id; the name the user knows stays.
    assert entry.data == {CONF_ADDRESS: BOARD, "name": "old name"}
    assert entry.title == "Mock Title"


async def test_second_discovery_of_the_same_board_is_refused(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    advertise(proxy, BOARD, "ESP32-OTA-0001", uuids=[NUS_SERVICE_UUID])
    info = board_info(hass, BOARD)
    first = await start_flow(hass, SOURCE_BLUETOOTH, info)
    assert first["type"] is FlowResultType.FORM
    second = await start_flow(hass, SOURCE_BLUETOOTH, info)
    assert second["type"] is FlowResultType.ABORT
    assert second["reason"] == "already_in_progress"


async def test_user_lists_our_boards_first_then_other_nus_devices(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    # A board of ours whose firmware advertises a custom name.
    register_board(VirtualBoard(OTHER_NUS))
    advertise(proxy, OTHER_NUS, "Custom board", uuids=[NUS_SERVICE_UUID])
    advertise(proxy, BOARD, "ESP32-OTA-Kitchen")
    advertise(
        proxy, UNRELATED, "Thermometer", uuids=["0000181a-0000-1000-8000-00805f9b34fb"]
    )
    # Known boards are not offered again.
    known_entry("24:0A:C4:00:00:55").add_to_hass(hass)
    advertise(proxy, "24:0A:C4:00:00:55", "ESP32-OTA-0055")

    result = await start_flow(hass, SOURCE_USER)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    choices = result["data_schema"].schema[CONF_ADDRESS].container
    assert list(choices) == [BOARD, OTHER_NUS]
    assert choices[BOARD] == f"ESP32-OTA-Kitchen ({BOARD})"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ADDRESS: OTHER_NUS}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Custom board"
    assert result["options"] == {"source_dir": "esp32_ota/custom_board_0077"}
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_user_with_nothing_in_range(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    advertise(proxy, UNRELATED, "Thermometer")
    result = await start_flow(hass, SOURCE_USER)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_devices_found"


async def test_user_when_every_board_in_range_is_already_added(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    advertise(proxy, UNRELATED, "Thermometer")
    for address in ("24:0A:C4:00:00:55", "24:0A:C4:00:00:56"):
        known_entry(address).add_to_hass(hass)
        advertise(proxy, address, "ESP32-OTA-" + address[-2:])
    result = await start_flow(hass, SOURCE_USER)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "all_boards_added"
    assert result["description_placeholders"] == {"count": "2"}


async def test_user_picks_a_board_configured_meanwhile(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    advertise(proxy, BOARD, "ESP32-OTA-0001")
    result = await start_flow(hass, SOURCE_USER)
    known_entry(BOARD).add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ADDRESS: BOARD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.parametrize(
    ("name", "address", "folder"),
    [
        ("ESP32-OTA-0001", "24:0A:C4:00:00:01", "esp32_ota/esp32_ota_0001"),
        ("Garden", "24:0A:C4:00:AB:CD", "esp32_ota/garden_abcd"),
        ("", "24:0A:C4:00:AB:CD", "esp32_ota/board_abcd"),
    ],
)
def test_default_source_dir(name: str, address: str, folder: str) -> None:
    assert default_source_dir(name, address) == folder


@pytest.fixture
def entry(hass: HomeAssistant) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=BOARD,
        title="ESP32-OTA-0001",
        data={CONF_ADDRESS: BOARD, "name": "ESP32-OTA-0001"},
        options={"source_dir": "esp32_ota/esp32_ota_0001"},
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def entry_set_up(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set the board's entry up (saving its options then reloads it)."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def submit_options(
    hass: HomeAssistant, entry: MockConfigEntry, options: dict[str, Any]
) -> ConfigFlowResult:
    """Open the entry's options flow and submit `options` at once."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(result["flow_id"], options)


def form_defaults(result: ConfigFlowResult) -> dict[str, Any]:
    """The default of every field of a form that has one."""
    schema = result["data_schema"].schema
    return {str(key): key.default() for key in schema if callable(key.default)}


@pytest.mark.usefixtures("entry_set_up")
async def test_options_set_folder_key_and_token(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    # An entry with only its folder: the form shows what the board runs with.
    defaults = form_defaults(result)
    assert (defaults["confirm_trial"], defaults["probe_minutes"]) == (True, 60)
    settings = entry.runtime_data.settings
    assert (settings.confirm_trial, settings.probe_interval) == (
        True,
        timedelta(minutes=60),
    )

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "source_dir": " shared/boards ",
            "auth_key": "s3cret key",
            "token": "tok",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "source_dir": "shared/boards",
        "auth_key": "s3cret key",
        "token": "tok",
        "confirm_trial": True,
    }
    assert Path(hass.config.path("shared/boards")).is_dir()
    await hass.async_block_till_done()
    # The entry reloaded with the new folder.
    assert entry.runtime_data.folder.folder == Path(hass.config.path("shared/boards"))
    settings = entry.runtime_data.settings
    assert (settings.auth_key, settings.token) == ("s3cret key", "tok")
    assert "s3cret" not in repr(settings)  # no secret in any log of the settings
    assert "tok'" not in repr(settings)

    # Clearing the secrets removes them; an absolute folder is kept as is.
    absolute = str(Path(hass.config.path("elsewhere")))
    result = await submit_options(hass, entry, {"source_dir": absolute})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {"source_dir": absolute, "confirm_trial": True}
    await hass.async_block_till_done()


async def test_options_errors(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    Path(hass.config.path("a_file")).write_text("not a folder")
    Path(hass.config.path("blocked")).write_text("a file where a folder would go")
    result = await hass.config_entries.options.async_init(entry.entry_id)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"source_dir": "  ", "token": "a:b"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {
        "source_dir": "folder_required",
        "token": "invalid_token",
    }

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"source_dir": "a_file", "token": "tøken"}
    )
    assert result["errors"] == {
        "source_dir": "not_a_folder",
        "token": "invalid_token",
    }

    # issue 15: a carriage return inside passed, then failed at install time
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"source_dir": "fine", "token": "sec\rret"}
    )
    assert result["errors"] == {"token": "invalid_token"}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"source_dir": "blocked/inside"}
    )
    assert result["errors"] == {"source_dir": "cannot_create_folder"}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"source_dir": "fine"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {"source_dir": "fine", "confirm_trial": True}


@pytest.mark.usefixtures("entry_set_up")
async def test_options_transfer_settings(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await submit_options(
        hass,
        entry,
        {
            "source_dir": "esp32_ota/esp32_ota_0001",
            "confirm_trial": False,
            "window": 4,
            "encoding": "hex",
            "probe_minutes": 30,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "source_dir": "esp32_ota/esp32_ota_0001",
        "confirm_trial": False,
        "window": 4,
        "encoding": "hex",
        "probe_minutes": 30,
    }
    await hass.async_block_till_done()
    settings = entry.runtime_data.settings
    assert (settings.window, settings.encoding) == (4, "hex")
    assert settings.confirm_trial is False
    assert settings.probe_interval == timedelta(minutes=30)
    assert entry.runtime_data.update_interval == timedelta(minutes=30)

    # Back to what the board prefers: the overrides go.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    defaults = form_defaults(result)
    assert defaults["encoding"] == "hex"
    assert defaults["confirm_trial"] is False
    assert defaults["probe_minutes"] == 30
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "source_dir": "esp32_ota/esp32_ota_0001",
            "confirm_trial": True,
            "window": 0,
            "encoding": "auto",
            "probe_minutes": 60,
        },
    )
    assert entry.options == {
        "source_dir": "esp32_ota/esp32_ota_0001",
        "confirm_trial": True,
    }
    await hass.async_block_till_done()
