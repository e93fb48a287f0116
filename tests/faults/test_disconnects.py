"""The link drops at a random point of the handshake, the transfer or the commit.

The first install (one session, no reconnect) ends in an error or, when the
drop came after the board took the commit, in the new files; the board holds
all old or all new files either way. The next install finishes: v2 resumes
what the board kept, v1 starts the file again.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import pytest

from custom_components.esp32_ota.nus_ota import InstallResult, OTAError
from tests.faults.rig import (
    DATA_FRAME,
    bundle,
    drop_link,
    fault_board,
    install_twice,
    release,
    staged_bytes,
    tap,
    untap,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from esp32_ota_sim.board import VirtualBoard

    from tests.faults.rig import FaultLedger

# Lines that begin each phase, and how many of them an install sends at least.
PHASES: dict[str, tuple[tuple[bytes, ...], int]] = {
    "handshake": ((b"OTA:HELLO", b"OTA:FILE:", b"OTA:START:"), 3),
    "transfer": ((b"OTA:D:", b"OTA:DATA:", DATA_FRAME), 40),
    "commit": ((b"OTA:APPLY:", b"OTA:COMMIT"), 1),
}
SEEDS = range(6)


def _drop_at(
    board: VirtualBoard, prefixes: tuple[bytes, ...], count: int, *, before: bool
) -> list[bytes]:
    """Drop the link at the `count`-th line starting with one of `prefixes`."""
    seen = 0
    dropped: list[bytes] = []

    def dropping(_link: object, data: bytes, deliver: Callable[[], None]) -> None:
        nonlocal seen
        hit = not dropped and data.startswith(prefixes)
        if hit:
            seen += 1
            hit = seen == count
        if not (hit and before):
            deliver()
        if hit:
            dropped.append(data)
            drop_link(board)

    tap(board, dropping)
    return dropped


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("protocol", [2, 1])
def test_disconnect_then_the_next_install_finishes(
    faults: FaultLedger, protocol: int, phase: str, seed: int
) -> None:
    rng = random.Random(f"{protocol}-{phase}-{seed}")
    prefixes, most = PHASES[phase]
    if protocol == 1 and phase == "commit":
        most = 2  # one COMMIT per file
    board = fault_board("proxy", v1_only=protocol == 1)
    old = bundle(board)
    new = release(board, size=8000)
    dropped = _drop_at(board, prefixes, rng.randint(1, most), before=rng.random() < 0.5)
    atomic = protocol == 2

    async def between() -> int:
        await asyncio.sleep(5)  # a board that took the commit resets meanwhile
        faults.check_board(board, old, new, bundle=atomic)
        untap(board)
        return await staged_bytes(board) if protocol == 2 else 0

    first, held, second = install_twice(
        faults,
        board,
        old,
        new,
        between,
        first_options={"session_attempts": 1, "verify": False},
    )

    assert dropped, "the disconnect was injected"
    faults.add("disconnect", len(dropped))
    assert isinstance(first, (InstallResult, OTAError)), first
    if held:
        assert second.bytes_resumed > 0, (held, second)
    if protocol == 1:
        assert second.bytes_resumed == 0
