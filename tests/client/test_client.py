"""OTAClient over a Transport: the real engine behind a loopback, or canned replies.

All tests run on esp32_ota_sim's virtual-time loop: control timeouts and
retransmit timers elapse instantly, and never depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.content import source_bytes

from custom_components.esp32_ota.nus_ota import (
    AuthRequiredError,
    Credentials,
    DeviceError,
    DisconnectedError,
    FileImage,
    InvalidBoardInfoError,
    InvalidTokenError,
    LineTooLongError,
    LinkTooSmallError,
    NoReplyError,
    NotSupportedError,
    OTAClient,
    ProtocolError,
    RejectedError,
    TooManyRetriesError,
    TransportError,
)
from custom_components.esp32_ota.nus_ota.board_info import (
    StagedFile,
    parse_board_info,
)
from custom_components.esp32_ota.nus_ota.client import (
    ClientOptions,
    SessionStats,
    choose_encoding,
    v1_chunk,
    v2_chunk,
)
from custom_components.esp32_ota.nus_ota.errors import (
    CrcMismatchError,
    SizeMismatchError,
)
from custom_components.esp32_ota.nus_ota.transfer import SenderStats

from .loopback import (
    Link,
    LoopbackBoard,
    LoopbackTransport,
    disconnect_after,
    drop_first,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def run[T](coro: Coroutine[Any, Any, T]) -> T:
    return run_virtual(coro)


async def started(
    board: LoopbackBoard, link: Link | None = None, **kw: Any
) -> OTAClient:
    client = OTAClient(LoopbackTransport(board, link), ClientOptions(**kw))
    await client.start()
    return client


async def staged_now(client: OTAClient) -> dict[str, StagedFile]:
    """What the board holds staged, by a new HELLO."""
    info = await client.hello()
    assert info is not None
    return info.staged


# -- against the real engine ----------------------------------------------


def test_hello_split_over_small_notifications(board_fs: Path) -> None:
    board = LoopbackBoard()

    async def go() -> None:
        client = await started(board, Link(mtu_payload=20))
        info = await client.hello()
        assert info is not None
        assert client.protocol == 2
        assert info.allowed_files == {"main.py", "app.py"}
        assert info.window >= 1
        await client.close()
        await client.close()  # twice is harmless

    run(go())


def test_v1_board_is_detected(board_fs: Path) -> None:
    board = LoopbackBoard(v1_only=True)

    async def go() -> None:
        client = await started(board)
        assert await client.hello() is None
        assert client.protocol == 1
        with pytest.raises(NotSupportedError):
            await client.send_file(FileImage("app.py", b"x"))
        await client.close()

    run(go())


def test_app_lines_pass_through(board_fs: Path) -> None:
    board = LoopbackBoard()
    seen: list[str] = []

    async def go() -> None:
        transport = LoopbackTransport(board)
        client = OTAClient(transport, on_app_line=seen.append)
        await client.start()
        await transport.write(b"PING\n", response=True)
        assert await client.hello() is not None
        await client.close()

    run(go())
    assert seen == ["PONG"]


def test_lost_control_reply_is_retried(board_fs: Path) -> None:
    board = LoopbackBoard()
    dropped: list[str] = []
    drop_first_hello = drop_first("OTA:HELLO", dropped)

    async def go() -> OTAClient:
        client = await started(
            board, Link(drop_notify=drop_first_hello), control_timeout=2.0
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await client.hello() is not None
        assert loop.time() - start < 2.5  # one control timeout, then the retry
        await client.close()
        return client

    client = run(go())
    assert client.stats.control_retries == 1


def test_no_reply_at_all(board_fs: Path) -> None:
    board = LoopbackBoard()

    async def go() -> None:
        client = await started(
            board, Link(drop_notify=lambda _l: True), control_attempts=3
        )
        with pytest.raises(NoReplyError) as err:
            await client.hello()
        assert err.value.attempts == 3
        assert err.value.command == "HELLO"
        await client.close()

    run(go())


def test_send_and_apply_v2(board_fs: Path) -> None:
    board = LoopbackBoard()
    image = FileImage("app.py", b"VERSION = 2\n" * 400, "1.2.0")
    progress: list[int] = []

    async def go() -> bool:
        client = await started(board)
        await client.hello()
        resumed = await client.send_file(image, progress=progress.append)
        assert resumed == 0
        applied = await client.apply([image])
        await client.close()
        return applied

    assert run(go()) is True
    assert (board_fs / "app.py").read_bytes() == image.data
    assert progress[0] == 0
    assert progress[-1] == image.size
    assert progress == sorted(progress)
    assert board.resets == 1


def test_ok_lost_counts_as_applied(board_fs: Path) -> None:
    board = LoopbackBoard()
    image = FileImage("main.py", b"print(1)\n", "1.0.1")

    async def go() -> bool:
        client = await started(board, Link(drop_notify=lambda line: line == "OTA:OK"))
        await client.hello()
        await client.send_file(image)
        applied = await client.apply([image])
        await client.close()
        return applied

    assert run(go()) is False
    assert (board_fs / "main.py").read_bytes() == image.data


def test_hmac_file_line_spans_writes_on_a_small_link(board_fs: Path) -> None:
    board = LoopbackBoard(auth_key="k3y")
    image = FileImage("app.py", bytes(range(200)), "1.0.1")

    async def go() -> None:
        client = await started(
            board, Link(max_write=40, mtu_payload=40), encoding="hex"
        )
        info = await client.hello()
        assert info is not None
        assert info.auth == "hmac"
        await client.send_file(image, credentials=Credentials(key="k3y"))
        with pytest.raises(RejectedError) as err:
            await client.apply([image], Credentials(key="wrong"))
        assert err.value.reason == "AUTH"
        assert err.value.command == "APPLY"
        await client.hello()  # a fresh nonce
        assert await client.apply([image], Credentials(key="k3y")) is True
        await client.close()

    run(go())
    assert (board_fs / "app.py").read_bytes() == image.data


def test_keyed_board_signs_content_and_abort(board_fs: Path) -> None:
    board = LoopbackBoard(auth_key="k3y")
    image = FileImage("app.py", b"print('signed')\n" * 30, "1.0.1")
    creds = Credentials(key="k3y")
    written: list[bytes] = []

    async def go() -> None:
        client = await started(board)
        write = client.transport.write

        async def recording(data: bytes, *, response: bool) -> None:
            written.append(data)
            await write(data, response=response)

        client.transport.write = recording  # type: ignore[method-assign]
        info = await client.hello()
        assert info is not None
        assert info.sha256
        await client.send_file(image, credentials=creds)
        with pytest.raises(AuthRequiredError):
            await client.abort()  # a keyed board wants ABORT signed
        await client.hello()
        with pytest.raises(RejectedError) as err:
            await client.abort(Credentials(key="wrong"))
        assert err.value.reason == "AUTH"
        assert err.value.command == "ABORT"
        await client.close()

    run(go())
    file_line = next(w for w in written if w.startswith(b"OTA:FILE:"))
    assert file_line.split(b":")[8].decode() == image.sha256  # the signed hash

    async def abort() -> None:
        client = await started(board)
        assert "app.py" in await staged_now(client)  # the unsigned ABORT wiped nothing
        await client.abort(creds)
        assert await staged_now(client) == {}
        await client.close()

    run(abort())


def test_rejections_are_typed(board_fs: Path) -> None:
    board = LoopbackBoard()

    async def go() -> None:
        client = await started(board)
        await client.hello()
        new = FileImage("app.py", b"new", "3.0.0")
        await client.send_file(new)
        assert await client.apply([new])
        await client.close()
        client = await started(board)
        await client.hello()
        with pytest.raises(RejectedError) as err:
            await client.send_file(FileImage("app.py", b"old", "2.9.9"))
        assert err.value.reason == "VERSION"
        await client.hello()
        with pytest.raises(RejectedError) as err:
            await client.send_file(FileImage("boot.py", b"x", "3.1.0"))
        assert err.value.reason == "FORBIDDEN"
        await client.hello()
        await client.send_file(FileImage("app.py", b"old", "2.9.9"), force=True)
        with pytest.raises(DeviceError) as dev:
            await client.apply([FileImage("main.py", b"")])
        assert dev.value.code == "INCOMPLETE"
        await client.abort()
        assert await staged_now(client) == {}
        await client.close()

    run(go())


def test_disconnect_during_transfer(board_fs: Path) -> None:
    board = LoopbackBoard()
    cut = disconnect_after("OTA:D:", 5)

    async def go() -> None:
        client = await started(board, Link(after_line=cut))
        await client.hello()
        with pytest.raises(DisconnectedError):
            await client.send_file(FileImage("app.py", bytes(5000), "1.0.1"))
        with pytest.raises(DisconnectedError):
            await client.hello()
        await client.close()

    run(go())


def test_v1_send_file(board_fs: Path) -> None:
    board = LoopbackBoard(v1_only=True, token="t0k")
    image = FileImage("app.py", bytes(range(256)) * 10, "1.0.1")

    async def go() -> bool:
        client = await started(board, v1_window=4)
        assert await client.hello() is None
        with pytest.raises(RejectedError) as err:
            await client.send_file_v1(image, token="bad")
        assert err.value.reason == "AUTH"
        assert err.value.command == "START"
        with pytest.raises(NotSupportedError):
            await client.send_file_v1(FileImage("app.py", b""))
        with pytest.raises(ValueError):
            await client.send_file_v1(FileImage("app.py", b"x"), token="t0k")
        ok = await client.send_file_v1(image, token="t0k")
        await client.close()
        return ok

    assert run(go()) is True
    assert (board_fs / "app.py").read_bytes() == image.data


def test_v1_line_must_fit_one_write(board_fs: Path) -> None:
    board = LoopbackBoard(v1_only=True)

    async def go() -> None:
        client = await started(board, Link(max_write=20))
        await client.hello()
        with pytest.raises(LinkTooSmallError) as err:
            await client.send_file_v1(FileImage("app.py", b"x" * 10, "1.0.1"))
        assert err.value.available == 20
        await client.close()

    run(go())


# -- canned replies: what a broken or hostile board can send -------------------


class CannedTransport:
    """Answers each written line with whatever `answer(line)` returns."""

    def __init__(
        self, answer: Callable[[bytes], list[bytes] | str], max_write: int = 244
    ) -> None:
        self.answer = answer
        self.max_write = max_write
        self.is_connected = True
        self.written: list[tuple[bytes, bool]] = []
        self._on_data: Callable[[bytes], None] | None = None
        self._on_disconnect: Callable[[], None] | None = None

    async def start(
        self, on_data: Callable[[bytes], None], on_disconnect: Callable[[], None]
    ) -> None:
        self._on_data = on_data
        self._on_disconnect = on_disconnect

    async def write(self, data: bytes, *, response: bool) -> None:
        self.written.append((data, response))
        out = self.answer(data)
        loop = asyncio.get_running_loop()
        if out == "disconnect":
            self.is_connected = False
            assert self._on_disconnect is not None
            loop.call_later(0.01, self._on_disconnect)
            return
        loop.call_later(0.01, self._deliver, list(out))

    def _deliver(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            assert self._on_data is not None
            self._on_data(chunk)

    async def close(self) -> None:
        self.is_connected = False


HELLO = {
    "proto": 2,
    "fw": "2.0.0",
    "app": None,
    "win": 4,
    "line": 128,
    "enc": ["hex"],
    "auth": "none",
    "nonce": "0123456789abcdef",
    "free": 100000,
    "files": {"app.py": None},
}
HELLO_LINE = b"OTA:HELLO:" + json.dumps(HELLO).encode() + b"\n"


def canned(
    replies: dict[bytes, list[bytes] | str],
) -> Callable[[bytes], list[bytes] | str]:
    def answer(line: bytes) -> list[bytes] | str:
        for prefix, out in replies.items():
            if line.startswith(prefix):
                return out
        return []

    return answer


async def canned_client(replies: dict[bytes, list[bytes] | str]) -> OTAClient:
    client = OTAClient(
        CannedTransport(canned(replies)), ClientOptions(control_timeout=1.0)
    )
    await client.start()
    return client


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ([b"OTA:WHAT\n"], ProtocolError),
        ([b"OTA:OK\n"], ProtocolError),
        ([b"OTA:HELLO:" + b"{" * 10 + b"\n"], ProtocolError),
        ([b"OTA:HELLO:" + b"x" * 9000 + b"\n"], LineTooLongError),
        ([b"OTA:ERR:WRITE:flash\n"], ProtocolError),
        ("disconnect", DisconnectedError),
    ],
)
def test_bad_hello_replies(reply: list[bytes] | str, error: type[Exception]) -> None:
    async def go() -> None:
        client = await canned_client({b"OTA:HELLO": reply})
        with pytest.raises(error):
            await client.hello()

    run(go())


def test_late_data_replies_are_skipped_while_waiting_for_a_control_reply() -> None:
    async def go() -> None:
        client = await canned_client(
            {b"OTA:HELLO": [b"OTA:A:5\nOTA:N:3\n", b"OTA:ACK:1\n", HELLO_LINE]}
        )
        assert await client.hello() is not None

    run(go())


def test_hello_json_split_into_many_notifications() -> None:
    pieces = [HELLO_LINE[i : i + 7] for i in range(0, len(HELLO_LINE), 7)]

    async def go() -> None:
        client = await canned_client({b"OTA:HELLO": pieces})
        info = await client.hello()
        assert info is not None
        assert info.max_line == 128

    run(go())


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ([b"OTA:READY\n"], ProtocolError),  # a v1 READY to a v2 FILE
        ([b"OTA:READY:999:0123456789abcdef\n"], ProtocolError),  # past the end
        ([b"OTA:REJECT:NOSPACE\n"], RejectedError),
        ([b"OTA:ERR:INTERNAL:boom\n"], DeviceError),
    ],
)
def test_bad_file_replies(reply: list[bytes], error: type[Exception]) -> None:
    async def go() -> None:
        client = await canned_client({b"OTA:HELLO": [HELLO_LINE], b"OTA:FILE": reply})
        await client.hello()
        with pytest.raises(error):
            await client.send_file(FileImage("app.py", b"abc"))

    run(go())


def test_crc_error_at_the_end_of_a_transfer() -> None:
    async def go() -> None:
        client = await canned_client(
            {
                b"OTA:HELLO": [HELLO_LINE],
                b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"],
                b"OTA:D:": [b"OTA:ERR:CRC:got=00000001,exp=00000002\n"],
            }
        )
        await client.hello()
        with pytest.raises(CrcMismatchError) as err:
            await client.send_file(FileImage("app.py", b"abc"))
        assert err.value.file == "app.py"

    run(go())


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"OTA:ERR:SIZE:got=2,exp=3\n", SizeMismatchError),
        (b"OTA:ERR:CRC:got=00000001,exp=00000002\n", CrcMismatchError),
        (b"OTA:ERR:RENAME:busy\n", DeviceError),
        (b"OTA:ERR:NOT_RECEIVING\n", DeviceError),
    ],
)
def test_v1_commit_failures(reply: bytes, error: type[Exception]) -> None:
    async def go() -> None:
        client = await canned_client(
            {
                b"OTA:HELLO": [b"OTA:ERR:UNKNOWN_CMD\n"],
                b"OTA:START": [b"OTA:READY\n"],
                b"OTA:DATA:0:": [b"OTA:ACK:0\n"],
                b"OTA:COMMIT": [reply],
            }
        )
        assert await client.hello() is None
        with pytest.raises(error):
            await client.send_file_v1(FileImage("app.py", b"abc", "1.0.0"))

    run(go())


def test_control_lines_with_response_data_lines_without() -> None:
    transport = CannedTransport(
        canned(
            {
                b"OTA:HELLO": [HELLO_LINE],
                b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"],
                b"OTA:D:0:": [b"OTA:A:3\n"],
                b"OTA:APPLY": "disconnect",
            }
        )
    )

    async def go() -> None:
        client = OTAClient(transport)
        await client.start()
        await client.hello()
        image = FileImage("app.py", b"abc")
        await client.send_file(image)
        assert await client.apply([image]) is False

    run(go())
    kinds = [
        (line.rstrip(b"\n").split(b":")[1], response)
        for line, response in transport.written
    ]
    assert kinds == [(b"HELLO", True), (b"FILE", True), (b"D", False), (b"APPLY", True)]


def test_encoding_and_chunk_choice() -> None:
    hex_only = parse_board_info(json.dumps(HELLO))
    both = parse_board_info(json.dumps({**HELLO, "enc": ["hex", "b64"]}))
    assert choose_encoding(hex_only) == "hex"
    assert choose_encoding(both) == "b64"
    assert choose_encoding(both, "hex") == "hex"
    frames = parse_board_info(json.dumps({**HELLO, "enc": ["hex", "b64", "bin"]}))
    assert choose_encoding(frames) == "bin"
    assert choose_encoding(frames, "b64") == "b64"
    assert v2_chunk(244, 123456, "bin") == 237  # 97 % of the write is data
    assert v2_chunk(244, 10, "bin", max_chunk=16) == 16
    with pytest.raises(LinkTooSmallError):
        v2_chunk(7, 10, "bin")
    with pytest.raises(NotSupportedError):
        choose_encoding(hex_only, "b64")
    # each line fits min(max write, board line)
    for limit in (23, 100, 128, 244):
        for size in (1, 999, 123456):
            chunk = v2_chunk(limit, size, "b64")
            assert len(f"OTA:D:{size}:") + 4 * -(-chunk // 3) + 1 <= limit
            v1 = v1_chunk(limit, size)
            assert len(f"OTA:DATA:{size}:") + 2 * v1 + 1 <= limit
    assert v2_chunk(244, 10, "b64", max_chunk=16) == 16
    with pytest.raises(LinkTooSmallError):
        v2_chunk(12, 10, "b64")
    with pytest.raises(LinkTooSmallError):
        v1_chunk(12, 10)


class HangingTransport(CannedTransport):
    """A stack whose operations never complete."""

    def __init__(self, hang_start: bool) -> None:
        super().__init__(canned({}))
        self.hang_start = hang_start

    async def start(
        self, on_data: Callable[[bytes], None], on_disconnect: Callable[[], None]
    ) -> None:
        if self.hang_start:
            await asyncio.Event().wait()

    async def write(self, data: bytes, *, response: bool) -> None:
        await asyncio.Event().wait()


@pytest.mark.parametrize("hang_start", [True, False])
def test_hung_stack_operations_are_bounded(hang_start: bool) -> None:
    async def go() -> float:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        client = OTAClient(
            HangingTransport(hang_start), ClientOptions(control_timeout=3.0)
        )

        async def use() -> None:
            await client.start()
            await client.hello()

        with pytest.raises(TransportError):
            await use()
        return loop.time() - begin

    assert run(go()) == pytest.approx(3.0)


class HangingDataTransport(CannedTransport):
    """Answers control lines; its writes without response never complete."""

    async def write(self, data: bytes, *, response: bool) -> None:
        if not response:
            self.written.append((data, response))
            await asyncio.Event().wait()
        await super().write(data, response=response)


def test_hung_data_write_is_bounded() -> None:
    replies: dict[bytes, list[bytes] | str] = {
        b"OTA:HELLO": [HELLO_LINE],
        b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"],
    }

    async def go() -> tuple[float, list[tuple[bytes, bool]]]:
        loop = asyncio.get_running_loop()
        transport = HangingDataTransport(canned(replies))
        client = OTAClient(transport, ClientOptions(control_timeout=2.0))
        await client.start()
        await client.hello()
        begin = loop.time()
        with pytest.raises(TransportError, match="timed out"):
            await client.send_file(FileImage("app.py", b"x" * 500))
        return loop.time() - begin, transport.written

    took, written = run(go())
    # FILE went out, then the first data line, which never completed
    assert [(line[:6], response) for line, response in written[1:]] == [
        (b"OTA:FI", True),
        (b"OTA:D:", False),
    ]
    assert took == pytest.approx(2.0, abs=0.1)


def test_data_line_longer_than_the_link_allows() -> None:
    replies: dict[bytes, list[bytes] | str] = {
        b"OTA:HELLO": [HELLO_LINE],
        b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"],
    }

    async def go() -> list[tuple[bytes, bool]]:
        transport = CannedTransport(canned(replies))

        def answer(line: bytes) -> list[bytes] | str:
            if line.startswith(b"OTA:D:"):
                transport.max_write = 30  # the link shrank under the sender
            return canned(replies)(line)

        transport.answer = answer
        client = OTAClient(transport, ClientOptions(control_timeout=1.0))
        await client.start()
        await client.hello()
        with pytest.raises(LinkTooSmallError):
            await client.send_file(FileImage("app.py", b"x" * 500))
        return transport.written

    written = run(go())
    data = [line for line, response in written if not response]
    # the first window went out; its resend no longer fits and is refused
    chunk = v2_chunk(HELLO["line"], 500, "hex")
    offsets = [int(line.split(b":")[2]) for line in data]
    assert offsets == [i * chunk for i in range(HELLO["win"])]
    assert min(len(line) for line in data) > 30


def answer_first_data_line(reply: bytes) -> Callable[[bytes], list[bytes] | str]:
    """HELLO and FILE answered; the first D line gets `reply`, then silence."""
    answered: list[bytes] = []
    control = canned(
        {b"OTA:HELLO": [HELLO_LINE], b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"]}
    )

    def answer(line: bytes) -> list[bytes] | str:
        if line.startswith(b"OTA:D:") and not answered:
            answered.append(line)
            return [reply]
        return control(line)

    return answer


@pytest.mark.parametrize(
    ("size", "reply", "error"),
    [
        (3, b"OTA:A:1\n", ProtocolError),  # the report of issue 15: hung forever
        (500, b"OTA:A:1\n", ProtocolError),
        (500, b"OTA:A:9999\n", ProtocolError),
        (3, b"OTA:N:1\n", TooManyRetriesError),  # resent from 1, then silence
        (500, b"OTA:READY:0:0123456789abcdef\n", TooManyRetriesError),
    ],
)
def test_an_odd_reply_then_silence_ends_the_transfer(
    size: int, reply: bytes, error: type[Exception]
) -> None:
    """Whatever the board answers, then says nothing more: a bounded failure."""

    async def go() -> float:
        loop = asyncio.get_running_loop()
        client = OTAClient(CannedTransport(answer_first_data_line(reply)))
        await client.start()
        await client.hello()
        begin = loop.time()
        async with asyncio.timeout(60):  # the old code polled every 5 s forever
            with pytest.raises(error):
                await client.send_file(FileImage("app.py", b"x" * size))
        return loop.time() - begin

    took = run(go())
    # the retransmit timer: at most max_rto (1 s) per resend, 8 resends
    assert took < 10.0


def test_v1_start_refuses_a_token_it_cannot_carry() -> None:
    async def go() -> list[tuple[bytes, bool]]:
        transport = CannedTransport(canned({b"OTA:HELLO": [b"OTA:ERR:UNKNOWN_CMD\n"]}))
        client = OTAClient(transport)
        await client.start()
        await client.hello()
        with pytest.raises(InvalidTokenError) as err:
            await client.send_file_v1(FileImage("app.py", b"x", "1.0"), token="a\rb")
        assert "a\rb" not in str(err.value)
        return transport.written

    assert [line for line, _ in run(go())] == [b"OTA:HELLO\n"]  # no START went out


# -- a late HELLO reply while the client waits for READY (issue 20) ----------


def late_hello_answers(
    first_hello: bytes, start: bytes, rest: dict[bytes, list[bytes] | str]
) -> Callable[[bytes], list[bytes] | str]:
    """The first HELLO's reply is late: it arrives after the resent HELLO's,
    and the resent one's is still on its way when FILE or START goes out."""
    hellos: list[bytes] = []
    others = canned(rest)

    def answer(line: bytes) -> list[bytes] | str:
        if line.startswith(b"OTA:HELLO"):
            hellos.append(line)
            return [] if len(hellos) == 1 else [first_hello]
        if line.startswith(start):
            return [first_hello, *others(line)]  # the resent HELLO's reply, late
        return others(line)

    return answer


