"""Installing a set of files on a board, start to finish.

`install()` is what Home Assistant calls. It connects through the `connect`
factory it is given (HA builds it on `establish_connection`), asks the board
what it speaks, and then:

- v2: sends only files whose CRC differs from the board's inventory, stages
  them (resuming after a dropped link), applies them as one atomic bundle,
  waits for the board to come back and checks the installed CRCs, the trial
  state and a rollback;
- v1: sends every file with START/DATA/COMMIT, reconnecting after each
  commit (the board resets), and waits for the board to come back.

Connections are closed as soon as each step is done: a proxy has only three.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from bleak.exc import BleakError

from .auth import Credentials
from .board_info import usable_version
from .client import (
    AppLineCallback,
    ClientOptions,
    FileImage,
    OTAClient,
    ProgressCallback,
    SessionStats,
)
from .errors import (
    AnsweredLikeV1Error,
    ConnectFailedError,
    DisconnectedError,
    InvalidTokenError,
    NoReplyError,
    NotInstalledError,
    OTAError,
    RejectedError,
    RolledBackError,
    TooManyRetriesError,
    TransportError,
)
from .lines import is_field, valid_token
from .transfer import RttEstimator
from .transport import Transport

if TYPE_CHECKING:
    from .board_info import BoardInfo, InstalledFile

type Connect = Callable[[], Awaitable[Transport]]
"""Returns a connected (not yet started) transport; raises on failure."""

# Link failures after which a new connection may succeed.
_RETRYABLE: Final = (
    DisconnectedError,
    NoReplyError,
    TooManyRetriesError,
    TransportError,
)
_CONNECT_ERRORS: Final = (BleakError, OSError, TimeoutError, OTAError)


@dataclass(frozen=True, slots=True)
class InstallOptions(ClientOptions):
    """How to install, and how each connection's client talks (ClientOptions).

    The defaults suit a board behind an ESPHome proxy.
    """

    auth_key: str | None = field(default=None, repr=False)  # v2 HMAC key (AUTH_KEY)
    token: str | None = field(default=None, repr=False)  # clear-text AUTH_TOKEN
    force: bool = False  # send every file and pass the downgrade guard (v2)
    # None: negotiate; 1: v1 even on a v2 board; 2: v2 only (the board is
    # known to speak v2). With a key a board must speak v2 too: a v1 answer
    # then raises AnsweredLikeV1Error and nothing (no token) is sent.
    protocol: int | None = None
    session_attempts: int = 3  # connections tried for one transfer (v2 resumes)
    connect_attempts: int = 3  # calls of `connect` before ConnectFailedError
    connect_interval: float = 2.0  # seconds between those calls
    # Bound on one call of `connect`: establish_connection gives up by itself
    # within about a minute; a factory that never returns must not hang us.
    # None: the factory bounds itself (e.g. one that queues for a proxy slot).
    connect_timeout: float | None = 120.0
    reboot_delay: float = 1.5  # seconds to let the board reset before reconnecting
    verify: bool = True  # reconnect after the reset and check what is installed


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What an install did."""

    protocol: int
    version: str
    files_sent: tuple[str, ...]
    files_skipped: tuple[str, ...]
    bytes_total: int  # size of the files sent
    bytes_sent: int  # of those, bytes the board did not hold before this install
    bytes_resumed: int  # bytes not resent because the board kept them (resume)
    wire_bytes: int  # bytes written on the link, every line and resend included
    seconds: float  # the whole install, reconnecting and checking included
    transfer_seconds: float  # from the first file command to the last commit/apply
    retries: int  # go-backs, resent control lines and reconnections
    connections: int
    applied: bool  # False when every file was already installed
    trial: bool  # the new version runs on trial (not yet confirmed by the app)
    board: BoardInfo | None  # the board as seen after the update (v2 only)


