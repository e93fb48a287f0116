"""HMAC-SHA256 auth field: known vectors, and agreement with the board's code."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from custom_components.esp32_ota.nus_ota.auth import (
    Credentials,
    apply_message,
    file_message,
    sign,
)
from custom_components.esp32_ota.nus_ota.errors import (
    AuthRequiredError,
    InvalidTokenError,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_rfc4231_vectors() -> None:
    # RFC 4231 test case 2
    assert sign("Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    # RFC 4231 test case 7 needs a binary key; long UTF-8 keys are checked
    # against the firmware below.


def test_messages_follow_the_spec() -> None:
    assert file_message(
        "00112233aabbccdd", "app.py", 120, "0badf00d", "1.2.0", "b64", "-"
    ) == ("00112233aabbccdd|FILE|app.py|120|0badf00d|1.2.0|b64|-")
    assert file_message(
        "00112233aabbccdd", "app.py", 0, "00000000", "", "hex", "f"
    ) == ("00112233aabbccdd|FILE|app.py|0|00000000||hex|f")
    assert apply_message("00112233aabbccdd", ["main.py", "app.py"]) == (
        "00112233aabbccdd|APPLY|main.py,app.py"
    )


@pytest.mark.parametrize("key", ["k", "sésame", "x" * 64, "y" * 65, "z" * 200])
def test_board_verifies_what_the_client_signs(board_fs: Path, key: str) -> None:
    """The firmware's own HMAC (no hmac module on MicroPython) agrees with ours."""
    import ota_auth

    message = file_message(
        "0011223344556677", "main.py", 5, "12345678", "2.0", "b64", "f"
    )
    mac = sign(key, message)
    assert len(mac) == 64
    assert mac == mac.lower()
    assert ota_auth.check(key, message, mac)
    assert not ota_auth.check(key + "!", message, mac)
    assert not ota_auth.check(key, message + "x", mac)


def test_credentials_field_per_scheme() -> None:
    both = Credentials(key="secret", token="tok")
    assert both.field("none", "m") == ""
    assert both.field("token", "m") == "tok"
    assert both.field("hmac", "m") == sign("secret", "m")
    with pytest.raises(AuthRequiredError) as err:
        Credentials(key="secret").field("token", "m")
    assert err.value.scheme == "token"
    with pytest.raises(AuthRequiredError) as err:
        Credentials(token="tok").field("hmac", "m")
    assert err.value.scheme == "hmac"


def test_a_token_that_cannot_travel_is_refused_unquoted() -> None:
    with pytest.raises(InvalidTokenError) as err:
        Credentials(token="pass\rword").field("token", "")
    assert "pass" not in str(err.value)
    assert Credentials(token="pass-word").field("token", "") == "pass-word"
