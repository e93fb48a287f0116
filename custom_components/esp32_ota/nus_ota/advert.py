"""The OTA state a board advertises (firmware ota_advert.py), decoded.

Service data under the 16-bit UUID 0xFB55: the protocol version, flags (on
trial, rolled back, staged data present) and a 32-bit hash of the installed
bundle: one line per installed file in name order,
`<name>:<size>:<crc>:<version or empty>` and a newline, CRC-32 over all of them.
`bundle_hash` computes it from a HELLO inventory (or one predicted for a
release), so a client tells which bundle a board runs without connecting.

Anyone can advertise anything: the state says what to look at (a
connection, a repair to confirm), never what to install.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .board_info import InstalledFile

SERVICE_UUID: Final = "0000fb55-0000-1000-8000-00805f9b34fb"
_ON_TRIAL: Final = 1
_ROLLED_BACK: Final = 2
_STAGED: Final = 4
_LENGTH: Final = 6


@dataclass(frozen=True, slots=True)
class AdvertisedState:
    """What one advertisement says about a board's OTA state."""

    proto: int
    bundle: int
    on_trial: bool
    rolled_back: bool
    staged: bool


def parse_advertised_state(
    service_data: Mapping[str, bytes],
) -> AdvertisedState | None:
    """Return the OTA state in service data; None when absent or too short.

    Longer data is accepted (a later firmware may add bytes at the end), and
    unknown flag bits are ignored.
    """
    data = service_data.get(SERVICE_UUID)
    if data is None or len(data) < _LENGTH:
        return None
    flags = data[1]
    return AdvertisedState(
        proto=data[0],
        bundle=int.from_bytes(data[2:6], "big"),
        on_trial=bool(flags & _ON_TRIAL),
        rolled_back=bool(flags & _ROLLED_BACK),
        staged=bool(flags & _STAGED),
    )


def bundle_hash(files: Mapping[str, InstalledFile | None]) -> int:
    """Return the bundle hash a board advertises for an inventory (HELLO `files`)."""
    crc = 0
    for name in sorted(files):
        file = files[name]
        if file is None:
            continue
        line = f"{name}:{file.size}:{file.crc}:{file.version or ''}\n"
        crc = zlib.crc32(line.encode(), crc)
    return crc
