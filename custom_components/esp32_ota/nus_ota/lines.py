r"""Lines on the wire: reassembling notifications and formatting commands.

The board sends ASCII lines ending in `\\n`; a long line (HELLO) may span
several notifications, and every line starts a notification of its own.
The client sends exactly one line per write. Fields are separated by `:`
and may not contain `:` or `\\n`.
"""

from __future__ import annotations

import binascii
import struct
from typing import TYPE_CHECKING, Final

from .errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable

PREFIX: Final = "OTA:"
# HELLO with a full inventory is the longest reply; a few KB is plenty, and a
# board that sends more is broken or hostile.
DEFAULT_MAX_LINE: Final = 8192
# A binary data frame: 0xFF, payload length (u16 LE), offset (u32 LE), payload.
FRAME_MARK: Final = 0xFF
_FRAME_HEAD: Final = struct.Struct("<BHI")
FRAME_HEAD: Final = _FRAME_HEAD.size  # 7
FRAME_MAX_PAYLOAD: Final = 0xFFFF
# A deflated data frame: 0xFE, payload length (u16 LE), offset (u32 LE), the
# count of file bytes it expands to (u16 LE), one raw deflate stream.
DEFLATE_MARK: Final = 0xFE
_DEFLATE_HEAD: Final = struct.Struct("<BHIH")
DEFLATE_HEAD: Final = _DEFLATE_HEAD.size  # 9


class LineAssembler:
    """Turns notification payloads into complete lines, with a hard size limit.

    A line longer than `max_line` is dropped up to its newline and counted in
    `overflows`, so a hostile board can neither grow memory nor be mistaken
    for a shorter line; the assembler stays usable.

    A proxy may lose a notification. Every board line starts a notification
    of its own, so a notification that starts with `OTA:` while an `OTA:`
    line is still open means that line lost its end: the open part is
    dropped and counted in `damaged`, never glued onto the next reply. (A
    lost middle part cannot be seen here; the reply's parser refuses what
    is left, see `OTAClient`.) An application line is never cut this way:
    its text is the application's and may hold `OTA:` anywhere.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        """Max_line counts bytes without the newline."""
        self.max_line = max_line
        self.overflows = 0
        self.damaged = 0
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes | bytearray) -> list[str]:
        """Add one notification; return the lines it completed (no newline)."""
        end = data.find(b"\n")
        if (
            0 <= end == len(data) - 1
            and end <= self.max_line
            and not self._buf
            and not self._discarding
        ):
            # The usual notification: one whole reply (an acknowledgement),
            # and no part of an earlier line kept or being dropped.
            return [data[:end].decode("ascii", "replace").rstrip("\r")]
        lines: list[str] = []
        if self._buf.startswith(b"OTA:") and data.startswith(b"OTA:"):
            self.damaged += 1
            self._buf.clear()
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._discarding:
                if len(self._buf) + len(piece) > self.max_line:
                    self._buf.clear()
                    self._discarding = True
                    self.overflows += 1
                else:
                    self._buf += piece
            if end < 0:
                return lines
            if not self._discarding:
                lines.append(self._buf.decode("ascii", "replace").rstrip("\r"))
            self._buf.clear()
            self._discarding = False
            start = end + 1

    def reset(self) -> None:
        """Forget a partial line (new connection)."""
        self._buf.clear()
        self._discarding = False


def is_field(value: str) -> bool:
    """Tell whether value can be one field of a line (ASCII, no `:`, no line break)."""
    return value.isascii() and not any(c in value for c in ":\r\n")


def check_field(value: str) -> str:
    """Return value if it can be a field of a line, else raise ValueError.

    The message never quotes the value: a field may be a secret (a token).
    """
    if not is_field(value):
        raise ValueError(
            "a field of a protocol line may not contain ':', line breaks"
            " or non-ASCII characters"
        )
    return value


def valid_token(token: str) -> bool:
    """Tell whether a clear-text token (v1 START, v2 `token` boards) can be sent.

    It must travel as a field of a line (`is_field`), be printable, and keep
    no space at either end, since a v1 board strips every line it receives.
    Configuration forms call this; the line builders refuse what it refuses.
    """
    return (
        bool(token)
        and is_field(token)
        and token.isprintable()
        and token == token.strip()
    )


def command(*fields: str) -> bytes:
    r"""Format one client line: `OTA:<field>:<field>...\\n` as bytes."""
    return (PREFIX + ":".join(check_field(f) for f in fields) + "\n").encode("ascii")


def encode_payload(chunk: bytes | memoryview, encoding: str) -> bytes:
    """Encode a data chunk as `b64` (standard, padded) or `hex` (lower case).

    The result is ASCII bytes of the encoding's alphabet, which never holds
    `:` or a line break, so data lines need no field check.
    """
    if encoding == "b64":
        return binascii.b2a_base64(chunk, newline=False)
    if encoding == "hex":
        return binascii.hexlify(chunk)
    raise ValueError(f"unknown encoding {encoding!r}")


def encoded_len(size: int, encoding: str) -> int:
    """Length of the encoded form of `size` bytes."""
    if encoding == "b64":
        return 4 * ((size + 2) // 3)
    if encoding == "hex":
        return 2 * size
    raise ValueError(f"unknown encoding {encoding!r}")


def largest_chunk(limit: int, prefix_len: int, encoding: str) -> int:
    """Largest chunk whose line (prefix, payload, newline) fits in `limit` bytes.

    For b64 the result is a multiple of 3 so no chunk but the last is padded.
    Returns 0 when not even one byte fits.
    """
    room = limit - prefix_len - 1
    if room <= 0:
        return 0
    if encoding == "b64":
        return (room // 4) * 3
    if encoding == "hex":
        return room // 2
    raise ValueError(f"unknown encoding {encoding!r}")


def data_line_v2(offset: int, payload: bytes) -> bytes:
    """`OTA:D:<offset>:<payload>`; payload as `encode_payload` made it."""
    return b"OTA:D:%d:%b\n" % (offset, payload)


def data_frame(offset: int, chunk: bytes | memoryview) -> bytes:
    """Build the binary data frame of `chunk` at `offset`: one whole BLE write."""
    return _FRAME_HEAD.pack(FRAME_MARK, len(chunk), offset) + chunk


def deflate_frame(offset: int, count: int, stream: bytes) -> bytes:
    """Build the deflated frame of `count` file bytes at `offset`: one BLE write."""
    return _DEFLATE_HEAD.pack(DEFLATE_MARK, len(stream), offset, count) + stream


def data_line_v1(seq: int, chunk: bytes | memoryview) -> bytes:
    """`OTA:DATA:<seq>:<hex>`."""
    return b"OTA:DATA:%d:%b\n" % (seq, binascii.hexlify(chunk))


def join_files(names: Iterable[str]) -> str:
    """File list of APPLY: names joined by commas."""
    joined = ",".join(names)
    if not joined:
        raise ValueError("APPLY needs at least one file")
    return joined


def is_ota_line(line: str) -> bool:
    """Tell OTA traffic apart; other lines belong to the board's application."""
    return line.startswith(PREFIX)


def split_fields(line: str) -> list[str]:
    """Fields after the `OTA:` prefix; raises ProtocolError on a non-OTA line."""
    if not is_ota_line(line):
        raise ProtocolError("not an OTA line", line)
    return line[len(PREFIX) :].split(":")
