"""Typed board replies of protocol v1 and v2.

`parse_reply` maps one received line to one of the reply classes below, or
None for an application line. Anything that starts with `OTA:` but is not a
reply the protocol defines raises ProtocolError; it never raises anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .board_info import BoardInfo, parse_board_info
from .errors import ProtocolError
from .lines import PREFIX, is_ota_line, split_fields

_WORD_RE: Final = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_CRC_RE: Final = re.compile(r"[0-9a-fA-F]{1,8}")
_NONCE_RE: Final = re.compile(r"[0-9a-f]{16}")
_MAX_DETAIL: Final = 200
_MAX_DIGITS: Final = 10
_PREFIX_LEN: Final = len(PREFIX)


@dataclass(frozen=True, slots=True)
class Hello:
    """`OTA:HELLO:<json>`: a v2 board's capabilities."""

    info: BoardInfo
    text: str = ""  # the JSON as the board sent it (for its signature)


@dataclass(frozen=True, slots=True)
class Ready:
    """`OTA:READY` (v1) or `OTA:READY:<offset>:<nonce>` (v2)."""

    offset: int | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """`OTA:REJECT:<reason>`."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ack:
    """`OTA:A:<have>` (v2): the board holds `have` bytes."""

    have: int


@dataclass(frozen=True, slots=True)
class Nak:
    """`OTA:N:<have>` (v2): a chunk went missing, resend from `have`."""

    have: int


@dataclass(frozen=True, slots=True)
class SeqAck:
    """`OTA:ACK:<seq>` (v1)."""

    seq: int


@dataclass(frozen=True, slots=True)
class SeqError:
    """`OTA:ERR:<seq>` (v1): the board expected another chunk."""

    seq: int


@dataclass(frozen=True, slots=True)
class CrcError:
    """`OTA:ERR:CRC:got=<8hex>,exp=<8hex>`."""

    got: str
    expected: str


@dataclass(frozen=True, slots=True)
class SizeError:
    """`OTA:ERR:SIZE:got=<n>,exp=<m>` (v1 COMMIT)."""

    got: int
    expected: int


@dataclass(frozen=True, slots=True)
class BadData:
    """`OTA:ERR:BAD_DATA:<offset>` (v2): the chunk did not decode or overran."""

    offset: int


@dataclass(frozen=True, slots=True)
class Error:
    """Any other `OTA:ERR:<code>[:<detail>]`."""

    code: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Ok:
    """`OTA:OK`."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """`OTA:ABORTED`."""


type Reply = (
    Hello
    | Ready
    | Reject
    | Ack
    | Nak
    | SeqAck
    | SeqError
    | CrcError
    | SizeError
    | BadData
    | Error
    | Ok
    | Aborted
)


# Replies that carry one number: the acknowledgements of data lines.
_PROGRESS: Final[dict[str, type[Ack | Nak | SeqAck]]] = {
    "A": Ack,
    "N": Nak,
    "ACK": SeqAck,
}


def parse_reply(line: str) -> Reply | None:
    """Parse one line; None when it is an application line (not `OTA:`)."""
    if not is_ota_line(line):
        return None
    kind, _, value = line[_PREFIX_LEN:].partition(":")
    progress = _PROGRESS.get(kind)
    if progress is not None and _is_number(value):
        # The reply to nearly every data line: one number, no regex.
        return progress(int(value))
    if line.startswith("OTA:HELLO:"):
        text = line[len("OTA:HELLO:") :]
        return Hello(parse_board_info(text), text)
    fields = split_fields(line)
    kind, args = fields[0], fields[1:]
    if kind == "READY":
        if not args:
            return Ready()
        if len(args) == 2 and _NONCE_RE.fullmatch(args[1]):
            return Ready(_number(args[0], line), args[1])
    elif kind == "REJECT":
        if len(args) == 1 and _WORD_RE.fullmatch(args[0]):
            return Reject(args[0])
    elif kind in _PROGRESS and len(args) == 1:
        raise ProtocolError("bad number in reply", line)  # a good one went above
    elif kind == "ERR" and args:
        return _parse_error(args, line)
    elif kind == "OK" and not args:
        return Ok()
    elif kind == "ABORTED" and not args:
        return Aborted()
    raise ProtocolError("unexpected reply", line)


def _parse_error(args: list[str], line: str) -> Reply:
    code, rest = args[0], args[1:]
    if _is_number(code) and not rest:
        return SeqError(int(code))
    if not _WORD_RE.fullmatch(code):
        raise ProtocolError("unexpected error reply", line)
    if code == "CRC":
        got, exp = _pair(rest, line)
        if _CRC_RE.fullmatch(got) and _CRC_RE.fullmatch(exp):
            return CrcError(got.lower().zfill(8), exp.lower().zfill(8))
        raise ProtocolError("bad CRC error reply", line)
    if code == "SIZE":
        got, exp = _pair(rest, line)
        return SizeError(_number(got, line), _number(exp, line))
    if code == "BAD_DATA" and len(rest) == 1:
        return BadData(_number(rest[0], line))
    detail = ":".join(rest)
    if len(detail) > _MAX_DETAIL or not detail.isprintable():
        raise ProtocolError("bad error detail", line)
    return Error(code, detail)


def _pair(rest: list[str], line: str) -> tuple[str, str]:
    """`got=<a>,exp=<b>` → (a, b)."""
    if len(rest) == 1:
        match = re.fullmatch(r"got=([^,]*),exp=(.*)", rest[0])
        if match:
            return match.group(1), match.group(2)
    raise ProtocolError("bad got/exp error reply", line)


def _number(text: str, line: str) -> int:
    if not _is_number(text):
        raise ProtocolError("bad number in reply", line)
    return int(text)


def _is_number(text: str) -> bool:
    """1 to 10 ASCII digits: a number every reply may carry."""
    return text.isdigit() and text.isascii() and len(text) <= _MAX_DIGITS