class _Run:
    """Connections, totals and progress of one install."""

    def __init__(
        self,
        connect: Connect,
        options: InstallOptions,
        progress: ProgressCallback | None,
        on_app_line: AppLineCallback | None,
    ) -> None:
        self.connect = connect
        self.options = options
        self.on_app_line = on_app_line
        self.progress = progress
        self.rtt = RttEstimator()
        self.totals = SessionStats()
        self.connections = 0
        self.reconnects = 0
        self.total = 0
        self.done: dict[str, int] = {}
        self.first_offset: dict[str, int] = {}  # per file, where this install began
        self.resumed = 0
        self.started = self.now()
        self.transfer_started = self.started
        self.transfer_ended = self.started

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def open(self, *, after_reset: bool = False) -> OTAClient:
        """Connect (with retries) and start a client."""
        options = self.options
        if after_reset and options.reboot_delay > 0:
            await asyncio.sleep(options.reboot_delay)
        last: BaseException | None = None
        for attempt in range(options.connect_attempts):
            if attempt and options.connect_interval > 0:
                await asyncio.sleep(options.connect_interval)
            try:
                async with asyncio.timeout(options.connect_timeout):
                    transport = await self.connect()
            except _CONNECT_ERRORS as err:
                last = err
                continue
            client = OTAClient(
                transport, options, rtt=self.rtt, on_app_line=self.on_app_line
            )
            try:
                await client.start()
            except _CONNECT_ERRORS as err:
                await transport.close()
                last = err
                continue
            self.connections += 1
            return client
        raise ConnectFailedError(options.connect_attempts, last)

    async def greet(
        self, *, after_reset: bool = False
    ) -> tuple[OTAClient, BoardInfo | None]:
        """Connect and ask HELLO (None for a v1 board); return the open client.

        HELLO changes nothing on the board, so when a connection loses every
        answer (NoReplyError) or drops, another one asks again, up to
        `session_attempts` connections.
        """
        attempts = self.options.session_attempts
        for attempt in range(attempts):
            client = await self.open(after_reset=after_reset and attempt == 0)
            try:
                return client, await client.hello()
            except _RETRYABLE:
                await self.close(client)
                if attempt + 1 >= attempts:
                    raise
                self.reconnects += 1
            except BaseException:
                await self.close(client)
                raise
        raise ValueError("session_attempts must be at least 1")

    async def close(self, client: OTAClient) -> None:
        """Release the connection and keep its figures (once)."""
        if client.closed:
            return
        await client.close()
        self.totals.add_session(client.stats)
        client.stats = SessionStats()
        if client.deflate_refused and self.options.compress:
            # Its decoder refused our streams: the next connections send plain.
            self.options = replace(self.options, compress=False)

    def file_progress(self, name: str) -> Callable[[int], None]:
        """Progress of one send of a file, folded into that of the whole install.

        The first call of each send is where the board resumed (READY).
        """
        first = True

        def report(have: int) -> None:
            nonlocal first
            if first:
                first = False
                self.first_offset.setdefault(name, have)
                self.resumed += have
            self.done[name] = have
            if self.progress is not None:
                self.progress(sum(self.done.values()), self.total)

        return report

    def result(
        self,
        *,
        protocol: int,
        version: str,
        sent: Sequence[FileImage],
        skipped: Sequence[str],
        applied: bool,
        board: BoardInfo | None,
    ) -> InstallResult:
        return InstallResult(
            protocol=protocol,
            version=version,
            files_sent=tuple(image.name for image in sent),
            files_skipped=tuple(skipped),
            bytes_total=sum(image.size for image in sent),
            bytes_sent=sum(i.size for i in sent) - sum(self.first_offset.values()),
            bytes_resumed=self.resumed,
            wire_bytes=self.totals.wire_bytes,
            seconds=self.now() - self.started,
            transfer_seconds=self.transfer_ended - self.transfer_started,
            retries=self.totals.retries + self.reconnects,
            connections=self.connections,
            applied=applied,
            trial=board is not None and board.trial is not None,
            board=board,
        )


async def probe(
    connect: Connect, options: InstallOptions | None = None
) -> BoardInfo | None:
    """Connect, read the board's HELLO (None for a v1 board) and disconnect."""
    run = _Run(connect, options or InstallOptions(), None, None)
    client, info = await run.greet()
    await run.close(client)
    return info


async def install(
    connect: Connect,
    files: Mapping[str, bytes],
    version: str,
    options: InstallOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    on_app_line: AppLineCallback | None = None,
) -> InstallResult:
    """Install `files` (name on the board → content) as `version`.

    Raises an OTAError subclass on failure; see errors.py.
    """
    options = options or InstallOptions()
    if version and usable_version(version) is None:
        raise ValueError(f"bad version {version!r}")
    if not files:
        raise ValueError("nothing to install")
    if bad := [name for name in files if not is_field(name)]:
        raise ValueError(f"bad file name {bad[0]!r}")
    if options.token and not valid_token(options.token):
        raise InvalidTokenError  # before connecting; the token is never quoted
    images = [FileImage(name, bytes(data), version) for name, data in files.items()]
    run = _Run(connect, options, progress, on_app_line)
    client, info = await run.greet()
    if info is None and _pinned_to_v2(options):
        await run.close(client)
        raise AnsweredLikeV1Error
    if info is None or options.protocol == 1:
        return await _install_v1(run, client, images, version)
    return await _install_v2(run, client, info, images, version)


def _pinned_to_v2(options: InstallOptions) -> bool:
    """Tell whether a v1 answer is an error (known v2, or a key to check)."""
    return options.protocol == 2 or options.auth_key is not None


def _check_before_sending(
    info: BoardInfo, images: Sequence[FileImage], creds: Credentials
) -> None:
    """Fail before sending anything when a secret is missing or a file not allowed."""
    creds.field(info.auth, "")
    if any(image.name not in info.files for image in images):
        raise RejectedError("FORBIDDEN", "FILE")


