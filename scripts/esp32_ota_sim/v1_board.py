"""The one model of a board in the field that only speaks protocol v1.

`V1OnlyBoard` is a `VirtualBoard` whose `ota_manager.py` is
`v1_firmware/ota_manager.py`, an OTA engine written from the v1 contract
(one file per session, hex DATA lines in order, COMMIT renames and resets;
HELLO and every v2 command get `OTA:ERR:UNKNOWN_CMD`). The rest of the
board (boot guard, NUS peripheral, main.py) is device_firmware's, which
already hands every `OTA:` line to `OTAManager.handle` and calls `abort()`
on a disconnect, as the v1 wiring does; without ota_advert.py, which v1
firmware never had, so it advertises its name and no OTA state. Tests that
need the engine alone load `V1_OTA_MANAGER`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .board import VirtualBoard

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["V1_OTA_MANAGER", "V1OnlyBoard", "v1_files"]

V1_OTA_MANAGER = Path(__file__).resolve().parent / "v1_firmware" / "ota_manager.py"


def v1_files(files: Mapping[str, bytes | str] | None = None) -> dict[str, bytes | str]:
    """`files` plus the v1 engine as ota_manager.py (for a board's flash)."""
    return {**(files or {}), "ota_manager.py": V1_OTA_MANAGER.read_bytes()}


class V1OnlyBoard(VirtualBoard):
    """A VirtualBoard running the v1 OTA engine instead of device_firmware's."""

    def __init__(
        self,
        address: str = "24:0A:C4:00:00:01",
        *,
        files: Mapping[str, bytes | str] | None = None,
        **options: Any,
    ) -> None:
        """Like VirtualBoard; `ota_manager.py` is always the v1 engine."""
        boot = options.pop("boot", True)
        super().__init__(address, files=v1_files(files), boot=False, **options)
        if self.fs.exists("ota_advert.py"):
            self.fs.remove("ota_advert.py")
        if boot:
            self.boot()
