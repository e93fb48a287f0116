"""What one install did: kept for diagnostics, fired as events, returned by actions.

Nothing here holds a secret: the records carry file names, sizes, timings and
the connection path, never a key, token or nonce.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

# One event type; its `type` says which step: started, finished or failed.
EVENT_INSTALL: Final = "esp32_ota_install"
EVENT_STARTED: Final = "started"
EVENT_FINISHED: Final = "finished"
EVENT_FAILED: Final = "failed"

# `result` of a finished install.
RESULT_INSTALLED: Final = "installed"  # files went to the board
RESULT_UNCHANGED: Final = "unchanged"  # the board already had every file
RESULT_FAILED: Final = "failed"

# Who asked for the install.
TRIGGER_ENTITY: Final = "update_entity"
TRIGGER_ACTION: Final = "action"

# How many transfers a board remembers (diagnostics).
HISTORY_LENGTH: Final = 10


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """The outcome of one install on one board."""

    trigger: str
    version: str
    files: tuple[str, ...]
    started: str  # ISO time
    result: str = RESULT_FAILED
    files_sent: tuple[str, ...] = ()
    protocol: int | None = None
    bytes: int = 0  # bytes of the files sent
    wire_bytes: int = 0  # bytes on the link, resends included
    seconds: float = 0.0  # the whole install, queueing excluded
    queued_seconds: float = 0.0
    transfer_seconds: float = 0.0
    retries: int = 0
    connections: int = 0
    trial: bool = False  # the board still runs the version on trial
    connection: str | None = None  # the adapter or proxy (its name and source)
    reason: str | None = None  # translation key of the failure
    error: str | None = None  # the failure, worded for the user

    def as_dict(self) -> dict[str, Any]:
        """Plain data for events, responses, storage and diagnostics."""
        data = asdict(self)
        data["files"] = list(self.files)
        data["files_sent"] = list(self.files_sent)
        data["seconds"] = round(self.seconds, 2)
        data["queued_seconds"] = round(self.queued_seconds, 2)
        data["transfer_seconds"] = round(self.transfer_seconds, 2)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> TransferRecord | None:
        """Read a stored record; None when it is damaged."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                **{
                    **data,
                    "files": tuple(data["files"]),
                    "files_sent": tuple(data.get("files_sent", ())),
                }
            )
        except (KeyError, TypeError):
            return None
