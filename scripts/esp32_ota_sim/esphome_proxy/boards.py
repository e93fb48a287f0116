"""The boards behind a virtual proxy, made from a short spec ("v2,v1").

- "v2": the real device_firmware, as our users flash it.
- "v1": a board in the field that only speaks protocol v1
  (`esp32_ota_sim.v1_board.V1OnlyBoard`): HELLO and the v2 commands get
  "OTA:ERR:UNKNOWN_CMD", so the client falls back to v1.
"""

from __future__ import annotations

from esp32_ota_sim.board import VirtualBoard
from esp32_ota_sim.fleet import board_address
from esp32_ota_sim.v1_board import V1OnlyBoard

__all__ = ["BOARD_KINDS", "V1OnlyBoard", "make_boards"]

BOARD_KINDS = ("v2", "v1")


def make_boards(
    spec: str, *, config: str = 'VERSION = "1.0.0"\n'
) -> list[VirtualBoard]:
    """Boards for a comma-separated spec of kinds; call inside the event loop."""
    boards: list[VirtualBoard] = []
    for index, raw in enumerate(spec.split(","), start=1):
        kind = raw.strip().lower()
        if kind not in BOARD_KINDS:
            raise ValueError(
                f"unknown board kind {raw!r}; use {', '.join(BOARD_KINDS)}"
            )
        cls = V1OnlyBoard if kind == "v1" else VirtualBoard
        boards.append(cls(board_address(index), files={"config.py": config}))
    return boards