def test_late_hello_reply_while_waiting_for_ready_v2() -> None:
    answer = late_hello_answers(
        HELLO_LINE,
        b"OTA:FILE",
        {
            b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"],
            b"OTA:D:0:": [b"OTA:A:3\n"],
        },
    )

    async def go() -> int:
        client = OTAClient(CannedTransport(answer), ClientOptions(control_timeout=1.0))
        await client.start()
        assert await client.hello() is not None
        return await client.send_file(FileImage("app.py", b"abc"))

    assert run(go()) == 0  # READY was taken for FILE's answer, not the HELLO


def test_late_hello_reply_while_waiting_for_ready_v1() -> None:
    answer = late_hello_answers(
        b"OTA:ERR:UNKNOWN_CMD\n",
        b"OTA:START",
        {
            b"OTA:START": [b"OTA:READY\n"],
            b"OTA:DATA:0:": [b"OTA:ACK:0\n"],
            b"OTA:COMMIT": [b"OTA:OK\n"],
        },
    )

    async def go() -> bool:
        client = OTAClient(CannedTransport(answer), ClientOptions(control_timeout=1.0))
        await client.start()
        assert await client.hello() is None
        return await client.send_file_v1(FileImage("app.py", b"abc", "1.0.0"))

    # was: the late UNKNOWN_CMD taken for START's answer, a DeviceError
    assert run(go()) is True


