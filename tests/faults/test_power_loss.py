"""Power cuts and resets at every step of a real install driven by the client.

The flash (memfs) loses power at every single filesystem operation of a
two-file install in turn, journal and bundle commit included; separately
the board resets after every line it receives. After the board is back it
holds all old or all new files, byte for byte (v1, file by file: each file
old or new), and a following install finishes.

The board runs device_firmware in both cases; "v1" is the client speaking
protocol v1 to it (what the v1 desktop CLI and app do). A board in the field
with the v1 engine has no recovery at all: a cut between its two COMMIT
renames leaves it without the file, which no client can prevent.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.clock import run_virtual

from custom_components.esp32_ota.nus_ota import InstallResult, OTAError
from tests.faults.rig import (
    DATA_FRAME,
    DEFLATED_FRAME,
    Recorder,
    bundle,
    fault_board,
    frame_file_bytes,
    install_twice,
    release,
    run_install,
    tap,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from esp32_ota_sim.board import VirtualBoard

    from tests.faults.rig import FaultLedger


def _clean_run(protocol: int) -> tuple[int, int]:
    """Filesystem operations and received lines of a fault-free install."""
    board = fault_board("fast")
    new = release(board, size=3000)
    start = board.fs.ops
    lines = 0

    def counting(_link: object, _data: bytes, deliver: Callable[[], None]) -> None:
        nonlocal lines
        lines += 1
        deliver()

    tap(board, counting)
    result = run_virtual(run_install(Recorder(board), new, protocol=protocol))
    assert isinstance(result, InstallResult), result
    assert result.protocol == protocol
    return board.fs.ops - start, lines


def _survive(
    faults: FaultLedger, protocol: int, inject: Any
) -> tuple[str, VirtualBoard]:
    """Install with `inject(board)` armed; check the board; finish the install."""
    board = fault_board("fast")
    old = bundle(board)
    new = release(board, size=3000)
    inject(board)

    async def between() -> str:
        await asyncio.sleep(5)  # any reset in progress ends
        return faults.check_board(board, old, new, bundle=protocol == 2)

    first, outcome, _second = install_twice(
        faults, board, old, new, between, protocol=protocol
    )
    assert isinstance(first, (InstallResult, OTAError)), first
    return outcome, board


@pytest.mark.parametrize("protocol", [2, 1])
def test_power_cut_at_every_filesystem_operation(
    faults: FaultLedger, protocol: int
) -> None:
    ops, _ = _clean_run(protocol)
    assert ops > 20
    outcomes = set()
    for cut in range(1, ops + 1):
        outcome, board = _survive(
            faults, protocol, lambda board, cut=cut: board.power_loss_at(cut)
        )
        assert board.fs.power_losses == 1, cut
        faults.add("power loss")
        outcomes.add(outcome)
    assert "new" in outcomes  # the client got over most cuts by itself
    if protocol == 2:
        # Some cuts end the first install with the old files, none mixes them.
        assert outcomes == {"old", "new"}


@pytest.mark.parametrize("protocol", [2, 1])
def test_reset_after_every_received_line(faults: FaultLedger, protocol: int) -> None:
    _, lines = _clean_run(protocol)
    assert lines > 10

    def reset_at(count: int, board: VirtualBoard) -> None:
        seen = 0

        def resetting(_link: object, _data: bytes, deliver: Callable[[], None]) -> None:
            nonlocal seen
            seen += 1
            deliver()
            if seen == count:
                faults.add("board reset")
                board.reboot()  # the line just received dies with the RAM

        tap(board, resetting)

    outcomes = set()
    for count in range(1, lines + 1):
        outcome, board = _survive(
            faults, protocol, lambda board, count=count: reset_at(count, board)
        )
        assert any(r.outcome == "reboot" for r in board.restarts), count
        outcomes.add(outcome)
    assert "old" in outcomes or "new" in outcomes


@pytest.mark.parametrize("deflate", [False, True])
def test_a_power_cut_mid_file_resumes_from_the_last_flush(
    faults: FaultLedger, deflate: bool
) -> None:
    """The staged file is flushed every 4 KB, so a power cut keeps what came
    before the last flush: the next connection resumes there instead of at 0.
    (The flash loses everything written since the last flush, as LittleFS does.)
    `deflate`: a board that offers deflated frames, and a file that compresses."""
    board = fault_board("fast", deflate=deflate)
    old = bundle(board)
    new = release(board, 30_000 if deflate else 24_000, source=deflate)
    sent = 0

    def cut_after_16_kb(
        _link: object, data: bytes, deliver: Callable[[], None]
    ) -> None:
        nonlocal sent
        deliver()
        if sent < 16_000 and frame_file_bytes(data):
            assert data.startswith(DEFLATED_FRAME if deflate else DATA_FRAME)
            sent += frame_file_bytes(data)
            if sent >= 16_000:
                faults.add("power loss")
                board.power_loss_at(1)

    tap(board, cut_after_16_kb)

    async def scenario() -> list[Any]:
        outcomes = [await run_install(Recorder(board), new)]
        if not isinstance(outcomes[0], InstallResult):
            await asyncio.sleep(5)
            outcomes.append(await run_install(Recorder(board), new))
        return outcomes

    outcomes = run_virtual(scenario())
    assert board.fs.power_losses == 1
    result = outcomes[-1]
    assert isinstance(result, InstallResult), outcomes
    resumed = sum(o.bytes_resumed for o in outcomes if isinstance(o, InstallResult))
    # app.py comes after main.py; 16 KB of lines in, at least 8 KB of app.py
    # had been flushed (every 4 KB) before the cut.
    assert resumed >= 8192, outcomes
    assert faults.check_board(board, old, new) == "new"
