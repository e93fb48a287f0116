"""The client's errors: their messages, their fields, and pickling them."""

from __future__ import annotations

import pickle

import pytest

from custom_components.esp32_ota import nus_ota
from custom_components.esp32_ota.nus_ota import errors

# Each error as the client raises it, with the message a user reads.
ERRORS = [
    (
        errors.RejectedError("BUSY", "START", after_resend=True),
        "board rejected START: BUSY",
    ),
    (
        errors.DeviceError("WRITE", "ENOSPC", "FILE"),
        "board error WRITE: ENOSPC (after FILE)",
    ),
    (errors.DeviceError("NOT_READY"), "board error NOT_READY"),
    (
        errors.CrcMismatchError("app.py", "0000beef", "deadbeef"),
        "CRC mismatch for app.py: board got 0000beef, expected deadbeef",
    ),
    (
        errors.SizeMismatchError("app.py", 10, 12),
        "size mismatch for app.py: board got 10, expected 12",
    ),
    (
        errors.NoReplyError("FILE", 2.5, 3),
        "no reply to FILE within 2.5 s (3 attempt(s))",
    ),
    (
        errors.TooManyRetriesError("app.py", 4096, 9),
        "gave up sending app.py at byte 4096 after 9 retransmissions",
    ),
    (
        errors.ConnectFailedError(3, OSError("out of slots"), applied=True),
        "could not connect to the board after 3 attempt(s): out of slots",
    ),
    (errors.LinkTooSmallError(60, 20), "a 60-byte line does not fit in 20-byte writes"),
    (errors.AuthRequiredError("hmac"), "the board requires hmac authentication"),
    (
        errors.InvalidTokenError(),
        "the configured token cannot be sent: it must be printable ASCII"
        " without ':' and without spaces at either end",
    ),
    (
        errors.NotInstalledError("app.py", "deadbeef", None),
        "app.py was not installed: board has None, expected deadbeef",
    ),
    (
        errors.RolledBackError("2.0.0", "1.0.0", "app.py line 3: NameError"),
        "the board rolled back version 2.0.0 (app.py line 3: NameError); running 1.0.0",
    ),
    (
        errors.RolledBackError(None, None),
        "the board rolled back version None; running None",
    ),
    (
        errors.ContentRefusedError("app.py"),
        "the board refused app.py: its data did not match its signature",
    ),
    (
        errors.AnsweredLikeV1Error(applied=True),
        "the board answered like old (protocol v1) firmware although it is"
        " known to speak v2",
    ),
    (
        errors.ProtocolError("unexpected reply", "OTA:WHAT"),
        "unexpected reply: 'OTA:WHAT'",
    ),
]


@pytest.mark.parametrize(("error", "message"), ERRORS)
def test_message_is_the_only_argument(error: errors.OTAError, message: str) -> None:
    """str, args and repr are those of any exception built from the message."""
    assert str(error) == message
    assert error.args == (message,)
    assert repr(error) == f"{type(error).__name__}({message!r})"


@pytest.mark.parametrize(("error", "message"), ERRORS)
def test_pickles_with_its_fields(error: errors.OTAError, message: str) -> None:
    """A pickled error comes back as the same class, message and fields."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == message
    fields = {k: v for k, v in vars(error).items() if k != "cause"}
    assert {k: v for k, v in vars(copy).items() if k != "cause"} == fields
    assert repr(getattr(copy, "cause", None)) == repr(getattr(error, "cause", None))


def test_errors_are_hashable_and_equal_only_to_themselves() -> None:
    """Exceptions go into sets (asyncio, tracebacks): no field equality."""
    first, second = errors.LinkTooSmallError(60, 20), errors.LinkTooSmallError(60, 20)
    assert first != second
    assert len({first, second}) == 2


def test_invalid_token_error_never_quotes_the_token() -> None:
    """The error names the scheme only; it takes no token to quote."""
    error = errors.InvalidTokenError()
    assert error.scheme == "token"
    assert isinstance(error, errors.AuthRequiredError)


def test_the_package_exports_every_error() -> None:
    """`from nus_ota import XError` works for each error class errors defines."""
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.OTAError)
        and not name.startswith("_")
    }
    assert set(errors.__all__) == defined
    assert defined <= set(nus_ota.__all__)
    assert all(getattr(nus_ota, name) is getattr(errors, name) for name in defined)