def test_unknown_cmd_to_start_without_a_resent_hello_is_an_error() -> None:
    async def go() -> None:
        client = await canned_client(
            {
                b"OTA:HELLO": [b"OTA:ERR:UNKNOWN_CMD\n"],
                b"OTA:START": [b"OTA:ERR:UNKNOWN_CMD\n"],
            }
        )
        assert await client.hello() is None
        with pytest.raises(DeviceError):
            await client.send_file_v1(FileImage("app.py", b"abc", "1.0.0"))

    run(go())


@pytest.mark.parametrize("window", [1, 4])
def test_a_slow_steady_link_draws_no_spurious_resends(
    board_fs: Path, window: int
) -> None:
    """100 ms each way (a Wi-Fi proxy): acknowledgements arrive one round trip
    after each line, so a timeout without a margin would resend every line."""
    board = LoopbackBoard(v1_only=True)
    data = bytes(range(256)) * 12

    async def go() -> OTAClient:
        client = await started(
            board, Link(latency=0.1), v1_window=window, max_chunk=100
        )
        assert await client.hello() is None
        assert await client.send_file_v1(FileImage("app.py", data, "1.0.1"))
        return client

    client = run(go())
    assert client.rtt.srtt is not None
    assert client.rtt.srtt > 0.2
    assert client.stats.timeouts == 0
    assert client.stats.resent == 0
    assert (board_fs / "app.py").read_bytes() == data


