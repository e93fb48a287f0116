"""ota_manager.py as a drop-in for the v1 OTAManager on plain CPython (issue 12).

v1 users test their board code on desktop CPython with only a `machine` stub:
no `micropython` module, no `time.sleep_ms`. Both tests run the firmware in a
subprocess started with `-I -S` (no site-packages, no environment), so
nothing of this project's test set-up (stand-ins, tick shims) is there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from esp32_ota_sim.v1_board import V1_OTA_MANAGER

from .harness import FIRMWARE_DIR

HERE = Path(__file__).resolve().parent
V1_USER = HERE / "v1_user"

TRANSFER = r"""
import binascii, json, sys, time

sys.path[:0] = [sys.argv[1], sys.argv[2]]
assert "micropython" not in sys.modules
try:
    import micropython
except ImportError:
    pass
else:
    raise AssertionError("plain CPython has no micropython module")
assert not hasattr(time, "sleep_ms")

import ota_manager

resets = []
ota_manager.machine.reset = lambda: resets.append(True)
waits = []
time.sleep = waits.append
replies = []
m = ota_manager.OTAManager(replies.append)
data = bytes(range(256)) * 3
crc = "%08x" % (binascii.crc32(data) & 0xFFFFFFFF)
m.handle("OTA:START:main.py:%d:%s:1.0.1:100" % (len(data), crc))
for seq, off in enumerate(range(0, len(data), 100)):
    m.handle("OTA:DATA:%d:%s" % (seq, data[off : off + 100].hex()))
m.handle("OTA:COMMIT")
with open("main.py", "rb") as f:
    installed = f.read() == data
print(json.dumps({
    "replies": replies, "resets": len(resets), "waits": waits,
    "state": m._state, "installed": installed,
    "loaded": sorted(n for n in sys.modules if n.startswith(("ota_", "micropython"))),
}))
"""


def _plain_python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )


def test_full_v1_transfer_on_plain_cpython(tmp_path: Path) -> None:
    """START, DATA..., COMMIT → OTA:OK, then the reset through ota_manager.machine."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    shutil.copy(V1_USER / "v1_machine.py", stubs / "machine.py")
    script = tmp_path / "transfer.py"
    script.write_text(TRANSFER)
    home = tmp_path / "board"
    home.mkdir()
    proc = _plain_python(str(script), str(FIRMWARE_DIR), str(stubs), cwd=home)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replies"] == [
        "OTA:READY",
        *(f"OTA:ACK:{seq}" for seq in range(8)),
        "OTA:OK",
    ]
    assert result["resets"] == 1
    assert result["waits"] == [0.5]  # RESET_DELAY_MS through time.sleep
    assert result["state"] == 0  # IDLE, as v1 leaves it before the reset
    assert result["installed"]
    assert "micropython" not in result["loaded"]


def _run_v1_user_suite(manager_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Outcome of every test of the v1 user suite against one ota_manager."""
    suite = tmp_path / "suite"
    suite.mkdir(parents=True)
    shutil.copy(V1_USER / "v1_suite.py", suite / "test_v1_user.py")
    shutil.copy(V1_USER / "v1_conftest.py", suite / "conftest.py")
    shutil.copy(V1_USER / "v1_machine.py", suite / "machine.py")
    (suite / "pytest.ini").write_text("[pytest]\n")
    pytest_dir = Path(__import__("pytest").__file__).resolve().parents[1]
    runner = (
        "import sys\n"
        # "" (the working directory, the board's flash) as `python -m pytest` has it
        f"sys.path[:0] = ['', {str(suite)!r}, {str(manager_dir)!r}]\n"
        f"sys.path.append({str(pytest_dir)!r})\n"
        "import pytest\n"
        "sys.exit(pytest.main(['-q', '-rA', '-p', 'no:cacheprovider', "
        f"{str(suite)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", runner],
        cwd=suite,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={"PATH": os.environ.get("PATH", ""), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    outcomes = {
        m.group(2): m.group(1)
        for m in re.finditer(r"^(PASSED|FAILED|ERROR) \S+::(\S+)", proc.stdout, re.M)
    }
    assert outcomes, proc.stdout + proc.stderr
    return outcomes


def test_v1_user_suite_passes_on_ours_and_beats_v1(tmp_path: Path) -> None:
    ours = _run_v1_user_suite(FIRMWARE_DIR, tmp_path / "ours")
    v1_dir = tmp_path / "v1"
    v1_dir.mkdir()
    shutil.copy(V1_OTA_MANAGER, v1_dir / "ota_manager.py")
    v1 = _run_v1_user_suite(v1_dir, tmp_path / "v1")
    failed = sorted(name for name, outcome in ours.items() if outcome != "PASSED")
    assert not failed, failed
    assert set(ours) == set(v1)
    v1_passed = sum(outcome == "PASSED" for outcome in v1.values())
    print(
        f"v1 user suite: ours {len(ours)}/{len(ours)}, v1 model {v1_passed}/{len(v1)}"
    )
    print("failing on the v1 model:", sorted(n for n, o in v1.items() if o != "PASSED"))
    assert v1_passed < len(ours)
