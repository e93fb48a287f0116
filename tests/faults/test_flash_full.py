"""A flash that fills up during an install (LittleFS answers ENOSPC, errno 28).

The size check before a file leaves a little room for the staged copy, the
state file, the journal and the backup; with a little less free space, one of
those writes fails. Whichever it is, the install must end in a clear error,
the board must keep running with its old files, and once space is freed the
next install must finish.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from esp32_ota_sim.clock import run_virtual

from custom_components.esp32_ota.nus_ota import (
    DeviceError,
    InstallResult,
    RejectedError,
)
from tests.faults.rig import FaultLedger, Recorder, bundle, fault_board, run_install

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

    async def scenario() -> tuple[Any, str, Any]:
        first = await run_install(Recorder(board), new)
        await asyncio.sleep(5)
        outcome = faults.check_board(board, old, new)
        board.fs.remove("filler.bin")
        return first, outcome, await run_install(Recorder(board), new)

    first, outcome, second = run_virtual(scenario())
    if isinstance(first, InstallResult):
        assert outcome == "new"
    else:
        faults.add("flash full")
        assert isinstance(first, (RejectedError, DeviceError)), first
        assert "No space" in str(first) or "NOSPACE" in str(first), first
        assert outcome == "old"
    assert isinstance(second, InstallResult), second
    assert faults.check_board(board, old, new) == "new"