# -- the v1 application's version (the probe Home Assistant uses) ------------


@pytest.mark.parametrize(
    ("answer", "version"),
    [
        ([b"VERSION:1.2.3\n"], "1.2.3"),
        ([b"PONG\n", b"VERSION: 2.0 \n"], "2.0"),  # other app lines pass by
        ([b"VERSION:unknown\n"], None),
        ([b"VERSION:\n"], None),
        ([b"VERSION:1,2|x\n"], None),  # a text the client cannot use
        ([], None),  # an application without the command: bounded wait
    ],
)
def test_ask_v1_version(answer: list[bytes], version: str | None) -> None:
    seen: list[str] = []

    async def go() -> tuple[str | None, float]:
        transport = CannedTransport(canned({b"VERSION\n": answer}))
        client = OTAClient(
            transport, ClientOptions(control_timeout=2.0), on_app_line=seen.append
        )
        await client.start()
        loop = asyncio.get_running_loop()
        begin = loop.time()
        got = await client.ask_v1_version()
        assert transport.written == [(b"VERSION\n", True)]
        return got, loop.time() - begin

    got, took = run(go())
    assert got == version
    assert took <= 2.0
    assert len(seen) == len(answer)  # the application still sees its lines


def test_ask_v1_version_on_a_dropped_link() -> None:
    async def go() -> None:
        client = await canned_client({b"VERSION\n": "disconnect"})
        with pytest.raises(DisconnectedError):
            await client.ask_v1_version()

    run(go())


