"""Exceptions raised by the OTA client.

Every failure the board or the link can cause has its own class, so the
Home Assistant glue can map each one to a translated message without parsing
strings. All of them derive from `OTAError`.
"""

from __future__ import annotations

from typing import Final

# Reasons a board gives in `OTA:REJECT:<reason>`.
REJECT_REASONS: Final = frozenset(
    {"BUSY", "BAD_ARGS", "AUTH", "FORBIDDEN", "NOSPACE", "VERSION"}
)


class OTAError(Exception):
    """Base class of every error of the OTA client."""


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


class RejectedError(OTAError):
    """The board refused a START, FILE or APPLY (`OTA:REJECT:<reason>`)."""

    def __init__(
        self, reason: str, command: str, *, after_resend: bool = False
    ) -> None:
        """Reason is one of REJECT_REASONS; command is START, FILE or APPLY.

        After_resend: a control line had to be sent again (no reply in time)
        since the last HELLO, so a BUSY may come from our own first copy, an
        AUTH from a stale nonce; a new connection clears both.
        """
        super().__init__(f"board rejected {command}: {reason}")
        self.reason = reason
        self.command = command
        self.after_resend = after_resend


class DeviceError(OTAError):
    """The board answered a command with `OTA:ERR:<code>[:<detail>]`."""

    def __init__(self, code: str, detail: str = "", command: str = "") -> None:
        """Code is e.g. WRITE, RENAME, INCOMPLETE, NOT_READY, NOT_RECEIVING."""
        text = f"board error {code}" + (f": {detail}" if detail else "")
        super().__init__(text + (f" (after {command})" if command else ""))
        self.code = code
        self.detail = detail
        self.command = command


class CrcMismatchError(OTAError):
    """The board computed another CRC-32 than the file's (corrupted transfer)."""

    def __init__(self, file: str, got: str, expected: str) -> None:
        """Both CRCs as 8 lower-case hex digits."""
        super().__init__(
            f"CRC mismatch for {file}: board got {got}, expected {expected}"
        )
        self.file = file
        self.got = got
        self.expected = expected


class SizeMismatchError(OTAError):
    """A v1 board received another number of bytes than announced."""

    def __init__(self, file: str, got: int, expected: int) -> None:
        """Byte counts as the board reported them."""
        super().__init__(
            f"size mismatch for {file}: board got {got}, expected {expected}"
        )
        self.file = file
        self.got = got
        self.expected = expected


class NoReplyError(OTAError):
    """The board did not answer in time, even after the allowed retries."""

    def __init__(self, command: str, timeout: float, attempts: int = 1) -> None:
        """Timeout is per attempt, in seconds."""
        super().__init__(
            f"no reply to {command} within {timeout:.1f} s ({attempts} attempt(s))"
        )
        self.command = command
        self.timeout = timeout
        self.attempts = attempts


class TooManyRetriesError(OTAError):
    """Data chunks kept getting lost; the link is too poor to finish."""

    def __init__(self, file: str, offset: int, retries: int) -> None:
        """Offset is the last byte count the board acknowledged."""
        super().__init__(
            f"gave up sending {file} at byte {offset} after {retries} retransmissions"
        )
        self.file = file
        self.offset = offset
        self.retries = retries


class DisconnectedError(OTAError):
    """The link dropped while the client was waiting for the board."""


class TransportError(OTAError):
    """A write or subscription failed on a link that is still up."""


class NotSupportedError(OTAError):
    """The board's protocol cannot do what was asked (e.g. an empty file over v1)."""


class ConnectFailedError(OTAError):
    """Could not (re)connect to the board, e.g. after it reset."""

    def __init__(
        self,
        attempts: int,
        cause: BaseException | None = None,
        *,
        applied: bool = False,
    ) -> None:
        """Cause is the last exception the connect factory raised.

        Applied: the update was applied, only the check after the reset failed.
        """
        super().__init__(
            f"could not connect to the board after {attempts} attempt(s): {cause}"
        )
        self.attempts = attempts
        self.cause = cause
        self.applied = applied


class LinkTooSmallError(OTAError):
    """The link's write size cannot carry a protocol line."""

    def __init__(self, needed: int, available: int) -> None:
        """Both in bytes."""
        super().__init__(
            f"a {needed}-byte line does not fit in {available}-byte writes"
        )
        self.needed = needed
        self.available = available


class AuthRequiredError(OTAError):
    """The board requires a token or HMAC key that was not configured."""

    def __init__(self, scheme: str) -> None:
        """Scheme is `token` or `hmac`."""
        super().__init__(f"the board requires {scheme} authentication")
        self.scheme = scheme


class InvalidTokenError(AuthRequiredError):
    """The configured clear-text token cannot travel in a protocol line.

    Never carries the token: see `lines.valid_token` for the rule.
    """

    def __init__(self) -> None:
        """Say what a token must be, without quoting it."""
        super().__init__("token")
        self.args = (
            "the configured token cannot be sent: it must be printable ASCII"
            " without ':' and without spaces at either end",
        )


class NotInstalledError(OTAError):
    """After the board came back, a file does not have the CRC that was sent."""

    def __init__(self, file: str, expected: str, found: str | None) -> None:
        """Found is None when the file is missing on the board."""
        super().__init__(
            f"{file} was not installed: board has {found}, expected {expected}"
        )
        self.file = file
        self.expected = expected
        self.found = found


class RolledBackError(OTAError):
    """The board's boot guard rejected the new version and restored the old one."""

    def __init__(
        self, version: str | None, restored: str | None, cause: str | None = None
    ) -> None:
        """Version is the rejected one; restored the one running now.

        cause: what the rejected version did, when the board saved it
        ("app.py line 12: NameError: name 'sensr' isn't defined").
        """
        because = f" ({cause})" if cause else ""
        super().__init__(
            f"the board rolled back version {version}{because}; running {restored}"
        )
        self.version = version
        self.restored = restored
        self.cause = cause


class ContentRefusedError(OTAError):
    """The board refused a file whose data did not match the signed SHA-256.

    Only a board with a key signs content, so this means the data was changed
    on the way (a relay in the middle, a proxy) or corrupted past the CRC.
    Nothing of the file stays staged.
    """

    def __init__(self, file: str) -> None:
        """File is the name on the board."""
        super().__init__(
            f"the board refused {file}: its data did not match its signature"
        )
        self.file = file


class AnsweredLikeV1Error(NotSupportedError):
    """A board we know as v2 (or that must check a key) answered HELLO like v1.

    Real v1 firmware, or a relay pretending to be it to get the v1 token or
    to bypass the key; either way nothing was sent after HELLO.
    """

    def __init__(self, *, applied: bool = False) -> None:
        """Set applied when this happened after the update was applied."""
        super().__init__(
            "the board answered like old (protocol v1) firmware although it is"
            " known to speak v2"
        )
        self.applied = applied
