"""scripts/install_firmware, without a board: dry runs, a stand-in mpremote."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install_firmware"
FIRMWARE = ROOT / "device_firmware"
LIBRARY = sorted(
    p.name
    for p in FIRMWARE.glob("*.py")
    if p.name not in {"boot.py", "main.py", "app.py", "config.py"}
)

FAKE_MPREMOTE = """
import json, sys
with open(sys.argv[1], "w") as f:
    json.dump(sys.argv[2:], f)
sys.exit(int(sys.argv[2]) if sys.argv[2].isdigit() else 0)
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def copies(stdout: str) -> dict[str, str]:
    """{board file: local file} from the printed plan."""
    found = {}
    for line in stdout.splitlines():
        if "  ->  :" in line:
            local, remote = line.split("  ->  :")
            found[remote.strip()] = local.strip()
    return found


def printed_command(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    return shlex.split(lines[lines.index("mpremote command:") + 1])


def board_config(build: Path) -> dict[str, object]:
    """The generated config.py, evaluated."""
    values: dict[str, object] = {}
    tree = ast.parse((build / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign):
            (target,) = node.targets
            assert isinstance(target, ast.Name)
            values[target.id] = ast.literal_eval(node.value)
    return values


def test_dry_run_lists_every_file_and_the_command(tmp_path: Path) -> None:
    result = run("--dry-run", "--build-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    plan = copies(result.stdout)
    assert sorted(plan) == sorted(p.name for p in FIRMWARE.glob("*.py"))
    for name, local in plan.items():
        expected = tmp_path / name if name == "config.py" else FIRMWARE / name
        assert Path(local) == expected
    cmd = printed_command(result.stdout)
    assert cmd[cmd.index("connect") + 1] == "auto"
    assert cmd[-1] == "reset"
    pairs = [(cmd[i + 2], cmd[i + 3]) for i, w in enumerate(cmd) if w == "fs"]
    assert pairs == [(local, ":" + name) for name, local in plan.items()]
    # the .mpy twins of the copied modules are removed first (x.py wins over x.mpy)
    script = cmd[cmd.index("exec") + 1]
    for name in LIBRARY:
        assert name.replace(".py", ".mpy") in script
    assert "main.mpy" not in script
    assert "allowed over the air: main.py, app.py" in result.stdout
    assert "auth: none" in result.stdout
    assert board_config(tmp_path)["ALLOWED_FILES"] == ("main.py", "app.py")
    assert not list(tmp_path.glob("*.mpy"))


def test_board_settings_go_into_config(tmp_path: Path) -> None:
    result = run(
        "--dry-run",
        "--build-dir",
        str(tmp_path),
        "--port",
        "/dev/ttyUSB7",
        "--name",
        "ESP32-OTA-garden",
        "--allow",
        "main.py,app.py",
        "sensors.py",
        "--auth-key",
        "correct horse battery",
        "--token",
        "old-client-token",
        "--no-reset",
    )
    assert result.returncode == 0, result.stderr
    values = board_config(tmp_path)
    firmware_config = (FIRMWARE / "config.py").read_text()
    assert (tmp_path / "config.py").read_text().startswith(firmware_config.rstrip())
    assert values["NAME"] == "ESP32-OTA-garden"
    assert values["ALLOWED_FILES"] == ("main.py", "app.py", "sensors.py")
    assert values["AUTH_KEY"] == "correct horse battery"
    assert values["AUTH_TOKEN"] == "old-client-token"
    cmd = printed_command(result.stdout)
    assert cmd[cmd.index("connect") + 1] == "/dev/ttyUSB7"
    assert cmd[-1] == ":" + list(copies(result.stdout))[-1]  # no reset after it
    assert "auth: hmac key" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", ""], "1 to 29 bytes"),
        (["--name", "x" * 30], "1 to 29 bytes"),
        (["--name", "tab\there"], "printable"),
        (["--allow", "../main.py"], "not a plain file name"),
        (["--allow", "lib/x.py"], "not a plain file name"),
        (["--allow", "main.py,,app.py"], "not a plain file name"),
        (["--allow", "main.py", "../app.py"], "not a plain file name"),
        (["--allow", "a:b.py"], "unusable file name"),
        # every module of the OTA firmware, a new one included
        *((["--allow", name], "cannot be updated over the air") for name in LIBRARY),
        (["--allow", "app.py,app.py"], "listed twice"),
        (["--allow", "app.py", "app.py"], "listed twice"),
        (["--auth-key", "short"], "at least 8"),
        (["--auth-key", "with:colon:inside"], "no ':'"),
        (["--token", "tok\nen-long-enough"], "no ':'"),
        (["--auth-key", "same-secret", "--token", "same-secret"], "do not reuse"),
    ],
)
def test_bad_arguments_are_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run("--dry-run", "--build-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "config.py").exists()


def test_mpy_compiles_library_modules(tmp_path: Path) -> None:
    result = run(
        "--dry-run", "--mpy", "--build-dir", str(tmp_path), "--allow", "app.py"
    )
    assert result.returncode == 0, result.stderr
    plan = copies(result.stdout)
    for name in LIBRARY:
        mpy = name.replace(".py", ".mpy")
        assert Path(plan[mpy]) == tmp_path / mpy
        data = (tmp_path / mpy).read_bytes()
        assert data[:2] == b"M\x06"  # mpy format 6: MicroPython 1.22 and later
        assert name not in plan
    # boot.py and main.py run only as source; OTA replaces app.py with source
    for name in ("boot.py", "main.py", "app.py", "config.py"):
        assert name in plan
    assert Path(plan["main.py"]) == FIRMWARE / "main.py"
    script = printed_command(result.stdout)
    removed = script[script.index("exec") + 1]
    for name in LIBRARY:
        assert repr(name) in removed  # an old x.py would shadow x.mpy
    assert "'app.mpy'" in removed


def test_allowed_modules_stay_source_with_mpy(tmp_path: Path) -> None:
    result = run(
        "--dry-run", "--mpy", "--build-dir", str(tmp_path), "--allow", "main.py"
    )
    assert result.returncode == 0, result.stderr
    plan = copies(result.stdout)
    assert "app.mpy" in plan  # not updatable over the air: compiled
    assert "app.py" not in plan


@pytest.mark.parametrize("exit_code", [0, 3])
def test_runs_mpremote_and_reports_its_result(tmp_path: Path, exit_code: int) -> None:
    fake = tmp_path / "fake_mpremote.py"
    fake.write_text(FAKE_MPREMOTE)
    record = tmp_path / "argv.json"
    mpremote = f"{sys.executable} {fake} {record}"
    if exit_code:
        mpremote += f" {exit_code}"
    build = tmp_path / "build"
    result = run("--build-dir", str(build), "--mpremote", mpremote, "--port", "COM3")
    assert result.returncode == exit_code
    argv = json.loads(record.read_text())
    assert argv == printed_command(result.stdout)[3:]  # after python, fake, record
    assert argv[argv.index("connect") + 1] == "COM3"
    assert argv.count("cp") == len(copies(result.stdout))
    assert "copying to COM3" in result.stdout
