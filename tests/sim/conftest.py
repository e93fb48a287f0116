"""Fixtures for the simulator tests."""

from __future__ import annotations

import pytest

from tests.bluetooth_helpers import sim_registry  # noqa: F401 - a fixture


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Most simulator tests need no Home Assistant (overrides tests/conftest.py)."""


@pytest.fixture(autouse=True)
def _fresh_sim_registry(sim_registry: None) -> None:  # noqa: F811
    """Every test starts with no registered boards and default slots."""
