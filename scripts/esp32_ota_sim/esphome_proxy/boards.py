"""The boards behind a virtual proxy, made from a short spec ("v2,v1").

- "v2": the real device_firmware, as our users flash it.
- "v1": a board in the field that only speaks protocol v1. It runs the same
  real firmware files, but its OTA engine is narrowed after every boot to
  the v1 commands (START, DATA, COMMIT, ABORT): HELLO and the v2 commands
  get "OTA:ERR:UNKNOWN_CMD", exactly what a v1-only engine answers, so the
  client falls back to v1. device_firmware is not changed for this.
"""

from __future__ import annotations

from typing import Any

from esp32_ota_sim.board import VirtualBoard

__all__ = ["BOARD_KINDS", "V1OnlyBoard", "make_boards"]

V1_COMMANDS = frozenset({"START", "DATA", "COMMIT", "ABORT"})
BOARD_KINDS = ("v2", "v1")


class V1OnlyBoard(VirtualBoard):
    """A VirtualBoard whose OTA engine answers only protocol v1."""

    def boot(self) -> None:
        """Boot as usual, then narrow the running OTA engine to v1."""
        super().boot()
        ota = getattr(self.peripheral, "ota", None)
        if ota is not None:
            _narrow_to_v1(ota)


def _narrow_to_v1(ota: Any) -> None:
    handle = ota.handle

    def handle_v1(line: Any) -> None:
        text = line if isinstance(line, str) else bytes(line).decode(errors="replace")
        fields = text.strip().split(":")
        command = fields[1] if len(fields) > 1 and fields[0] == "OTA" else ""
        if command not in V1_COMMANDS:
            ota._send("OTA:ERR:UNKNOWN_CMD")
            return
        handle(line)

    ota.handle = handle_v1


def board_address(index: int) -> str:
    """Addresses 24:0A:C4:00:00:01, :02, ... (Espressif's OUI)."""
    return f"24:0A:C4:00:00:{index:02X}"


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
