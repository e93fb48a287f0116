"""Fixtures of the v1 user suite (see suite_v1_user.py)."""

import os
import sys

import pytest

BOARD_MODULES = ("config",)


@pytest.fixture(autouse=True)
def board_dir(tmp_path, monkeypatch):
    """Each test on an empty board filesystem, with the reset log cleared."""
    import machine

    monkeypatch.chdir(tmp_path)
    machine.reset_calls.clear()
    for name in BOARD_MODULES:
        sys.modules.pop(name, None)
    yield tmp_path
    for name in BOARD_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def tight_flash(monkeypatch):
    """A filesystem with one free 4 KB block."""
    monkeypatch.setattr(
        os, "statvfs", lambda path: (4096, 4096, 100, 1, 1, 0, 0, 0, 0, 255)
    )


@pytest.fixture
def no_reset(monkeypatch):
    """machine.reset() returns, as users patch it to run two transfers."""
    import ota_manager

    monkeypatch.setattr(ota_manager.machine, "reset", lambda: None)
