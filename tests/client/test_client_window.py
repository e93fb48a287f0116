"""The data window: never more lines in flight than the board accepts.

The board's HELLO `win` is what its receive queue holds; a caller may ask for
fewer lines in flight, never for more (the extra writes would be dropped by
the board's queue and cost a resend each).
"""

from __future__ import annotations

import pytest

from custom_components.esp32_ota.nus_ota import FileImage, TooManyRetriesError

from .test_client import HELLO, HELLO_LINE, canned_client, run

NONCE = HELLO["nonce"].encode()
REPLIES: dict[bytes, list[bytes] | str] = {
    b"OTA:HELLO": [HELLO_LINE],
    b"OTA:FILE:": [b"OTA:READY:0:" + NONCE + b"\n"],
}


def _first_burst(window: int | None) -> list[bytes]:
    """D lines written before the first resend, the board acknowledging none."""

    async def main() -> list[bytes]:
        client = await canned_client(REPLIES, max_retries=0)
        await client.hello()
        image = FileImage("app.py", bytes(range(256)) * 4, "1.0.1")
        with pytest.raises(TooManyRetriesError):
            await client.send_file(image, window=window, max_chunk=16)
        written = client.transport.written  # type: ignore[attr-defined]
        return [line for line, _ in written if line.startswith(b"OTA:D:")]

    return run(main())


@pytest.mark.parametrize(
    ("asked", "in_flight"),
    [(None, HELLO["win"]), (2, 2), (HELLO["win"] + 6, HELLO["win"])],
)
def test_lines_in_flight_are_capped_by_the_board(
    asked: int | None, in_flight: int
) -> None:
    lines = _first_burst(asked)
    assert len(lines) == in_flight
    assert len(set(lines)) == in_flight  # no resend among them
