"""The `<auth>` field of FILE and APPLY.

With `hmac`, the board proves nothing and the client proves it knows the
key: it signs the command together with the board's one-time nonce, so a
recorded line never verifies twice and the key never travels.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import AuthRequiredError, InvalidTokenError
from .lines import valid_token

if TYPE_CHECKING:
    from collections.abc import Sequence


def sign(key: str, message: str) -> str:
    """HMAC-SHA256 of message under key (both UTF-8), as 64 lower-case hex digits."""
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def file_message(  # noqa: PLR0917 -- the fields in protocol order
    nonce: str,
    file: str,
    size: int,
    crc: str,
    version: str,
    encoding: str,
    flags: str,
    sha256: str | None = None,
) -> str:
    """Build what FILE signs.

    `<nonce>|FILE|<file>|<size>|<crc32>|<version>|<enc>|<flags>`, followed by
    `|<sha256>` when the board checks content hashes (HELLO `hash`).
    """
    fields = [nonce, "FILE", file, str(size), crc, version, encoding, flags]
    if sha256 is not None:
        fields.append(sha256)
    return "|".join(fields)


def apply_message(
    nonce: str, files: Sequence[str], hashes: Sequence[str] | None = None
) -> str:
    """Build what APPLY signs: `<nonce>|APPLY|<file>[,<file>...]`.

    With content hashes: `...|<sha256>[,<sha256>...]`, one per file, in order.
    """
    message = f"{nonce}|APPLY|{','.join(files)}"
    return message if hashes is None else f"{message}|{','.join(hashes)}"


def hello_signed(key: str, challenge: str, text: str) -> bool:
    """Whether a HELLO's JSON ends with the board's signature over `challenge`.

    The board signs `<challenge>|HELLO|<the JSON without "sig">` and adds
    `,"sig":"<64 hex>"` before the closing brace; only a board that knows
    the key can, so what such a HELLO says can be trusted through a relay.
    """
    match = _SIG.search(text)
    if match is None:
        return False
    unsigned = text[: match.start()] + "}"
    want = sign(key, f"{challenge}|HELLO|{unsigned}")
    return hmac.compare_digest(want, match.group(1))


_SIG = re.compile(r',"sig":"([0-9a-f]{64})"\}\Z')


def abort_message(nonce: str) -> str:
    """Build what ABORT signs on a board with a key: `<nonce>|ABORT`."""
    return f"{nonce}|ABORT"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the user configured: an HMAC key and/or a v1 clear-text token."""

    key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def field(self, scheme: str, message: str) -> str:
        """Return the `<auth>` field for the board's scheme (`none`, `token`, `hmac`).

        Message is what `file_message` or `apply_message` built; only `hmac` uses it.
        """
        if scheme == "none":
            return ""
        if scheme == "token":
            if self.token is None:
                raise AuthRequiredError("token")
            if not valid_token(self.token):
                raise InvalidTokenError
            return self.token
        if self.key is None:
            raise AuthRequiredError("hmac")
        return sign(self.key, message)
