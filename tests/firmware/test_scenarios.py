"""Every firmware scenario, on CPython and on real MicroPython."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .harness import (
    RUNTIMES,
    Outcome,
    run_on_cpython,
    run_on_micropython,
    scenario_tests,
)

if TYPE_CHECKING:
    from pathlib import Path

_micropython_results: dict[tuple[str, bool], dict[str, Outcome]] = {}


def _micropython_outcome(module: str, test: str) -> Outcome:
    mpy = test.startswith("test_mpy_")
    key = (module, mpy)
    if key not in _micropython_results:
        tests = [
            t
            for m, t in scenario_tests()
            if m == module and t.startswith("test_mpy_") == mpy
        ]
        _micropython_results[key] = run_on_micropython(module, tests, mpy=mpy)
    return _micropython_results[key][test]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("module", "test"), scenario_tests(), ids=[f"{m}.{t}" for m, t in scenario_tests()]
)
def test_firmware(
    module: str, test: str, runtime: str, tmp_path: Path, record_property: Any
) -> None:
    """Run one firmware scenario on one runtime."""
    if runtime == "cpython":
        outcome = run_on_cpython(module, test, tmp_path)
    else:
        outcome = _micropython_outcome(module, test)
        if outcome.output:
            print(outcome.output)
        assert outcome.ok, outcome.error
    if outcome.value is not None:
        record_property("figures", outcome.value)
        print(f"{module}.{test} on {runtime}: {outcome.value}")
