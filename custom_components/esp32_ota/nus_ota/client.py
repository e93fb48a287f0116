"""OTAClient: one connection's conversation with a board, over any Transport.

The client turns notifications into typed replies, sends control lines
(HELLO, FILE, APPLY, START, COMMIT, ABORT) with write-with-response and
retries them on timeout, and drives the sans-I/O senders of `transfer` for
the data lines, which go without response. Application lines (anything not
starting with `OTA:`) are handed to `on_app_line` and otherwise ignored.

Every wait is bounded: control replies by `control_timeout` per attempt,
data by the retransmit timer (the sender's progress watchdog), writes and
subscribing by `control_timeout`, and a dropped link ends any wait at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Final, Self

from .auth import (
    Credentials,
    abort_message,
    apply_message,
    file_message,
    hello_signed,
)
from .board_info import usable_version
from .compress import DeflateSender, deflate_frames
from .errors import (
    ContentRefusedError,
    CrcMismatchError,
    DeviceError,
    DisconnectedError,
    InvalidBoardInfoError,
    InvalidTokenError,
    LineTooLongError,
    LinkTooSmallError,
    NoReplyError,
    NotSupportedError,
    OTAError,
    ProtocolError,
    RejectedError,
    SizeMismatchError,
    TransportError,
)
from .lines import (
    DEFAULT_MAX_LINE,
    FRAME_HEAD,
    FRAME_MAX_PAYLOAD,
    LineAssembler,
    command,
    join_files,
    largest_chunk,
    valid_token,
)
from .replies import (
    Aborted,
    CrcError,
    Error,
    Hello,
    Ok,
    Ready,
    Reject,
    Reply,
    SizeError,
    parse_reply,
)
from .transfer import (
    DATA_REPLIES,
    DEFAULT_MAX_RETRIES,
    RttEstimator,
    SenderStats,
    SeqSender,
    WindowSender,
)

if TYPE_CHECKING:
    from .board_info import BoardInfo
    from .transport import Transport

DEFAULT_CONTROL_TIMEOUT: Final = 5.0
DEFAULT_CONTROL_ATTEMPTS: Final = 3
DEFAULT_V1_WINDOW: Final = 4

# The v1 application's version query and the start of its answer.
_VERSION_QUERY: Final = b"VERSION\n"
_VERSION_REPLY: Final = "VERSION:"

type ProgressCallback = Callable[[int, int], None]
"""Called with (acknowledged bytes, total bytes)."""

type AppLineCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client talks to a board: its patience, and how file data goes."""

    control_timeout: float = DEFAULT_CONTROL_TIMEOUT  # seconds per control line sent
    control_attempts: int = DEFAULT_CONTROL_ATTEMPTS  # sends of one control line
    max_retries: int = DEFAULT_MAX_RETRIES  # go-backs without progress before giving up
    window: int | None = None  # v2 lines in flight, at most what the board allows
    v1_window: int = DEFAULT_V1_WINDOW  # 1 = classic stop-and-wait
    encoding: str | None = None  # v2 "bin", "b64" or "hex"; None: the best offered
    max_chunk: int | None = None  # cap on data bytes per line
    compress: bool = True  # deflated frames to a board that offers them, if it pays


@dataclass(frozen=True, slots=True)
class FileImage:
    """One file to install: name on the board, content and version."""

    name: str
    data: bytes
    version: str = ""
    crc: str = field(init=False)
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        """Compute the CRC-32 (zlib polynomial) and SHA-256 once, as the board does."""
        object.__setattr__(self, "crc", f"{zlib.crc32(self.data) & 0xFFFFFFFF:08x}")
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)


@dataclass(slots=True)
class SessionStats(SenderStats):
    """What one connection cost: its lines, and its data transfers' counts."""

    wire_bytes: int = 0
    control_retries: int = 0
    damaged: int = 0  # replies that lost a part on the link, dropped

    @property
    def retries(self) -> int:
        """Count recoveries: go-backs of the data window and resent control lines."""
        return self.rewinds + self.control_retries

    def add(self, sender: SenderStats) -> None:
        """Fold a finished (or failed) data transfer into the totals.

        Not its lines_sent: the connection counts its lines as it writes them.
        """
        self.resent += sender.resent
        self.rewinds += sender.rewinds
        self.timeouts += sender.timeouts
        self.duplicates += sender.duplicates

    def add_session(self, other: SessionStats) -> None:
        """Add every count of another connection's (totals of an install)."""
        for each in fields(self):
            setattr(
                self, each.name, getattr(self, each.name) + getattr(other, each.name)
            )