def first_window(
    hello: dict[str, Any], data: bytes = b"x" * 2000, **send: Any
) -> list[bytes]:
    """The data writes of a file to a board that never acknowledges."""
    replies: dict[bytes, list[bytes] | str] = {
        b"OTA:HELLO": [b"OTA:HELLO:" + json.dumps(hello).encode() + b"\n"],
        b"OTA:FILE": [b"OTA:READY:0:0123456789abcdef\n"],
    }  # the data goes unanswered: only the first window goes out

    async def go() -> list[tuple[bytes, bool]]:
        transport = CannedTransport(canned(replies))
        client = OTAClient(transport, ClientOptions(**send))
        await client.start()
        await client.hello()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):  # before the first retransmit
                await client.send_file(FileImage("app.py", data))
        return transport.written

    return [data for data, response in run(go()) if not response]


def test_a_requested_window_never_exceeds_the_boards() -> None:
    """The board advertises `win` 4: asking for 10 still keeps 4 in flight."""
    assert len(first_window(HELLO, window=10)) == HELLO["win"]


def test_binary_frames_use_the_boards_frame_window_and_length() -> None:
    """HELLO `fwin` 6, `fmax` 64: six frames of at most 64 bytes go out."""
    frames = first_window({**HELLO, "enc": ["hex", "bin"], "fwin": 6, "fmax": 64})
    assert [len(f) for f in frames] == [64] * 6
    assert [int.from_bytes(f[3:7], "little") for f in frames] == [
        57 * i for i in range(6)
    ]


