"""Exceptions raised by the OTA client.

Every failure the board or the link can cause has its own class, so the
Home Assistant glue can map each one to a translated message without parsing
strings. All of them derive from `OTAError`.

An error that carries details is a small dataclass: its fields are what a
caller reads (`err.file`, `err.code`) and its `_template` (str.format over the
fields) is its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, ClassVar, Final

# What `from .errors import *` gives, the package's __init__ among others.
__all__ = [
    "AnsweredLikeV1Error",
    "AuthRequiredError",
    "ConnectFailedError",
    "ContentRefusedError",
    "CrcMismatchError",
    "DeviceError",
    "DisconnectedError",
    "InvalidBoardInfoError",
    "InvalidTokenError",
    "LineTooLongError",
    "LinkTooSmallError",
    "NoReplyError",
    "NotInstalledError",
    "NotSupportedError",
    "OTAError",
    "ProtocolError",
    "RejectedError",
    "RolledBackError",
    "SizeMismatchError",
    "TooManyRetriesError",
    "TransportError",
]

# Reasons a board gives in `OTA:REJECT:<reason>`.
REJECT_REASONS: Final = frozenset(
    {"BUSY", "BAD_ARGS", "AUTH", "FORBIDDEN", "NOSPACE", "VERSION"}
)


class OTAError(Exception):
    """Base class of every error of the OTA client."""


@dataclass(eq=False, repr=False)
class _DetailedError(OTAError):
    """An OTAError whose fields make its message.

    Subclasses are `@dataclass(eq=False, repr=False)` too: eq=False keeps an
    exception hashable and equal only to itself, repr=False keeps Exception's
    repr, `CrcMismatchError('CRC mismatch for …')`.
    """

    _template: ClassVar[str]

    def __post_init__(self) -> None:
        """Give Exception its one argument, the message, as any exception has."""
        super().__init__(self._message())

    def _message(self) -> str:
        return self._template.format_map(vars(self))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the fields; Exception's default would pass the message."""
        values = {
            each.name: getattr(self, each.name) for each in fields(self) if each.init
        }
        return partial(type(self), **values), (), vars(self)


class ProtocolError(OTAError):
    """The board sent something the protocol does not allow."""

    def __init__(self, message: str, line: str | None = None) -> None:
        """Keep the offending line (shortened) for diagnostics."""
        if line is not None and len(line) > 120:
            line = line[:117] + "..."
        super().__init__(message if line is None else f"{message}: {line!r}")
        self.line = line


class InvalidBoardInfoError(ProtocolError):
    """The board's HELLO reply is malformed or claims impossible capabilities."""


class LineTooLongError(ProtocolError):
    """The board sent a line longer than the client accepts."""


@dataclass(eq=False, repr=False)
class RejectedError(_DetailedError):
    """The board refused a START, FILE or APPLY (`OTA:REJECT:<reason>`).

    after_resend: a control line had to be sent again (no reply in time) since
    the last HELLO, so a BUSY may come from our own first copy, an AUTH from a
    stale nonce; a new connection clears both.
    """

    _template = "board rejected {command}: {reason}"
    reason: str  # one of REJECT_REASONS
    command: str  # START, FILE or APPLY
    after_resend: bool = field(default=False, kw_only=True)


@dataclass(eq=False, repr=False)
class DeviceError(_DetailedError):
    """The board answered a command with `OTA:ERR:<code>[:<detail>]`."""

    code: str  # e.g. WRITE, RENAME, INCOMPLETE, NOT_READY, NOT_RECEIVING
    detail: str = ""
    command: str = ""

    def _message(self) -> str:
        text = f"board error {self.code}" + (f": {self.detail}" if self.detail else "")
        return text + (f" (after {self.command})" if self.command else "")


@dataclass(eq=False, repr=False)
class CrcMismatchError(_DetailedError):
    """The board computed another CRC-32 than the file's (corrupted transfer)."""

    _template = "CRC mismatch for {file}: board got {got}, expected {expected}"
    file: str
    got: str  # both CRCs as 8 lower-case hex digits
    expected: str