def choose_encoding(info: BoardInfo, wanted: str | None = None) -> str:
    """Pick binary frames when offered (7 bytes a write), else `b64`, else `hex`."""
    if wanted is not None:
        if wanted not in info.encodings:
            raise NotSupportedError(f"the board does not accept {wanted} data")
        return wanted
    for enc in ("bin", "b64"):
        if enc in info.encodings:
            return enc
    return "hex"


def signs_content(info: BoardInfo) -> bool:
    """Tell whether FILE and APPLY carry and sign SHA-256 hashes of the content.

    Only with a key: without one a relay could rewrite the hash with the data,
    so keyless sessions keep the CRC-32 alone (and the board hashes nothing).
    """
    return info.auth == "hmac" and info.sha256


def v2_chunk(limit: int, size: int, encoding: str, max_chunk: int | None = None) -> int:
    """Bytes per `D` line or frame so each one of a `size`-byte file fits `limit`."""
    if encoding == "bin":
        prefix = FRAME_HEAD
        chunk = min(limit - FRAME_HEAD, FRAME_MAX_PAYLOAD)
    else:
        prefix = len("OTA:D::") + len(str(size))
        chunk = largest_chunk(limit, prefix, encoding)
    if chunk < 1:
        raise LinkTooSmallError(prefix + 5, limit)
    return chunk if max_chunk is None else max(1, min(chunk, max_chunk))


def v1_chunk(limit: int, size: int, max_chunk: int | None = None) -> int:
    """Bytes per v1 `DATA` line (hex) so that every line fits in `limit`."""
    last_seq = max(0, size - 1)  # at worst one byte per chunk
    prefix = len("OTA:DATA::") + len(str(last_seq))
    chunk = largest_chunk(limit, prefix, "hex")
    if chunk < 1:
        raise LinkTooSmallError(prefix + 3, limit)
    return chunk if max_chunk is None else max(1, min(chunk, max_chunk))