DEFLATE_HELLO = {
    **HELLO,
    "line": 512,
    "enc": ["hex", "b64", "bin"],
    "fwin": 6,
    "fmax": 256,
    "deflate": {"wbits": 9, "max": 1024},
}


def test_source_goes_deflated_to_a_board_that_offers_it() -> None:
    source = source_bytes(8000)
    frames = first_window(DEFLATE_HELLO, source)
    assert len(frames) == 6
    assert {f[0] for f in frames} == {0xFE}
    pos = 0
    for frame in frames:  # contiguous, whole streams, at most fmax
        assert len(frame) <= 244
        count = int.from_bytes(frame[7:9], "little")
        assert int.from_bytes(frame[3:7], "little") == pos
        assert zlib.decompress(frame[9:], -9) == source[pos : pos + count]
        pos += count
    assert pos > 6 * 237 * 1.4  # more file per write than plain frames carry


@pytest.mark.parametrize(
    ("hello", "send"),
    [
        pytest.param(DEFLATE_HELLO, {"compress": False}, id="compress-off"),
        pytest.param({**DEFLATE_HELLO, "deflate": None}, {}, id="not-offered"),
        pytest.param(
            {**DEFLATE_HELLO, "deflate": {"wbits": 9}}, {}, id="malformed-offer"
        ),
    ],
)
def test_plain_frames_without_compression(
    hello: dict[str, Any], send: dict[str, Any]
) -> None:
    frames = first_window(hello, source_bytes(8000), **send)
    assert {f[0] for f in frames} == {0xFF}
    assert [int.from_bytes(f[3:7], "little") for f in frames] == [
        237 * i for i in range(6)
    ]


