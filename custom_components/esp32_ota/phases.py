"""The phases of an install, and where each sits on the progress bar.

The transfer takes most of the bar; what follows it (the board applying the
files, restarting, being checked, running on trial) has its own share, so
the bar never sits at 100 % before the install is done. The entity shows
the phase as its `install_phase` attribute for cards, and the percentage as
its `update_percentage` (None while waiting for a connection slot: the
frontend shows a bar without a figure).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Phase(StrEnum):
    """What an install is doing now."""

    QUEUED = "queued"  # waiting for a connection slot
    CONNECTING = "connecting"
    TRANSFER = "transfer"
    APPLYING = "applying"  # all data acknowledged: the board commits
    RESTARTING = "restarting"  # the board resets into the new scripts
    CHECKING = "checking"  # reconnected: does it hold what was sent?
    TRIAL = "trial"  # waiting for its program to confirm the new version


# Where each phase starts, in percent; the transfer fills up to APPLYING's.
_START: Final = {
    Phase.CONNECTING: 0.0,
    Phase.TRANSFER: 0.0,
    Phase.APPLYING: 80.0,
    Phase.RESTARTING: 85.0,
    Phase.CHECKING: 92.0,
    Phase.TRIAL: 96.0,
}
_TRANSFER_SHARE: Final = _START[Phase.APPLYING]


def percentage(phase: Phase, acknowledged: int = 0, total: int = 0) -> float | None:
    """Return the bar's percentage in a phase (the transfer's by its bytes)."""
    if phase is Phase.QUEUED:
        return None
    if phase is Phase.TRANSFER and total:
        return round(_TRANSFER_SHARE * acknowledged / total, 1)
    return _START[phase]
