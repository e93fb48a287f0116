"""nus_ota stands alone: no Home Assistant, relative imports only (issue 14)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

LIBRARY_ROOT = Path(__file__).parents[2] / "custom_components" / "esp32_ota"
PACKAGE = LIBRARY_ROOT / "nus_ota"

PROBE = """
import sys
import nus_ota, nus_ota.cli
assert nus_ota.__file__.startswith(sys.argv[1]), nus_ota.__file__
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(",".join(loaded))
"""


def test_imports_as_a_top_level_package_without_home_assistant(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(LIBRARY_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACKAGE)],
        cwd=tmp_path,  # not the repository: only PYTHONPATH finds nus_ota
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = set(done.stdout.strip().split(","))
    assert "nus_ota" in loaded
    assert "bleak" in loaded
    assert "homeassistant" not in loaded
    assert "custom_components" not in loaded


def test_the_command_line_runs_as_a_module(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(LIBRARY_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "nus_ota", "push", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "--address" in done.stdout
    assert "--token" in done.stdout


def test_relative_imports_only() -> None:
    """Inside the package every import of its own modules is relative, and
    nothing names Home Assistant or the integration around it."""
    own = {path.stem for path in PACKAGE.glob("*.py")}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in {"homeassistant", "custom_components", "nus_ota"}
                assert top not in own, f"{path.name}: absolute import of {name}"