def _is_installed(info: BoardInfo, image: FileImage) -> bool:
    installed: InstalledFile | None = info.files.get(image.name)
    return (
        installed is not None
        and installed.crc == image.crc
        and installed.size == image.size
    )


async def _install_v2(
    run: _Run, client: OTAClient, info: BoardInfo, images: list[FileImage], version: str
) -> InstallResult:
    options = run.options
    creds = Credentials(options.auth_key, options.token)
    try:
        _check_before_sending(info, images, creds)
        changed = [i for i in images if options.force or not _is_installed(info, i)]
        skipped = [i.name for i in images if i not in changed]
        if not changed:
            await run.close(client)
            return run.result(
                protocol=2,
                version=version,
                sent=[],
                skipped=skipped,
                applied=False,
                board=info,
            )
        run.total = sum(image.size for image in changed)
        run.transfer_started = run.now()
        staged: set[str] = set()
        for attempt in range(options.session_attempts):
            try:
                if attempt:
                    client = await run.open()
                    run.reconnects += 1
                    again = await client.hello()
                    if again is None:
                        raise AnsweredLikeV1Error
                    staged = {n for n in staged if _still_staged(again, n, changed)}
                for image in changed:
                    if image.name in staged:
                        continue
                    await client.send_file(
                        image,
                        credentials=creds,
                        force=options.force,
                        progress=run.file_progress(image.name),
                    )
                    staged.add(image.name)
                await client.apply(changed, creds)
                run.transfer_ended = run.now()
                break
            except _RETRYABLE:
                if attempt + 1 >= options.session_attempts:
                    raise
            except RejectedError as err:
                # After a resent command, BUSY may be our own first copy that
                # armed the board, AUTH a nonce a late reply put out of step;
                # a new connection clears both (a disconnect aborts, HELLO
                # gives a fresh nonce). Without a resend they are real.
                if not (err.reason in {"BUSY", "AUTH"} and err.after_resend):
                    raise
                if attempt + 1 >= options.session_attempts:
                    raise
            finally:
                await run.close(client)
    except BaseException:
        await run.close(client)
        raise
    board = await _verify(run, changed, version, v2=True) if options.verify else None
    return run.result(
        protocol=2,
        version=version,
        sent=changed,
        skipped=skipped,
        applied=True,
        board=board,
    )


def _still_staged(info: BoardInfo, name: str, images: Sequence[FileImage]) -> bool:
    entry = info.staged.get(name)
    image = next(i for i in images if i.name == name)
    return entry is not None and entry.complete and entry.crc == image.crc


async def _verify(
    run: _Run, sent: Sequence[FileImage], version: str, *, v2: bool = False
) -> BoardInfo | None:
    """Wait for the board to come back; check the files it now has.

    V2: the update went over v2, so the board must still answer HELLO.
    """
    try:
        client, info = await run.greet(after_reset=True)
    except ConnectFailedError as err:
        raise ConnectFailedError(err.attempts, err.cause, applied=True) from err
    await run.close(client)
    if info is None:
        if v2 or _pinned_to_v2(run.options):
            raise AnsweredLikeV1Error(applied=True)
        return None  # a v1 board cannot tell what it has
    # The commit clears any older record, so one naming our version is ours
    # (an empty version travels as none at all).
    if info.rollback is not None and info.rollback.version == (version or None):
        rollback = info.rollback
        raise RolledBackError(rollback.version, rollback.restored, rollback.cause)
    for image in sent:
        installed = info.files.get(image.name)
        if installed is None or installed.crc != image.crc:
            raise NotInstalledError(
                image.name, image.crc, installed.crc if installed else None
            )
    return info


async def _install_v1(
    run: _Run, client: OTAClient | None, images: list[FileImage], version: str
) -> InstallResult:
    """One connection per file: every v1 commit resets the board."""
    options = run.options
    run.total = sum(image.size for image in images)
    run.transfer_started = run.now()
    try:
        for index, image in enumerate(images):
            for attempt in range(options.session_attempts):
                if client is None:
                    client = await run.open(after_reset=index > 0 and attempt == 0)
                    if attempt:
                        run.reconnects += 1
                try:
                    await client.send_file_v1(
                        image,
                        token=options.token,
                        progress=run.file_progress(image.name),
                    )
                    run.transfer_ended = run.now()
                    break
                except _RETRYABLE:
                    if attempt + 1 >= options.session_attempts:
                        raise
                finally:
                    await run.close(client)
                    client = None
    finally:
        if client is not None:
            await run.close(client)
    board = await _verify(run, images, version) if options.verify else None
    return run.result(
        protocol=1,
        version=version,
        sent=images,
        skipped=[],
        applied=True,
        board=board,
    )