def test_lines_are_never_deflated() -> None:
    """Deflated frames are binary: base64 lines stay as they were."""
    lines = first_window(DEFLATE_HELLO, source_bytes(8000), encoding="b64")
    assert all(line.startswith(b"OTA:D:") for line in lines)


def test_max_chunk_bounds_deflated_frames_too() -> None:
    frames = first_window(DEFLATE_HELLO, source_bytes(8000), max_chunk=100)
    assert {f[0] for f in frames} == {0xFE}
    assert max(len(f) for f in frames) <= 107


def test_a_control_line_that_fits_exactly_goes_in_one_write() -> None:
    replies: dict[bytes, list[bytes] | str] = {
        b"OTA:HELLO": [HELLO_LINE],
        b"OTA:ABORT": [b"OTA:ABORTED\n"],
    }

    async def go() -> list[tuple[bytes, bool]]:
        transport = CannedTransport(canned(replies), max_write=len(b"OTA:HELLO\n"))
        client = OTAClient(transport)
        await client.start()
        await client.hello()  # protocol unknown yet: must fit one write
        await client.abort()  # v2: a longer line could be split, this one fits
        return transport.written

    assert run(go()) == [(b"OTA:HELLO\n", True), (b"OTA:ABORT\n", True)]


# -- a proxy loses notifications ---------------------------------------------


def in_turn(
    replies: dict[bytes, list[list[bytes]]],
) -> tuple[Callable[[bytes], list[bytes] | str], list[bytes]]:
    """The n-th line with a prefix gets that prefix's n-th answer (the last
    one repeats); also returns the list of lines written."""
    seen: dict[bytes, int] = {}
    written: list[bytes] = []

    def answer(line: bytes) -> list[bytes] | str:
        written.append(line)
        for prefix, answers in replies.items():
            if line.startswith(prefix):
                n = seen.get(prefix, 0)
                seen[prefix] = n + 1
                return answers[min(n, len(answers) - 1)]
        return []

    return answer, written


# HELLO_LINE in three notifications, as a board with a small MTU sends it.
HELLO_PARTS = [HELLO_LINE[:60], HELLO_LINE[60:120], HELLO_LINE[120:]]


@pytest.mark.parametrize(
    "damaged",
    [
        pytest.param(HELLO_PARTS[:2], id="last-part-lost"),
        pytest.param([HELLO_PARTS[0], HELLO_PARTS[2]], id="middle-part-lost"),
    ],
)
def test_a_hello_reply_that_lost_a_part_is_asked_again(damaged: list[bytes]) -> None:
    """Was: the damaged reply glued onto the next, InvalidBoardInfoError."""
    answer, written = in_turn({b"OTA:HELLO": [damaged, HELLO_PARTS]})

    async def go() -> OTAClient:
        client = OTAClient(CannedTransport(answer), ClientOptions(control_timeout=1.0))
        await client.start()
        info = await client.hello()
        assert info is not None
        assert info.nonce == HELLO["nonce"]
        return client

    client = run(go())
    assert written == [b"OTA:HELLO\n"] * 2
    assert client.stats.damaged == 1


