"""Scripts that do not compile never reach a board.

Before it connects, an install compiles every .py file it is about to offer
with CPython's compile(). A syntax error is refused with the file, the line
and the message, so the board keeps running what it has instead of failing a
trial boot and rolling back. MicroPython's syntax is CPython's (a subset of
its library, not of its grammar), so what fails here would fail on the
board. mpy-cross is not used: see device_firmware/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import install_error

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.core import HomeAssistant


@dataclass(frozen=True, slots=True)
class ScriptError:
    """Where and why a script does not compile."""

    file: str
    line: int | None
    message: str

    @property
    def where(self) -> str:
        """Say "app.py line 3", or just the file when the line is unknown."""
        return self.file if self.line is None else f"{self.file} line {self.line}"


def first_script_error(contents: Mapping[str, bytes]) -> ScriptError | None:
    """Compile every .py file (sorted by name); the first error, or None.

    CPU only, no I/O; run it in an executor all the same (large files).
    """
    for name in sorted(contents):
        if not name.endswith(".py"):
            continue
        try:
            compile(contents[name], name, "exec", dont_inherit=True)
        except SyntaxError as err:  # includes IndentationError, bad encodings
            return ScriptError(name, err.lineno, err.msg)
        except ValueError as err:  # a NUL byte
            return ScriptError(name, None, str(err))
    return None


async def async_check_scripts(
    hass: HomeAssistant, board_name: str, contents: Mapping[str, bytes]
) -> None:
    """Refuse (script_error) a release with a script that does not compile."""
    error = await hass.async_add_executor_job(first_script_error, contents)
    if error is not None:
        raise install_error(
            "script_error", name=board_name, where=error.where, error=error.message
        )
