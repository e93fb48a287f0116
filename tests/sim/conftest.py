"""Fixtures for the simulator tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Most simulator tests need no Home Assistant (overrides tests/conftest.py)."""
