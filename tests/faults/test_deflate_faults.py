"""Faults on the deflated path: boards that offer `deflate`, files that compress.

The release is the board's own app with real source appended as comments
(rig.release with `source`), so the client sends deflated frames (0xFE). Lost writes and
notifications, a link that drops at any deflated frame (a power cut in the
middle of a deflated file: test_power_loss.py): every install ends with the
new files, byte for byte, and a resumed transfer continues from what the
board kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from esp32_ota_sim.clock import run_virtual

from custom_components.esp32_ota.nus_ota import InstallResult, probe
from custom_components.esp32_ota.nus_ota.lines import DEFLATE_HEAD
from tests.faults.rig import (
    DATA_FRAME,
    DEFLATED_FRAME,
    Recorder,
    bundle,
    drop_link,
    fault_board,
    frame_file_bytes,
    install_twice,
    profile,
    release,
    run_install,
    staged_bytes,
    tap,
    untap,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from esp32_ota_sim.board import VirtualBoard
    from esp32_ota_sim.link import LinkProfile

    from tests.faults.rig import FaultLedger


def _board(link: LinkProfile | str) -> VirtualBoard:
    board = fault_board(link, deflate=True)
    info = run_virtual(probe(Recorder(board)))
    assert info is not None
    assert info.deflate is not None  # the board offers deflated frames
    return board


def _count_deflated(board: VirtualBoard) -> list[int]:
    """File bytes of every deflated frame the board receives (a tap)."""
    counts: list[int] = []

    def counting(_link: object, data: bytes, deliver: Callable[[], None]) -> None:
        if data.startswith(DEFLATED_FRAME):
            counts.append(frame_file_bytes(data))
        deliver()

    tap(board, counting)
    return counts


@pytest.mark.parametrize(
    ("knob", "rate", "seed"),
    [("write_loss", 0.03, 1), ("notify_loss", 0.05, 2), ("notify_dup", 0.05, 3)],
)
def test_deflated_install_through_a_faulty_link(
    faults: FaultLedger, knob: str, rate: float, seed: int
) -> None:
    board = _board(profile("proxy", seed=seed, **{knob: rate}))
    old = bundle(board)
    new = release(board, 40_000, source=True)
    counts = _count_deflated(board)
    connect = Recorder(board)

    result = run_virtual(run_install(connect, new))

    assert connect.count_faults(faults) > 0  # the knob really injected faults
    assert isinstance(result, InstallResult), result
    assert faults.check_board(board, old, new) == "new"
    assert len(counts) > 50, len(counts)  # the data went as deflated frames
    assert sum(counts) / len(counts) > 300  # more file bytes a frame than plain
    if knob == "write_loss":
        assert result.retries > 0  # a lost frame is resent, never skipped


@pytest.mark.parametrize("seed", range(4))
def test_link_drops_at_a_deflated_frame_then_the_next_install_resumes(
    faults: FaultLedger, seed: int
) -> None:
    board = _board("proxy")
    old = bundle(board)
    new = release(board, 20_000, source=True)
    at = 5 + seed * 13  # the deflated frame after which the link drops
    seen = 0

    def dropping(_link: object, data: bytes, deliver: Callable[[], None]) -> None:
        nonlocal seen
        deliver()
        if data.startswith(DEFLATED_FRAME):
            seen += 1
            if seen == at:
                faults.add("disconnect")
                drop_link(board)

    tap(board, dropping)

    async def between() -> int:
        untap(board)
        return await staged_bytes(board)

    first, held, second = install_twice(
        faults, board, old, new, between, first_options={"session_attempts": 1}
    )

    assert seen >= at
    assert not isinstance(first, InstallResult), first  # the drop ended it
    assert held > 0
    assert second.bytes_resumed == held  # READY's offset: what the board kept


def _refuse_deflated(
    board: VirtualBoard, faults: FaultLedger, *, drop_at_plain: int | None = None
) -> list[bytes]:
    """Make every deflated stream the board gets undecodable (a reserved block
    type, as a `deflate` that differs from ours would see it); the link
    drops once after the `drop_at_plain`-th plain frame. Return the marks of
    the data frames, in the order they arrive."""
    receive = board.receive
    marks: list[bytes] = []

    def undecodable(link: object, data: bytes, _deliver: object) -> None:
        if data.startswith(DEFLATED_FRAME):
            data = data[:DEFLATE_HEAD] + b"\x07" + data[DEFLATE_HEAD + 1 :]
        frame = data[:1] in (DATA_FRAME, DEFLATED_FRAME)
        if frame:
            marks.append(data[:1])
        receive(link, data)  # type: ignore[arg-type]
        if (
            frame
            and data[:1] == DATA_FRAME
            and marks.count(DATA_FRAME) == drop_at_plain
        ):
            faults.add("disconnect")
            drop_link(board)

    tap(board, undecodable)
    return marks


@pytest.mark.parametrize(
    ("drop_at_plain", "connections"),
    [(None, 2), (20, 3)],
    ids=["one connection", "a dropped link"],
)
def test_a_board_that_cannot_decode_our_streams_gets_the_files_plain(
    faults: FaultLedger, drop_at_plain: int | None, connections: int
) -> None:
    """The board answers BAD_DATA to a deflated frame and keeps the transfer.

    The client sends the rest of both files as plain frames, which every board
    with binary frames takes; without that no install could end, and the way
    out would be a USB cable. The refusal holds for the whole install: after
    a dropped link the next connection resumes plain too (deflating again
    would cost a window of refused frames at every reconnect).
    """
    board = _board("proxy")
    old = bundle(board)
    new = release(board, 20_000, source=True)
    marks = _refuse_deflated(board, faults, drop_at_plain=drop_at_plain)

    result = run_virtual(run_install(Recorder(board), new))

    assert isinstance(result, InstallResult), result
    assert faults.check_board(board, old, new) == "new"
    deflated = marks.count(DEFLATED_FRAME)
    assert deflated > 0  # the first file went deflated until the refusal came
    assert marks[:deflated] == [DEFLATED_FRAME] * deflated  # none after a plain one
    # The session(s) that sent the files, then the check after the reset.
    assert result.connections == connections