class OTAClient:
    """The OTA conversation over one connected transport."""

    def __init__(
        self,
        transport: Transport,
        options: ClientOptions | None = None,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        rtt: RttEstimator | None = None,
        on_app_line: AppLineCallback | None = None,
    ) -> None:
        """One `rtt` may serve all connections of an install."""
        self.transport = transport
        self.options = options or ClientOptions()
        self.rtt = rtt or RttEstimator()
        self.stats = SessionStats()
        self.info: BoardInfo | None = None
        self.authenticated = False  # the last HELLO was signed (hello(key=...))
        self.protocol: int | None = None
        self._on_app_line = on_app_line
        self._assembler = LineAssembler(max_line)
        self._queue: asyncio.Queue[Reply | OTAError] = asyncio.Queue()
        self._lost = False
        self._closed = False
        self._nonce: str | None = None
        # A control line was resent since the last clean HELLO: a late reply
        # to a first copy may have desynchronised the nonce or armed the board.
        self._resent = False
        self._late_hellos = 0  # answers to resent HELLOs that may still come
        self._copies = 0  # copies of the last control line sent before its answer
        self._version_reply: asyncio.Future[str] | None = None
        # The board could not decode a deflated frame: the rest goes plain.
        self.deflate_refused = False

    # -- link plumbing
    async def start(self) -> None:
        """Subscribe to the board's notifications (bounded by the control timeout)."""
        try:
            async with asyncio.timeout(self.options.control_timeout):
                await self.transport.start(self._on_data, self._on_disconnect)
        except TimeoutError as err:
            raise TransportError(
                "subscribing to the board's notifications timed out"
            ) from err

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    async def close(self) -> None:
        """Release the connection (once)."""
        self._lost = True
        if not self._closed:
            self._closed = True
            await self.transport.close()

    async def __aenter__(self) -> Self:
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close on exit, whatever happened."""
        await self.close()

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _on_data(self, data: bytes) -> None:
        assembler = self._assembler
        overflows, damaged = assembler.overflows, assembler.damaged
        lines = assembler.feed(data)
        self.stats.damaged += assembler.damaged - damaged
        for line in lines:
            try:
                reply = parse_reply(line)
            except ProtocolError as err:
                self._queue.put_nowait(err)
                continue
            if reply is None:
                self._check_version_reply(line)
                if self._on_app_line is not None:
                    self._on_app_line(line)
            else:
                self._queue.put_nowait(reply)
        if assembler.overflows != overflows:
            self._queue.put_nowait(
                LineTooLongError(
                    f"board sent a line longer than {assembler.max_line} bytes"
                )
            )

    def _check_version_reply(self, line: str) -> None:
        waiter = self._version_reply
        if waiter is None or waiter.done() or not line.startswith(_VERSION_REPLY):
            return
        waiter.set_result(line.removeprefix(_VERSION_REPLY).strip())

    def _on_disconnect(self) -> None:
        self._lost = True
        self._queue.put_nowait(DisconnectedError("the board disconnected"))
        waiter = self._version_reply
        if waiter is not None and not waiter.done():
            waiter.set_exception(DisconnectedError("the board disconnected"))

    async def _next_reply(self, wait: float, *, hello: bool = False) -> Reply | None:
        """Return the next reply, None after `wait` s; raise what the link reported.

        A HELLO reply that lost a part (InvalidBoardInfoError) is raised only
        while a HELLO is awaited (`hello`); otherwise it is the late answer
        to an earlier HELLO, skipped like a whole one (`_stale`).
        """
        until = self._now() + wait
        while True:
            if self._queue.empty():
                if self._lost or not self.transport.is_connected:
                    raise DisconnectedError("the link is down")
                try:
                    async with asyncio.timeout(max(0.0, until - self._now())):
                        item = await self._queue.get()
                except TimeoutError:
                    return None
            else:
                item = self._queue.get_nowait()
            if not self._skipped(item, hello=hello):
                break
        if isinstance(item, OTAError):
            raise item
        return item

    def _take_nowait(self) -> Reply | None:
        """Return a reply already queued, without waiting."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if self._skipped(item, hello=False):
                continue
            if isinstance(item, OTAError):
                raise item
            return item
        return None

    def _skipped(self, item: Reply | OTAError, *, hello: bool) -> bool:
        """Tell a damaged HELLO reply that nobody awaits (counted in `damaged`)."""
        if hello or not isinstance(item, InvalidBoardInfoError):
            return False
        self.stats.damaged += 1
        return True

    async def _write(self, line: bytes, *, response: bool) -> None:
        if self._lost or not self.transport.is_connected:
            raise DisconnectedError("the link is down")
        limit = self.transport.max_write
        if len(line) <= limit:
            pieces = [line]
        elif response and self.protocol == 2:
            # A v2 board reassembles lines across writes; acknowledged writes
            # cannot be lost, so a long control line may span several.
            pieces = [line[i : i + limit] for i in range(0, len(line), limit)]
        else:
            raise LinkTooSmallError(len(line), limit)
        try:
            # A stack that never completes a write must not hang the install.
            async with asyncio.timeout(self.options.control_timeout):
                for piece in pieces:
                    await self.transport.write(piece, response=response)
        except TimeoutError as err:
            raise TransportError("a write to the board timed out") from err
        self.stats.lines_sent += 1
        self.stats.wire_bytes += len(line)

    async def _write_data(self, lines: list[bytes]) -> None:
        """Write data lines without response, one per write, under one timeout.

        One timeout per batch rather than per line: a data line costs the
        Home Assistant host a few microseconds less (see scripts/bench).
        """
        if self._lost or not self.transport.is_connected:
            raise DisconnectedError("the link is down")
        limit = self.transport.max_write
        stats = self.stats
        try:
            async with asyncio.timeout(self.options.control_timeout):
                for line in lines:
                    if len(line) > limit:
                        raise LinkTooSmallError(len(line), limit)
                    await self.transport.write(line, response=False)
                    stats.lines_sent += 1
                    stats.wire_bytes += len(line)
        except TimeoutError as err:
            raise TransportError("a write to the board timed out") from err

    async def _request(
        self, build: Callable[[int], Awaitable[bytes]], name: str
    ) -> Reply:
        """Send a control line (rebuilt per attempt) and return the board's answer."""
        timeout = self.options.control_timeout
        attempts = self.options.control_attempts
        for attempt in range(attempts):
            if attempt:
                self.stats.control_retries += 1
            line = await build(attempt)  # may run a HELLO of its own
            if attempt:
                self._resent = True
            while self._take_nowait() is not None:
                pass  # answers to earlier lines: stale now
            deadline = self._now() + timeout
            await self._write(line, response=True)
            # No RTT sample here: HELLO and FILE do flash work on the board
            # and would inflate the data path's estimate.
            try:
                while (
                    reply := await self._next_reply(
                        deadline - self._now(), hello=name == "HELLO"
                    )
                ) is not None:
                    if not self._stale(reply, name):
                        self._copies = attempt + 1
                        if name == "HELLO":
                            # Each HELLO sent before this one may still be answered.
                            self._late_hellos = attempt
                        return reply
            except ProtocolError as err:
                # A proxy lost part of the reply (or of a late one): HELLO
                # changes nothing on the board, so ask again at once. A loss
                # makes a line shorter, never too long.
                damaged = name == "HELLO" and not isinstance(err, LineTooLongError)
                if not damaged or attempt + 1 >= attempts:
                    raise
                self.stats.damaged += 1
        raise NoReplyError(name, timeout, attempts)

    def _stale(self, reply: Reply, name: str) -> bool:
        """Tell a late answer to an earlier line (a resent chunk or HELLO).

        A link keeps order, so the answer to a HELLO that timed out arrives
        before the resent HELLO's, which the client then takes for its
        answer: the resent one's answer comes late, even while the next
        command waits. From a v2 board that is a Hello, from a v1 board the
        `ERR:UNKNOWN_CMD` that no other v1 command draws.
        """
        if isinstance(reply, DATA_REPLIES):
            return True
        if name == "HELLO":
            return False
        if isinstance(reply, Hello):
            return True
        late = self._late_hellos
        if late and isinstance(reply, Error) and reply.code == "UNKNOWN_CMD":
            self._late_hellos = late - 1
            return True
        return False

    async def _simple(self, *fields: str) -> Reply:
        line = command(*fields)

        async def build(_attempt: int) -> bytes:
            return line

        return await self._request(build, fields[0])

    async def _pump(
        self, sender: WindowSender | SeqSender, progress: Callable[[int], None] | None
    ) -> None:
        """Drive a data sender until the board acknowledged everything.

        Progress gets the bytes the board holds: first where the sender
        starts (a resume offset, or 0), then every change.
        """
        reported = sender.acked_bytes
        if progress is not None:
            progress(reported)
        now = self._now
        timeout = self.options.control_timeout
        try:
            while not sender.done:
                lines = sender.poll(now())
                if lines:
                    await self._write_data(lines)
                deadline = sender.deadline
                wait = timeout if deadline is None else deadline - now()
                reply = await self._next_reply(wait)
                while reply is not None:
                    sender.on_reply(reply, now())
                    reply = self._take_nowait()
                if progress is not None and sender.acked_bytes != reported:
                    reported = sender.acked_bytes
                    progress(reported)
        finally:
            self.stats.add(sender.stats)

    # -- protocol
    async def hello(self, *, key: str | None = None) -> BoardInfo | None:
        """Probe the board: its BoardInfo (v2), or None for a v1 board.

        With `key` the client sends a fresh challenge, and `authenticated`
        says whether the reply carries the board's signature over it: what
        it reports (a rollback, say) then comes from a board with the key,
        not from a relay. Boards before the signature leave it False.
        """
        self._resent = False
        self.authenticated = False
        challenge = secrets.token_hex(16) if key is not None else None
        reply = await self._simple("HELLO", *([challenge] if challenge else []))
        if isinstance(reply, Hello):
            if key is not None and challenge is not None:
                self.authenticated = hello_signed(key, challenge, reply.text)
            self.info = reply.info
            self._nonce = reply.info.nonce
            self.protocol = 2
            return reply.info
        if isinstance(reply, Error) and reply.code == "UNKNOWN_CMD":
            self.protocol = 1
            return None
        raise ProtocolError(f"unexpected reply to HELLO: {reply}")

    async def ask_v1_version(self) -> str | None:
        """Ask a v1 board's application its version: `VERSION` → `VERSION:<x>`.

        The v1 OTA protocol has no version query; the application of the v1
        world answers the line `VERSION` with `VERSION:<config.VERSION>` (or
        `VERSION:unknown`). Returns the text when usable (`usable_version`),
        None when the application says `unknown`, sends a text the client
        cannot use, or does not answer within the control timeout (an
        application without that command). A dropped link raises.
        """
        loop = asyncio.get_running_loop()
        self._version_reply = waiter = loop.create_future()
        try:
            await self._write(_VERSION_QUERY, response=True)
            async with asyncio.timeout(self.options.control_timeout):
                text = await waiter
        except TimeoutError:
            return None
        finally:
            self._version_reply = None
        return None if text == "unknown" else usable_version(text)

    def _board(self) -> BoardInfo:
        if self.info is None or self.protocol != 2:
            raise NotSupportedError("this needs a v2 board (call hello() first)")
        return self.info

    async def send_file(
        self,
        image: FileImage,
        *,
        credentials: Credentials | None = None,
        force: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """v2: stage one file (FILE, READY, D...); returns the offset it resumed from.

        `force` passes the board's downgrade guard. With binary frames and a
        board that offers `deflate`, a file that compresses goes as deflated
        frames unless the options say `compress=False` (see
        `compress.deflate_frames`) or the board could not decode a deflated
        frame earlier in this session. Progress gets the bytes of this file the
        board holds.
        """
        info = self._board()
        options = self.options
        creds = credentials or Credentials()
        enc = choose_encoding(info, options.encoding)
        flags = "f" if force else "-"
        sha256 = image.sha256 if signs_content(info) else None

        async def build(attempt: int) -> bytes:
            if attempt:
                await self.hello()  # the lost FILE may have used up the nonce
            nonce = self._nonce or ""
            message = file_message(
                nonce,
                image.name,
                image.size,
                image.crc,
                image.version,
                enc,
                flags,
                sha256,
            )
            auth = creds.field(info.auth, message)
            fields = [image.name, str(image.size), image.crc, image.version, enc]
            fields.append(flags)
            if sha256 is not None:
                fields.append(sha256)
            return command("FILE", *fields, auth)

        reply = await self._request(build, "FILE")
        if not isinstance(reply, Ready) or reply.offset is None or reply.nonce is None:
            raise self._failure(reply, "FILE", image.name)
        self._nonce = reply.nonce
        if reply.offset > image.size:
            raise ProtocolError(
                f"board resumes {image.name} at {reply.offset} of {image.size}"
            )
        limit = min(self.transport.max_write, info.max_line)
        board_window = info.window
        if enc == "bin" and info.frame_window and info.frame_max:
            limit = min(limit, info.frame_max)
            board_window = info.frame_window
        chunk = v2_chunk(limit, image.size, enc, options.max_chunk)
        window = min(board_window, options.window or board_window)
        frames = None
        if enc == "bin" and options.compress and not self.deflate_refused:
            frames = deflate_frames(
                image.data,
                start=reply.offset,
                limit=chunk + FRAME_HEAD,
                offer=info.deflate,
            )
        sender: WindowSender
        if frames is None:
            sender = WindowSender(
                image.name,
                image.data,
                chunk=chunk,
                encoding=enc,
                window=window,
                start=reply.offset,
                rtt=self.rtt,
                max_retries=options.max_retries,
            )
        else:
            sender = DeflateSender(
                image.name,
                frames,
                window=window,
                start=reply.offset,
                rtt=self.rtt,
                max_retries=options.max_retries,
            )
        try:
            await self._pump(sender, progress)
        except DeviceError as err:
            if err.code == "HASH":
                raise ContentRefusedError(image.name) from err
            raise
        finally:
            if frames is not None and frames.refused:
                self.deflate_refused = True
        return reply.offset

    async def apply(
        self, images: Sequence[FileImage], credentials: Credentials | None = None
    ) -> bool:
        """v2: apply staged files. True on `OK`; False when the link dropped instead.

        The board resets right after `OK`, so a dropped link after APPLY is
        the normal way to learn it worked; verify after it comes back. With
        a key the MAC covers the SHA-256 of every file, so the board applies
        only the content we signed.
        """
        info = self._board()
        creds = credentials or Credentials()
        names = [image.name for image in images]
        files = join_files(names)
        hashes = [i.sha256 for i in images] if signs_content(info) else None

        async def build(attempt: int) -> bytes:
            if attempt:
                await self.hello()
            message = apply_message(self._nonce or "", names, hashes)
            return command("APPLY", files, creds.field(info.auth, message))

        try:
            reply = await self._request(build, "APPLY")
        except DisconnectedError:
            return False
        if isinstance(reply, Ok):
            return True
        raise self._failure(reply, "APPLY", files)

    async def send_file_v1(
        self,
        image: FileImage,
        *,
        token: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> bool:
        """v1: START, DATA..., COMMIT. True on `OK`, False on a disconnect instead.

        The board resets after every commit, so each file needs a new connection.
        A `v1_window` of 1 is the classic stop-and-wait; a small one pipelines.
        """
        if image.size == 0:
            raise NotSupportedError("a v1 board cannot commit an empty file")
        options = self.options
        chunk = v1_chunk(self.transport.max_write, image.size, options.max_chunk)
        fields = ["START", image.name, str(image.size), image.crc]
        if image.version or token:
            if not image.version:
                raise ValueError("a v1 token needs a version in START")
            fields += [image.version, str(chunk)]
            if token:
                if not valid_token(token):
                    raise InvalidTokenError
                fields.append(token)
        reply = await self._start_v1(fields)
        if not isinstance(reply, Ready) or reply.offset is not None:
            raise self._failure(reply, "START", image.name)
        sender = SeqSender(
            image.name,
            image.data,
            chunk=chunk,
            window=options.v1_window,
            rtt=self.rtt,
            max_retries=options.max_retries,
        )
        await self._pump(sender, progress)
        try:
            reply = await self._simple("COMMIT")
        except DisconnectedError:
            return False
        if isinstance(reply, Ok):
            return True
        raise self._failure(reply, "COMMIT", image.name)

    async def _start_v1(self, fields: list[str]) -> Reply:
        """START; when our own resent copy draws BUSY, disarm the board and retry.

        A lost READY makes the client send START again on the same
        connection; the board, armed by the first copy, answers BUSY. As
        v1 keeps one connection and aborts on a disconnect, that transfer
        is ours: ABORT disarms it (ABORTED, temp file deleted) and a fresh
        START follows, at most `control_attempts` times. A BUSY to a START
        sent once is another transfer's and is returned.
        """
        for attempt in range(self.options.control_attempts):
            if attempt:
                await self.abort()
            reply = await self._simple(*fields)
            busy = isinstance(reply, Reject) and reply.reason == "BUSY"
            if not busy or self._copies < 2:
                break
        return reply

    async def abort(self, credentials: Credentials | None = None) -> None:
        """Discard every transfer and staged file on the board.

        A v2 board with a key wants ABORT signed: call hello() first.
        """
        info = self.info if self.protocol == 2 else None
        if info is not None and info.auth == "hmac":
            creds = credentials or Credentials()

            async def build(attempt: int) -> bytes:
                if attempt:
                    await self.hello()  # the lost ABORT may have used up the nonce
                mac = creds.field("hmac", abort_message(self._nonce or ""))
                return command("ABORT", mac)

            reply = await self._request(build, "ABORT")
            self._nonce = None  # used up, whatever the answer
        else:
            reply = await self._simple("ABORT")
        if not isinstance(reply, Aborted):
            raise self._failure(reply, "ABORT", "")

    def _failure(self, reply: Reply, name: str, file: str) -> OTAError:
        """Build the exception for a reply that is not the success answer to `name`."""
        if isinstance(reply, Reject):
            return RejectedError(reply.reason, name, after_resend=self._resent)
        if isinstance(reply, CrcError):
            return CrcMismatchError(file, reply.got, reply.expected)
        if isinstance(reply, SizeError):
            return SizeMismatchError(file, reply.got, reply.expected)
        if isinstance(reply, Error):
            return DeviceError(reply.code, reply.detail, name)
        return ProtocolError(f"unexpected reply to {name}: {reply}")
