"""Fixtures of the OTA client tests: no Home Assistant, a firmware filesystem."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.firmware.harness import cpython_board

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the HA-wide autouse fixture: the client library needs no HA."""


@pytest.fixture
def board_fs(tmp_path: Path) -> Iterator[Path]:
    """The firmware modules importable, tmp_path as the board's filesystem."""
    with cpython_board(tmp_path):
        yield tmp_path
