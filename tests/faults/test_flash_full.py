"""A flash that fills up during an install (LittleFS answers ENOSPC, errno 28).

The size check before a file leaves a little room for the staged copy, the
state file, the journal and the backup; with a little less free space, one of
those writes fails. Whichever it is, the install must end in a clear error,
the board must keep running with its old files, and once space is freed the
next install must finish.
"""

from __future__ import annotations

import asyncio

import pytest

from custom_components.esp32_ota.nus_ota import (
    DeviceError,
    InstallResult,
    RejectedError,
)
from tests.faults.rig import FaultLedger, bundle, fault_board, install_twice

BLOCK = 4096


@pytest.mark.parametrize("spare_blocks", range(8))
def test_a_full_flash_fails_cleanly_and_recovers(
    faults: FaultLedger, spare_blocks: int
) -> None:
    board = fault_board("fast")
    old = bundle(board)
    new = {**old, "app.py": old["app.py"] + b"# padding\n" * 900}  # 3 blocks
    filler = board.fs.free_blocks() - spare_blocks
    board.fs.write_file("filler.bin", b"f" * BLOCK * filler)
    assert board.fs.free_blocks() == spare_blocks

    async def between() -> str:
        await asyncio.sleep(5)
        outcome = faults.check_board(board, old, new)
        board.fs.remove("filler.bin")
        return outcome

    first, outcome, _second = install_twice(faults, board, old, new, between)
    if isinstance(first, InstallResult):
        assert outcome == "new"
    else:
        faults.add("flash full")
        assert isinstance(first, (RejectedError, DeviceError)), first
        assert "No space" in str(first) or "NOSPACE" in str(first), first
        assert outcome == "old"
