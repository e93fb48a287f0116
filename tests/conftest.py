"""Fixtures for the Home Assistant tests of esp32_ota."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from esp32_ota_sim.bleak_backend import reset_registry
from homeassistant.helpers import frame

# Import our package before Home Assistant mounts its test config dir, whose
# own `custom_components` package would otherwise shadow this repository's.
from custom_components.esp32_ota.const import DOMAIN
from tests.bluetooth_helpers import (
    SimProxyScanner,
    async_register_sim_proxy,
)
from tests.virtual_clock import (  # noqa: F401  (hooks: the virtual_clock marker)
    pytest_configure,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator

    from homeassistant.core import HomeAssistant

assert DOMAIN == "esp32_ota"

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    hass: HomeAssistant, enable_custom_integrations: None, tmp_path: Path
) -> None:
    """Load custom_components/esp32_ota; a fresh config dir for every test."""
    hass.config.config_dir = str(tmp_path)


@pytest.fixture(autouse=True)
def report_usage_is_an_error() -> Generator[None]:
    """Usage Home Assistant reports as deprecated fails the test (not a log line)."""
    report = frame._report_usage

    def as_error(*args: Any, **kwargs: Any) -> None:
        kwargs["core_integration_behavior"] = frame.ReportBehavior.ERROR
        kwargs["custom_integration_behavior"] = frame.ReportBehavior.ERROR
        report(*args, **kwargs)

    with patch.object(frame, "_report_usage", as_error):
        yield


@pytest.fixture(autouse=True)
def sim_registry() -> Generator[None]:
    """Every test starts with no virtual boards and default proxy slots."""
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
async def proxy(
    hass: HomeAssistant, enable_bluetooth: None
) -> AsyncIterator[SimProxyScanner]:
    """An ESPHome-proxy-like scanner."""
    scanner, cleanup = async_register_sim_proxy(hass)
    yield scanner
    cleanup()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every Home Assistant test of this folder runs on the virtual clock."""
    for item in items:
        if item.path.parent == HERE:
            item.add_marker(pytest.mark.virtual_clock)
