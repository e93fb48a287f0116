"""The device page: firmware version, diagnostic sensors, and the install log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from homeassistant.components import bluetooth
from homeassistant.const import STATE_UNAVAILABLE, EntityCategory
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

from custom_components.esp32_ota.const import DOMAIN
from tests.common import (
    BOARD_ADDRESS,
    app_source,
    board_with_release,
    install,
    install_fails,
    offer_release,
)

if TYPE_CHECKING:
    import pytest
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner

FREE = "sensor.esp32_ota_0001_free_flash"
RESULT = "sensor.esp32_ota_0001_last_update_result"
ENDED = "sensor.esp32_ota_0001_last_update"
PATH = "sensor.esp32_ota_0001_update_path"
RSSI = "sensor.esp32_ota_0001_signal_strength"


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_device_page_shows_firmware_and_the_last_update(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    board, entry = await board_with_release(hass, proxy)
    coordinator = entry.runtime_data
    info = coordinator.data.board_info
    assert info is not None
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, BOARD_ADDRESS)})
    assert device is not None
    assert device.sw_version == info.firmware

    registry = er.async_get(hass)
    for entity_id in (FREE, RESULT, ENDED, PATH, RSSI):
        entity = registry.async_get(entity_id)
        assert entity is not None, entity_id
        assert entity.entity_category is EntityCategory.DIAGNOSTIC
        assert entity.device_id == device.id
    rssi = registry.async_get(RSSI)
    assert rssi is not None
    assert rssi.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get(RSSI) is None

    assert float(state_of(hass, FREE)) == info.free / 1024  # KiB
    assert state_of(hass, RESULT) == "unknown"  # nothing installed yet

    before = dt_util.utcnow()
    await install(hass)
    record = coordinator.installer.history[-1]
    assert state_of(hass, RESULT) == "installed"
    assert state_of(hass, PATH) == record.connection == "sim-proxy (AA:BB:CC:DD:EE:01)"
    ended = dt_util.parse_datetime(state_of(hass, ENDED))
    assert ended is not None
    assert ended >= before.replace(microsecond=0)

    # A failure shows as the last result; the board away, its values go.
    await offer_release(
        hass, "1.2.0", files={"app.py": app_source("1.2.0", crash=True)}
    )
    await install_fails(hass, "rolled_back")
    assert state_of(hass, RESULT) == "failed"
    service_info = bluetooth.async_last_service_info(
        hass, board.address, connectable=True
    )
    assert service_info is not None
    coordinator._async_unavailable(service_info)
    await hass.async_block_till_done()
    assert state_of(hass, FREE) == STATE_UNAVAILABLE
    assert state_of(hass, RESULT) == "failed"


async def test_signal_strength_once_enabled(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    er.async_get(hass).async_get_or_create(
        "sensor", DOMAIN, f"{BOARD_ADDRESS}_rssi", suggested_object_id=RSSI[7:]
    )
    await board_with_release(hass, proxy)
    assert state_of(hass, RSSI) == "-60"


def _installer_info(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The INFO lines the installer logged since the last clear."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "custom_components.esp32_ota.installer"
        and r.levelno == logging.INFO
    ]


async def test_one_info_line_per_install_start_finish_and_failure(
    hass: HomeAssistant, proxy: SimProxyScanner, caplog: pytest.LogCaptureFixture
) -> None:
    await board_with_release(hass, proxy)
    caplog.set_level(logging.INFO, logger="custom_components.esp32_ota")
    caplog.clear()
    await install(hass)
    lines = _installer_info(caplog)
    assert len(lines) == 2
    assert (
        lines[0] == "ESP32-OTA-0001: installing 1.1.0 (app.py), asked by update_entity"
    )
    assert lines[1].startswith(
        "ESP32-OTA-0001: installed 1.1.0: installed; protocol 2, "
    )
    assert "bytes in" in lines[1]
    assert lines[1].endswith("through sim-proxy (AA:BB:CC:DD:EE:01)")

    await offer_release(
        hass, "1.2.0", files={"app.py": app_source("1.2.0", crash=True)}
    )
    caplog.clear()
    await install_fails(hass, "rolled_back")
    failed = _installer_info(caplog)
    assert len(failed) == 2
    assert failed[1].startswith("ESP32-OTA-0001: failed to install 1.2.0: ")
    assert "rejected version 1.2.0" in failed[1]
