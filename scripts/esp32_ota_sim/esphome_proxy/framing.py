"""The ESPHome native API's plaintext framing, as aioesphomeapi speaks it.

A frame is: 0x00 (preamble), varuint payload length, varuint message type,
then the protobuf payload. Message types and classes are the ones
aioesphomeapi ships (`aioesphomeapi.core.MESSAGE_TYPE_TO_PROTO`), so the
virtual proxy and the real client can never disagree on a number.
A 0x01 preamble is the Noise-encrypted protocol, which this proxy does not
offer (like an ESPHome node without an `encryption:` key).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO

__all__ = [
    "FrameDecoder",
    "FramingError",
    "Message",
    "decode_message",
    "encode_frame",
    "pb",
]

# The generated protobuf module has no type information: use it as Any.
pb: Any = importlib.import_module("aioesphomeapi.api_pb2")


class Message(Protocol):
    """What the proxy needs of a protobuf message."""

    def SerializeToString(self) -> bytes: ...  # noqa: N802 (protobuf's name)

    def ParseFromString(self, data: bytes) -> int: ...  # noqa: N802


_TYPE_OF: dict[type[Any], int] = {
    cls: num for num, cls in MESSAGE_TYPE_TO_PROTO.items()
}
_NOISE_PREAMBLE = 0x01


class FramingError(Exception):
    """The byte stream is not plaintext ESPHome API frames."""


def _varuint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_frame(message: Message) -> bytes:
    """One message as a plaintext frame."""
    msg_type = _TYPE_OF[type(message)]
    payload = bytes(message.SerializeToString())
    return b"\0" + _varuint(len(payload)) + _varuint(msg_type) + payload


def decode_message(msg_type: int, payload: bytes) -> Message | None:
    """Parse a payload by its type number; None for a type unknown to aioesphomeapi."""
    cls = MESSAGE_TYPE_TO_PROTO.get(msg_type)
    if cls is None:
        return None
    message: Message = cls()
    message.ParseFromString(payload)
    return message


class FrameDecoder:
    """Splits a received byte stream into (type, payload) frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return every frame now complete (raises FramingError)."""
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while self._buffer:
            if self._buffer[0] != 0:
                if self._buffer[0] == _NOISE_PREAMBLE:
                    raise FramingError("the client wants encryption (Noise)")
                raise FramingError(f"invalid preamble 0x{self._buffer[0]:02x}")
            pos = 1
            length, pos = self._read_varuint(pos)
            if length < 0:
                break
            msg_type, pos = self._read_varuint(pos)
            if msg_type < 0 or len(self._buffer) < pos + length:
                break
            frames.append((msg_type, bytes(self._buffer[pos : pos + length])))
            del self._buffer[: pos + length]
        return frames

    def _read_varuint(self, pos: int) -> tuple[int, int]:
        """(value, next position), or (-1, pos) when the bytes are not all here."""
        result = 0
        shift = 0
        while pos < len(self._buffer):
            byte = self._buffer[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift > 35:
                raise FramingError("varuint too long")
        return -1, pos
