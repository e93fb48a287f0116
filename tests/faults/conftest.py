"""Fault-injection suite: every test records what it injected in the ledger.

At the end of the session the totals go to build/faults.json and one
summary line is printed: faults injected by kind, boards checked, boards
left with damaged or mixed files (must be 0).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.faults.rig import LEDGER, FaultLedger

if TYPE_CHECKING:
    from pathlib import Path

    from _pytest.terminal import TerminalReporter

FAULTS_JSON = "build/faults.json"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Home Assistant only for the tests that ask for `hass`.

    Client-level fault tests run on their own virtual-time loop; the HA ones
    get the custom integration and a fresh config dir as in tests/conftest.py.
    """
    if "hass" in request.fixturenames:
        request.getfixturevalue("enable_custom_integrations")
        request.getfixturevalue("hass").config.config_dir = str(tmp_path)


@pytest.fixture
def faults() -> FaultLedger:
    """The session's ledger of injected faults and checked boards."""
    return LEDGER


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the totals when any fault test ran."""
    if not LEDGER.tests:
        return
    path = session.config.rootpath / FAULTS_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LEDGER.summary(), indent=2, sort_keys=True) + "\n")


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """One line with the figures."""
    if LEDGER.tests:
        terminalreporter.write_line(LEDGER.line())