@dataclass(eq=False, repr=False)
class SizeMismatchError(_DetailedError):
    """A v1 board received another number of bytes than announced."""

    _template = "size mismatch for {file}: board got {got}, expected {expected}"
    file: str
    got: int  # byte counts as the board reported them
    expected: int


@dataclass(eq=False, repr=False)
class NoReplyError(_DetailedError):
    """The board did not answer in time, even after the allowed retries."""

    _template = "no reply to {command} within {timeout:.1f} s ({attempts} attempt(s))"
    command: str
    timeout: float  # per attempt, in seconds
    attempts: int = 1


@dataclass(eq=False, repr=False)
class TooManyRetriesError(_DetailedError):
    """Data chunks kept getting lost; the link is too poor to finish."""

    _template = (
        "gave up sending {file} at byte {offset} after {retries} retransmissions"
    )
    file: str
    offset: int  # the last byte count the board acknowledged
    retries: int


class DisconnectedError(OTAError):
    """The link dropped while the client was waiting for the board."""


class TransportError(OTAError):
    """A write or subscription failed on a link that is still up."""


class NotSupportedError(OTAError):
    """The board's protocol cannot do what was asked (e.g. an empty file over v1)."""


@dataclass(eq=False, repr=False)
class ConnectFailedError(_DetailedError):
    """Could not (re)connect to the board, e.g. after it reset.

    applied: the update was applied, only the check after the reset failed.
    """

    _template = "could not connect to the board after {attempts} attempt(s): {cause}"
    attempts: int
    cause: BaseException | None = None  # what the connect factory raised last
    applied: bool = field(default=False, kw_only=True)


@dataclass(eq=False, repr=False)
class LinkTooSmallError(_DetailedError):
    """The link's write size cannot carry a protocol line."""

    _template = "a {needed}-byte line does not fit in {available}-byte writes"
    needed: int  # both in bytes
    available: int


@dataclass(eq=False, repr=False)
class AuthRequiredError(_DetailedError):
    """The board requires a token or HMAC key that was not configured."""

    _template = "the board requires {scheme} authentication"
    scheme: str  # `token` or `hmac`


@dataclass(eq=False, repr=False)
class InvalidTokenError(AuthRequiredError):
    """The configured clear-text token cannot travel in a protocol line.

    Never carries the token: see `lines.valid_token` for the rule.
    """

    _template = (
        "the configured token cannot be sent: it must be printable ASCII"
        " without ':' and without spaces at either end"
    )
    scheme: str = field(default="token", init=False)


@dataclass(eq=False, repr=False)
class NotInstalledError(_DetailedError):
    """After the board came back, a file does not have the CRC that was sent."""

    _template = "{file} was not installed: board has {found}, expected {expected}"
    file: str
    expected: str
    found: str | None  # None when the file is missing on the board


@dataclass(eq=False, repr=False)
class RolledBackError(_DetailedError):
    """The board's boot guard rejected the new version and restored the old one.

    cause: what the rejected version did, when the board saved it
    ("app.py line 12: NameError: name 'sensr' isn't defined").
    """

    version: str | None  # the rejected one
    restored: str | None  # the one running now
    cause: str | None = None

    def _message(self) -> str:
        because = f" ({self.cause})" if self.cause else ""
        return (
            f"the board rolled back version {self.version}{because};"
            f" running {self.restored}"
        )


@dataclass(eq=False, repr=False)
class ContentRefusedError(_DetailedError):
    """The board refused a file whose data did not match the signed SHA-256.

    Only a board with a key signs content, so this means the data was changed
    on the way (a relay in the middle, a proxy) or corrupted past the CRC.
    Nothing of the file stays staged.
    """

    _template = "the board refused {file}: its data did not match its signature"
    file: str  # the name on the board


@dataclass(eq=False, repr=False)
class AnsweredLikeV1Error(NotSupportedError, _DetailedError):
    """A board we know as v2 (or that must check a key) answered HELLO like v1.

    Real v1 firmware, or a relay pretending to be it to get the v1 token or
    to bypass the key; either way nothing was sent after HELLO.
    """

    _template = (
        "the board answered like old (protocol v1) firmware although it is"
        " known to speak v2"
    )
    applied: bool = field(default=False, kw_only=True)  # after the update applied
