"""Line reassembly, command formatting and chunk sizing."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.esp32_ota.nus_ota.errors import ProtocolError
from custom_components.esp32_ota.nus_ota.lines import (
    LineAssembler,
    command,
    data_frame,
    data_line_v1,
    data_line_v2,
    encode_payload,
    encoded_len,
    join_files,
    largest_chunk,
    split_fields,
)


def test_lines_split_across_and_within_notifications() -> None:
    asm = LineAssembler()
    assert asm.feed(b"OTA:HEL") == []
    assert asm.feed(b'LO:{"a":1}\nOTA:A:12\nOTA:') == ['OTA:HELLO:{"a":1}', "OTA:A:12"]
    assert asm.feed(b"OK\r\n") == ["OTA:OK"]
    assert asm.feed(b"\n") == [""]
    assert asm.overflows == 0


def test_overlong_line_is_dropped_whole_and_counted() -> None:
    asm = LineAssembler(max_line=16)
    assert asm.feed(b"OTA:OK\n" + b"x" * 10) == ["OTA:OK"]
    # the line grows past the limit over several notifications
    assert asm.feed(b"y" * 10) == []
    assert asm.overflows == 1
    assert asm.feed(b"z" * 100) == []
    assert asm.overflows == 1  # one overlong line counts once
    # its tail must not be mistaken for a line of its own
    assert asm.feed(b"OTA:A:5\nOTA:A:6\n") == ["OTA:A:6"]
    assert asm.feed(b"a" * 16 + b"\n") == ["a" * 16]  # exactly the limit is fine
    assert asm.feed(b"b" * 17 + b"\n") == []  # one byte more is not
    assert asm.overflows == 2


def test_overlong_line_in_one_notification() -> None:
    asm = LineAssembler(max_line=8)
    assert asm.feed(b"OTA:A:1\n" + b"q" * 50 + b"\nOTA:A:2\n") == ["OTA:A:1", "OTA:A:2"]
    assert asm.overflows == 1


def test_reset_forgets_partial_line() -> None:
    asm = LineAssembler()
    asm.feed(b"OTA:A:1")
    asm.reset()
    assert asm.feed(b"2\n") == ["2"]


def test_an_ota_line_that_lost_its_end_is_not_glued_onto_the_next() -> None:
    """The proxy lost the last notification of a HELLO reply: the next reply
    starts a notification of its own, so the open part is dropped."""
    asm = LineAssembler()
    assert asm.feed(b'OTA:HELLO:{"proto":2,"fw":"2.1.0"') == []
    assert asm.feed(b'OTA:HELLO:{"a":1}\n') == ['OTA:HELLO:{"a":1}']
    assert asm.damaged == 1
    # a part that continues the line is still joined, even when it holds OTA:
    assert asm.feed(b"OTA:ERR:X:") == []
    assert asm.feed(b"y OTA:z\n") == ["OTA:ERR:X:y OTA:z"]
    assert asm.damaged == 1


def test_an_application_line_is_never_cut_at_ota() -> None:
    asm = LineAssembler()
    assert asm.feed(b"log: ") == []
    assert asm.feed(b"OTA:A:1 seen\n") == ["log: OTA:A:1 seen"]
    assert asm.feed(b"OTA:OK\n") == ["OTA:OK"]
    assert asm.damaged == 0


def test_binary_garbage_decodes_without_raising() -> None:
    asm = LineAssembler()
    (line,) = asm.feed(bytes(range(256)).replace(b"\n", b"") + b"\n")
    assert "\ufffd" in line


# Notifications that start with `OTA:` are left out: one that comes while an
# `OTA:` line is open drops that line as damaged (a lost end, tested on its
# own above), which plain splitting on newlines does not model.
@given(
    st.lists(
        st.binary(max_size=40).filter(lambda chunk: not chunk.startswith(b"OTA:")),
        max_size=30,
    )
)
def test_reassembly_matches_split_on_newlines(chunks: list[bytes]) -> None:
    asm = LineAssembler(max_line=64)
    out: list[str] = []
    for chunk in chunks:
        out.extend(asm.feed(chunk))
    whole = b"".join(chunks)
    complete = whole.split(b"\n")[:-1]
    expected = [
        p.decode("ascii", "replace").rstrip("\r") for p in complete if len(p) <= 64
    ]
    assert out == expected
    assert asm.damaged == 0
    assert asm.overflows == sum(1 for p in complete if len(p) > 64) + (
        1 if len(whole.split(b"\n")[-1]) > 64 else 0
    )


def test_command_formats_one_line() -> None:
    assert command("HELLO") == b"OTA:HELLO\n"
    assert command("FILE", "app.py", "10", "0badf00d", "", "b64", "-", "") == (
        b"OTA:FILE:app.py:10:0badf00d::b64:-:\n"
    )
    assert data_line_v2(300, b"QUJD") == b"OTA:D:300:QUJD\n"
    assert data_line_v1(7, b"\x01\xab") == b"OTA:DATA:7:01ab\n"
    assert join_files(["main.py", "app.py"]) == "main.py,app.py"
    with pytest.raises(ValueError):
        join_files([])


@pytest.mark.parametrize("bad", ["a:b", "a\nb", "a\rb", "é"])
def test_command_refuses_fields_that_break_the_framing(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        command("FILE", "x" + bad + "secret")
    assert "secret" not in str(err.value)  # a field may be a token


def test_split_fields() -> None:
    assert split_fields("OTA:ERR:CRC:got=1,exp=2") == ["ERR", "CRC", "got=1,exp=2"]
    with pytest.raises(ProtocolError):
        split_fields("PONG")


@pytest.mark.parametrize("encoding", ["b64", "hex"])
@pytest.mark.parametrize("limit", [20, 23, 64, 100, 185, 244, 253, 509, 512])
def test_largest_chunk_is_the_largest_that_fits(encoding: str, limit: int) -> None:
    prefix = len("OTA:D:123456:")
    chunk = largest_chunk(limit, prefix, encoding)
    assert chunk > 0
    assert prefix + encoded_len(chunk, encoding) + 1 <= limit
    step = 3 if encoding == "b64" else 1
    assert prefix + encoded_len(chunk + step, encoding) + 1 > limit
    if encoding == "b64":
        assert chunk % 3 == 0  # no padding in the middle of a file


def test_largest_chunk_when_nothing_fits() -> None:
    assert largest_chunk(10, 9, "hex") == 0
    assert largest_chunk(14, 10, "b64") == 0
    with pytest.raises(ValueError):
        largest_chunk(100, 5, "rot13")


def test_payload_encodings() -> None:
    data = bytes(range(10))
    assert encode_payload(data, "hex") == data.hex().encode()
    assert encode_payload(memoryview(data)[1:4], "hex") == data[1:4].hex().encode()
    assert base64.b64decode(encode_payload(data, "b64")) == data
    assert encoded_len(10, "b64") == len(encode_payload(data, "b64"))
    assert encoded_len(10, "hex") == 20
    with pytest.raises(ValueError):
        encode_payload(data, "uu")
    with pytest.raises(ValueError):
        encoded_len(1, "uu")


def test_data_frame_layout() -> None:
    frame = data_frame(0x01020304, b"abc")
    assert frame == b"\xff\x03\x00\x04\x03\x02\x01abc"
    assert data_frame(0, memoryview(b"")) == b"\xff\x00\x00\x00\x00\x00\x00"
