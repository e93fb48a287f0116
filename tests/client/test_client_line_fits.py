"""A line exactly as long as one write goes out, in that one write.

The link takes writes of up to `max_write` bytes; a v1 board needs every
line in one write, so the boundary decides whether a small link works.
"""

from __future__ import annotations

from custom_components.esp32_ota.nus_ota import FileImage, OTAClient
from custom_components.esp32_ota.nus_ota.lines import command

from .test_client import CannedTransport, run


def _v1_board(line: bytes) -> list[bytes]:
    """A v1 board that accepts everything."""
    if line.startswith(b"OTA:HELLO"):
        return [b"OTA:ERR:UNKNOWN_CMD\n"]
    if line.startswith(b"OTA:START:"):
        return [b"OTA:READY\n"]
    if line.startswith(b"OTA:DATA:"):
        return [b"OTA:ACK:" + line.split(b":")[2] + b"\n"]
    return [b"OTA:OK\n"]


def test_a_v1_start_exactly_as_long_as_a_write() -> None:
    image = FileImage("app.py", b"print('hi')\n" * 3)
    start = command("START", image.name, str(image.size), image.crc)
    transport = CannedTransport(_v1_board, max_write=len(start))

    async def main() -> bool:
        client = OTAClient(transport, control_timeout=1.0)
        await client.start()
        assert await client.hello() is None
        return await client.send_file_v1(image, window=1)

    assert run(main()) is True
    assert transport.written[1] == (start, True)  # after HELLO, whole
    assert all(len(line) <= len(start) for line, _ in transport.written)