def test_a_hello_reply_damaged_every_time_still_fails() -> None:
    """Bounded: a board whose HELLO never parses is an error, not a loop."""
    answer, written = in_turn({b"OTA:HELLO": [HELLO_PARTS[::2]]})

    async def go() -> None:
        client = OTAClient(
            CannedTransport(answer),
            ClientOptions(control_timeout=1.0, control_attempts=3),
        )
        await client.start()
        with pytest.raises(InvalidBoardInfoError):
            await client.hello()

    run(go())
    assert written == [b"OTA:HELLO\n"] * 3


def test_a_late_damaged_hello_reply_is_skipped_while_waiting_for_ready() -> None:
    """The first HELLO's reply comes after the timeout, and damaged: it is no
    answer to FILE (was: a ProtocolError that ended the transfer)."""
    late = [HELLO_PARTS[0] + HELLO_PARTS[2]]
    answer, _ = in_turn(
        {
            b"OTA:HELLO": [[], HELLO_PARTS],
            b"OTA:FILE": [[*late, b"OTA:READY:0:0123456789abcdef\n"]],
            b"OTA:D:0:": [[b"OTA:A:3\n"]],
        }
    )

    async def go() -> tuple[int, OTAClient]:
        client = OTAClient(CannedTransport(answer), ClientOptions(control_timeout=1.0))
        await client.start()
        assert await client.hello() is not None
        return await client.send_file(FileImage("app.py", b"abc")), client

    offset, client = run(go())
    assert offset == 0
    assert client.stats.damaged == 1


V1_FILE = FileImage("app.py", b"abc", "1.0.0")
V1_REST: dict[bytes, list[list[bytes]]] = {
    b"OTA:HELLO": [[b"OTA:ERR:UNKNOWN_CMD\n"]],
    b"OTA:ABORT": [[b"OTA:ABORTED\n"]],
    b"OTA:DATA:0:": [[b"OTA:ACK:0\n"]],
    b"OTA:COMMIT": [[b"OTA:OK\n"]],
}


def test_v1_start_whose_ready_was_lost_is_aborted_and_sent_again() -> None:
    """READY lost: the resent START finds the board armed by the first (BUSY);
    ABORT disarms it and a fresh START goes on (was: RejectedError BUSY)."""
    answer, written = in_turn(
        {b"OTA:START": [[], [b"OTA:REJECT:BUSY\n"], [b"OTA:READY\n"]], **V1_REST}
    )

    async def go() -> bool:
        client = OTAClient(CannedTransport(answer), ClientOptions(control_timeout=1.0))
        await client.start()
        assert await client.hello() is None
        return await client.send_file_v1(V1_FILE)

    assert run(go()) is True
    controls = [line.split(b":")[1] for line in written if b":DATA:" not in line]
    assert controls == [
        b"HELLO\n",
        b"START",
        b"START",
        b"ABORT\n",
        b"START",
        b"COMMIT\n",
    ]


@pytest.mark.parametrize(
    ("starts", "aborts"),
    [
        pytest.param([[b"OTA:REJECT:BUSY\n"]], 0, id="another-transfer"),
        pytest.param([[], [b"OTA:REJECT:BUSY\n"]] * 3, 2, id="ready-lost-every-time"),
    ],
)
def test_v1_busy_is_final_when_not_our_own_or_bounded(
    starts: list[list[bytes]], aborts: int
) -> None:
    """BUSY to a START sent once is another transfer: no ABORT. After our own
    resend, ABORT and START again, at most control_attempts STARTs in all."""
    answer, written = in_turn({b"OTA:START": starts, **V1_REST})

    async def go() -> None:
        client = OTAClient(
            CannedTransport(answer),
            ClientOptions(control_timeout=1.0, control_attempts=3),
        )
        await client.start()
        assert await client.hello() is None
        with pytest.raises(RejectedError) as err:
            await client.send_file_v1(V1_FILE)
        assert err.value.reason == "BUSY"

    run(go())
    assert written.count(b"OTA:ABORT\n") == aborts


def test_the_totals_of_an_install_add_every_count_of_its_sessions() -> None:
    counts = fields(SessionStats)
    session = SessionStats(**{each.name: n for n, each in enumerate(counts, 1)})
    totals = SessionStats()
    totals.add_session(session)
    totals.add_session(session)
    for each in counts:
        assert getattr(totals, each.name) == 2 * getattr(session, each.name)


def test_a_session_counts_its_transfers_but_not_their_lines_twice() -> None:
    session = SessionStats(lines_sent=5)
    transfer = SenderStats(lines_sent=5, resent=1, rewinds=2, timeouts=3, duplicates=4)
    session.add(transfer)
    assert session == SessionStats(
        lines_sent=5, resent=1, rewinds=2, timeouts=3, duplicates=4
    )
