"""Parsing every reply of v1 and v2; garbage never crashes the parser."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.esp32_ota.nus_ota import replies
from custom_components.esp32_ota.nus_ota.board_info import BoardInfo
from custom_components.esp32_ota.nus_ota.errors import (
    InvalidBoardInfoError,
    ProtocolError,
)
from custom_components.esp32_ota.nus_ota.replies import parse_reply

from .samples import GOOD_HELLO


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("OTA:READY", replies.Ready()),
        ("OTA:READY:0:0123456789abcdef", replies.Ready(0, "0123456789abcdef")),
        ("OTA:READY:4096:fedcba9876543210", replies.Ready(4096, "fedcba9876543210")),
        ("OTA:REJECT:BUSY", replies.Reject("BUSY")),
        ("OTA:REJECT:NOSPACE", replies.Reject("NOSPACE")),
        ("OTA:A:0", replies.Ack(0)),
        ("OTA:A:123456", replies.Ack(123456)),
        ("OTA:N:40", replies.Nak(40)),
        ("OTA:ACK:3", replies.SeqAck(3)),
        ("OTA:ERR:17", replies.SeqError(17)),
        (
            "OTA:ERR:CRC:got=deadbeef,exp=0BADF00D",
            replies.CrcError("deadbeef", "0badf00d"),
        ),
        ("OTA:ERR:CRC:got=1,exp=2", replies.CrcError("00000001", "00000002")),
        ("OTA:ERR:SIZE:got=10,exp=12", replies.SizeError(10, 12)),
        ("OTA:ERR:BAD_DATA:96", replies.BadData(96)),
        ("OTA:ERR:NOT_READY", replies.Error("NOT_READY")),
        ("OTA:ERR:UNKNOWN_CMD", replies.Error("UNKNOWN_CMD")),
        ("OTA:ERR:INCOMPLETE:app.py", replies.Error("INCOMPLETE", "app.py")),
        ("OTA:ERR:WRITE:ENOSPC no space", replies.Error("WRITE", "ENOSPC no space")),
        ("OTA:ERR:RENAME:a:b", replies.Error("RENAME", "a:b")),
        ("OTA:OK", replies.Ok()),
        ("OTA:ABORTED", replies.Aborted()),
    ],
)
def test_every_reply(line: str, reply: object) -> None:
    assert parse_reply(line) == reply


def test_hello_reply_carries_board_info() -> None:
    reply = parse_reply("OTA:HELLO:" + json.dumps(GOOD_HELLO, separators=(",", ":")))
    assert isinstance(reply, replies.Hello)
    assert isinstance(reply.info, BoardInfo)
    assert reply.info.window == 8


@pytest.mark.parametrize("line", ["PONG", "VERSION:1.0.0", "", "ota:OK", " OTA:OK"])
def test_application_lines_are_not_replies(line: str) -> None:
    assert parse_reply(line) is None


@pytest.mark.parametrize(
    "line",
    [
        "OTA:",
        "OTA:WHAT",
        "OTA:OK:extra",
        "OTA:ABORTED:1",
        "OTA:READY:1",
        "OTA:READY:x:0123456789abcdef",
        "OTA:READY:5:short",
        "OTA:READY:5:0123456789ABCDEF",
        "OTA:A:",
        "OTA:A:-1",
        "OTA:A:1e3",
        "OTA:A:12345678901",
        "OTA:A:1:2",
        "OTA:N:abc",
        "OTA:ACK:",
        "OTA:ERR",
        "OTA:ERR:",
        "OTA:ERR:-4",
        "OTA:ERR:1:2",
        "OTA:ERR:lower",
        "OTA:ERR:CRC",
        "OTA:ERR:CRC:got=zz,exp=00000000",
        "OTA:ERR:CRC:got=123456789,exp=0",
        "OTA:ERR:SIZE:got=a,exp=1",
        "OTA:ERR:SIZE:10,12",
        "OTA:ERR:BAD_DATA:",
        "OTA:ERR:WRITE:" + "x" * 300,
        "OTA:ERR:WRITE:tab\there",
        "OTA:REJECT:",
        "OTA:REJECT:busy",
        "OTA:REJECT:BUSY:AUTH",
        "OTA:REJECT:" + "A" * 40,
    ],
)
def test_malformed_replies_raise_protocol_error(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(line)


@pytest.mark.parametrize(
    "payload", ["", "{", "[]", "null", '{"proto":2}', "[" * 5000 + "]" * 5000]
)
def test_bad_hello_raises_invalid_board_info(payload: str) -> None:
    with pytest.raises(InvalidBoardInfoError):
        parse_reply("OTA:HELLO:" + payload)


def test_protocol_error_shortens_the_line() -> None:
    err = ProtocolError("bad", "OTA:" + "x" * 500)
    assert err.line is not None
    assert len(err.line) == 120


@given(st.text(max_size=200))
def test_fuzzed_ota_lines_parse_or_raise_protocol_error(text: str) -> None:
    for line in (
        "OTA:" + text,
        "OTA:ERR:" + text,
        "OTA:HELLO:" + text,
        "OTA:READY:" + text,
    ):
        with contextlib.suppress(ProtocolError):
            parse_reply(line)
