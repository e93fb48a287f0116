"""install() end to end against the real firmware engine (loopback link).

Virtual time (esp32_ota_sim.clock): reboot delays, reconnect intervals and
timeouts elapse instantly.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.clock import run_virtual

from custom_components.esp32_ota.nus_ota import (
    AuthRequiredError,
    ConnectFailedError,
    Credentials,
    DisconnectedError,
    InstallOptions,
    InstallResult,
    InvalidTokenError,
    NotInstalledError,
    NotSupportedError,
    RejectedError,
    RolledBackError,
    install,
    probe,
    valid_token,
)

from .loopback import (
    Connector,
    Link,
    LoopbackBoard,
    disconnect_after,
    drop_first,
    lossy,
)

if TYPE_CHECKING:
    from pathlib import Path

FILES = {
    "main.py": b"import app\n" + b"# padding line of the main script\n" * 120,
    "app.py": random.Random(3).randbytes(9000),
}


def go(
    connector: Connector,
    files: dict[str, bytes] = FILES,
    version: str = "1.1.0",
    **kw: Any,
) -> InstallResult:
    return run_virtual(install(connector, files, version, **kw))


def on_board(home: Path, files: dict[str, bytes] = FILES) -> bool:
    return all((home / name).read_bytes() == data for name, data in files.items())


def lines_sent(connector: Connector, prefix: str) -> int:
    return sum(
        1
        for t in connector.transports
        for line in t.counters.lines_in
        if line.startswith(prefix)
    )


def test_v2_install_then_nothing_to_do(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    progress: list[tuple[int, int]] = []
    result = go(connector, progress=lambda done, total: progress.append((done, total)))
    assert on_board(board_fs)
    assert result.protocol == 2
    assert result.applied
    assert set(result.files_sent) == set(FILES)
    assert result.files_skipped == ()
    assert result.bytes_total == sum(map(len, FILES.values()))
    assert result.bytes_sent == result.bytes_total
    assert result.bytes_resumed == 0
    assert 0 < result.transfer_seconds < result.seconds
    assert result.wire_bytes > result.bytes_total  # b64 and framing
    assert result.wire_bytes < result.bytes_total * 1.5  # b64, not hex
    assert result.retries == 0
    assert result.connections == 2  # the update, then the check after the reset
    assert result.board is not None
    assert result.board.files["app.py"] is not None
    assert result.board.files["app.py"].version == "1.1.0"
    assert not result.trial  # the loopback app confirms at boot
    assert connector.open_connections == 0
    assert board.resets == 1  # one atomic bundle, one reset
    assert progress[-1] == (result.bytes_total, result.bytes_total)
    assert [d for d, _t in progress] == sorted(d for d, _t in progress)

    again = go(connector)
    assert not again.applied
    assert again.files_sent == ()
    assert set(again.files_skipped) == set(FILES)
    assert board.resets == 1
    assert lines_sent(connector, "OTA:FILE") == 2


def test_only_changed_files_are_sent(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    go(connector)
    changed = {**FILES, "app.py": FILES["app.py"][::-1]}
    result = go(connector, changed, "1.2.0")
    assert result.files_sent == ("app.py",)
    assert result.files_skipped == ("main.py",)
    assert on_board(board_fs, changed)
    forced = go(connector, changed, "1.2.0", options=InstallOptions(force=True))
    assert set(forced.files_sent) == set(FILES)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_v2_lossy_link(board_fs: Path, seed: int) -> None:
    board = LoopbackBoard()
    connector = Connector(board, Link(drop_write=lossy(0.15, seed), latency=0.04))
    result = go(connector)
    assert on_board(board_fs)
    assert result.retries > 0
    assert sum(t.counters.dropped_writes for t in connector.transports) > 0


def test_v2_resumes_after_a_dropped_link(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board, Link(after_line=disconnect_after("OTA:D:", 30)))
    result = go(connector)
    assert on_board(board_fs)
    assert result.bytes_sent == result.bytes_total
    assert result.bytes_resumed > 0  # resumed, not restarted
    assert result.retries >= 1
    assert result.connections == 3
    assert connector.open_connections == 0


def test_ok_lost_still_verified(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board, Link(drop_notify=lambda line: line == "OTA:OK"))
    result = go(connector)
    assert result.applied
    assert on_board(board_fs)


def test_hmac_board(board_fs: Path) -> None:
    board = LoopbackBoard(auth_key="s3cret")
    connector = Connector(board)
    with pytest.raises(AuthRequiredError):
        go(connector)
    assert lines_sent(connector, "OTA:FILE") == 0  # refused before sending anything
    with pytest.raises(RejectedError) as err:
        go(connector, options=InstallOptions(auth_key="guess"))
    assert err.value.reason == "AUTH"
    result = go(connector, options=InstallOptions(auth_key="s3cret"))
    assert on_board(board_fs)
    assert result.protocol == 2


def test_downgrade_needs_force(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    go(connector, version="2.0.0")
    older = {name: data + b"\n" for name, data in FILES.items()}
    with pytest.raises(RejectedError) as err:
        go(connector, older, "1.9.0")
    assert err.value.reason == "VERSION"
    go(connector, older, "1.9.0", options=InstallOptions(force=True))
    assert on_board(board_fs, older)


def test_file_not_allowed(board_fs: Path) -> None:
    connector = Connector(LoopbackBoard())
    with pytest.raises(RejectedError) as err:
        go(connector, {"boot.py": b"x"})
    assert err.value.reason == "FORBIDDEN"
    assert connector.open_connections == 0
    assert lines_sent(connector, "OTA:FILE") == 0  # refused before sending


def test_rollback_is_reported(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    go(connector, version="1.0.0")
    board.app_crashes = True  # the next app.py fails at boot, the guard restores 1.0.0
    broken = {**FILES, "app.py": b"raise Exception('boom')\n"}
    with pytest.raises(RolledBackError) as err:
        go(connector, broken, "1.1.0")
    assert err.value.version == "1.1.0"
    assert err.value.restored == "1.0.0"
    assert on_board(board_fs)  # the old files are back


def test_rollback_of_an_unversioned_release(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    go(connector, version="")
    board.app_crashes = True
    with pytest.raises(RolledBackError) as err:
        go(connector, {"app.py": b"broken"}, "")
    assert err.value.version is None


def test_verify_notices_a_file_that_did_not_stick(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    go(connector)
    changed = {"app.py": b"new app\n"}

    def clobber() -> None:
        (board_fs / "app.py").write_bytes(b"something else\n")

    board.on_boot = clobber
    with pytest.raises(NotInstalledError) as err:
        go(connector, changed, "1.2.0")
    assert err.value.file == "app.py"


@pytest.mark.parametrize("v1_window", [1, 4])
def test_v1_board(board_fs: Path, v1_window: int) -> None:
    board = LoopbackBoard(v1_only=True)
    connector = Connector(board, Link(drop_write=lossy(0.1, v1_window)))
    progress: list[int] = []
    result = go(
        connector,
        options=InstallOptions(v1_window=v1_window),
        progress=lambda d, _t: progress.append(d),
    )
    assert on_board(board_fs)
    assert result.protocol == 1
    assert result.board is None
    assert result.connections == 3  # one per file (each commit resets), then the check
    assert board.resets == 2
    assert progress[-1] == result.bytes_total
    assert connector.open_connections == 0
    # every write is one whole line that fits
    for transport in connector.transports:
        assert all(
            len(line) + 1 <= transport.max_write for line in transport.counters.lines_in
        )


def test_v1_token(board_fs: Path) -> None:
    board = LoopbackBoard(v1_only=True, token="open-sesame")
    connector = Connector(board)
    with pytest.raises(RejectedError) as err:
        go(connector, options=InstallOptions(token="wrong"))
    assert err.value.reason == "AUTH"
    go(connector, options=InstallOptions(token="open-sesame"))
    assert on_board(board_fs)


SECRET = "open\rsesame"


@pytest.mark.parametrize("v1_only", [True, False])
@pytest.mark.parametrize(
    "token", [SECRET, "open:sesame", "open-sesame ", "sésame", "open\tsesame"]
)
def test_a_token_the_protocol_cannot_carry(
    board_fs: Path, token: str, v1_only: bool
) -> None:
    """Refused before connecting, never quoted (was a ValueError naming it)."""
    connector = Connector(LoopbackBoard(v1_only=v1_only, token="open-sesame"))
    with pytest.raises(InvalidTokenError) as err:
        go(connector, options=InstallOptions(token=token))
    assert token not in str(err.value)
    assert token not in repr(err.value)
    assert "sesame" not in str(err.value)
    assert err.value.scheme == "token"  # Home Assistant asks for the token again
    assert connector.calls == 0
    assert not valid_token(token)
    assert valid_token("open-sesame")


def test_secrets_stay_out_of_reprs() -> None:
    options = InstallOptions(auth_key="k3y-secret", token="t0ken-secret")
    credentials = Credentials("k3y-secret", "t0ken-secret")
    for text in (repr(options), repr(credentials), str(options)):
        assert "secret" not in text


def test_v1_forced_on_a_v2_board_is_still_verified(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    result = go(connector, options=InstallOptions(protocol=1))
    assert result.protocol == 1
    assert result.board is not None  # the board speaks v2, so the check reads CRCs
    assert on_board(board_fs)


def test_connect_failures(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    connector.fail_next = 1
    assert go(connector).applied
    connector.fail_next = 10
    with pytest.raises(ConnectFailedError) as err:
        go(connector, {"app.py": b"other"}, options=InstallOptions(connect_attempts=2))
    assert err.value.attempts == 2
    assert not err.value.applied
    assert isinstance(err.value.cause, TimeoutError)


def test_a_connect_factory_that_never_returns_is_bounded() -> None:
    calls: list[int] = []

    async def hang() -> Any:
        calls.append(1)
        await asyncio.Event().wait()

    async def go() -> float:
        loop = asyncio.get_running_loop()
        options = InstallOptions(connect_attempts=2, connect_timeout=30.0)
        async with asyncio.timeout(600):  # unbounded before: hung forever
            with pytest.raises(ConnectFailedError) as err:
                await install(hang, {"app.py": b"x"}, "1.0.0", options)
        assert isinstance(err.value.cause, TimeoutError)
        return loop.time()

    # two bounded attempts and the pause between them
    assert run_virtual(go()) == pytest.approx(2 * 30.0 + 2.0, abs=0.01)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "version", ["1,2", "a|b", "2:0", "versión 2", "x" * 65, 2.0, "line\rbreak"]
)
def test_any_app_version_on_the_board_still_updates(
    board_fs: Path, monkeypatch: pytest.MonkeyPatch, version: object
) -> None:
    """A hand-edited config.VERSION used to lock the client out (issue 15)."""
    import config

    monkeypatch.setattr(config, "VERSION", version)
    connector = Connector(LoopbackBoard())
    info = run_virtual(probe(connector))
    assert info is not None
    expected = version if version == 2.0 else None  # str() of a float is usable
    assert info.app_version == (str(expected) if expected else None)
    assert go(connector, version="99.0.0").applied  # above any the board can parse
    assert on_board(board_fs)


def test_a_connect_factory_that_bounds_itself_may_wait_longer(
    board_fs: Path,
) -> None:
    """Home Assistant's factory queues for a proxy slot (up to 30 min)."""
    connector = Connector(LoopbackBoard())

    async def queued() -> Any:
        await asyncio.sleep(600)  # waiting for a slot
        return await connector()

    options = InstallOptions(connect_timeout=None)
    result = run_virtual(install(queued, FILES, "1.1.0", options))
    assert result.applied
    assert on_board(board_fs)


def test_probe(board_fs: Path) -> None:
    info = run_virtual(probe(Connector(LoopbackBoard())))
    assert info is not None
    assert info.allowed_files == {"main.py", "app.py"}


def test_probe_v1(board_fs: Path) -> None:
    assert run_virtual(probe(Connector(LoopbackBoard(v1_only=True)))) is None


@pytest.mark.parametrize(
    ("files", "version"),
    [
        ({}, "1.0.0"),
        ({"a:b": b"x"}, "1.0.0"),
        (FILES, "1:0"),
        (FILES, "1|0"),
        (FILES, "x" * 65),
    ],
)
def test_bad_arguments(board_fs: Path, files: dict[str, bytes], version: str) -> None:
    connector = Connector(LoopbackBoard())
    with pytest.raises(ValueError):
        go(connector, files, version)
    assert connector.calls == 0


def test_a_failed_install_is_resumed_by_the_next(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board, Link(after_line=disconnect_after("OTA:D:", 40)))
    with pytest.raises(DisconnectedError):
        go(connector, options=InstallOptions(session_attempts=1))
    assert connector.open_connections == 0
    result = go(connector)
    assert on_board(board_fs)
    assert 0 < result.bytes_sent < result.bytes_total
    assert result.bytes_resumed == result.bytes_total - result.bytes_sent


def test_v1_retries_a_file_after_a_dropped_link(board_fs: Path) -> None:
    board = LoopbackBoard(v1_only=True)
    connector = Connector(board, Link(after_line=disconnect_after("OTA:DATA:", 10)))
    result = go(connector)
    assert on_board(board_fs)
    assert result.connections == 4  # the dropped one, two files, the check
    assert result.retries >= 1


def test_lost_ready_leaves_the_board_busy_then_a_new_connection_resumes(
    board_fs: Path,
) -> None:
    board = LoopbackBoard()
    lost: list[str] = []
    connector = Connector(board, Link(drop_notify=drop_first("OTA:READY", lost)))
    result = go(connector)
    assert on_board(board_fs)
    assert lost
    assert result.connections == 3  # the FILE retry met BUSY; a reconnect fixed it


def test_without_verification(board_fs: Path) -> None:
    connector = Connector(LoopbackBoard(), Link(start_fails=1))
    result = go(connector, options=InstallOptions(verify=False))
    assert result.board is None
    assert result.connections == 1
    assert connector.calls == 2  # the first connection failed to start
    assert on_board(board_fs)


def test_v2_required_but_the_board_is_v1(board_fs: Path) -> None:
    connector = Connector(LoopbackBoard(v1_only=True))
    with pytest.raises(NotSupportedError):
        go(connector, options=InstallOptions(protocol=2))
    assert connector.open_connections == 0


def test_a_board_busy_from_the_start_is_not_retried(board_fs: Path) -> None:
    board = LoopbackBoard()
    board.manager.handle("OTA:START:app.py:10:00000000")  # another client's transfer
    connector = Connector(board)
    with pytest.raises(RejectedError) as err:
        go(connector)
    assert err.value.reason == "BUSY"
    assert not err.value.after_resend
    assert connector.calls == 1


def test_board_that_does_not_come_back(board_fs: Path) -> None:
    board = LoopbackBoard()
    connector = Connector(board)
    board.on_boot = lambda: setattr(connector, "fail_next", 100)
    with pytest.raises(ConnectFailedError) as err:
        go(connector, options=InstallOptions(connect_attempts=2))
    assert err.value.applied  # the files were applied, only the check failed
    assert on_board(board_fs)
    assert connector.open_connections == 0


def test_late_hello_reply_does_not_break_hmac(board_fs: Path) -> None:
    """A HELLO reply later than the control timeout: resent HELLO, two replies
    with different nonces; the stale one must neither be taken for FILE's
    answer nor leave the nonce out of step."""
    board = LoopbackBoard(auth_key="k")
    late: list[str] = []

    def delay(line: str) -> float:
        if line.startswith("OTA:HELLO") and not late:
            late.append(line)
            return 6.0  # past the 5 s control timeout
        return 0.0

    connector = Connector(board, Link(delay_notify=delay))
    result = go(connector, options=InstallOptions(auth_key="k"))
    assert late
    assert on_board(board_fs)
    assert result.retries >= 1


def test_a_connection_that_loses_every_hello_reply_is_replaced(
    board_fs: Path,
) -> None:
    """Three HELLO replies lost in a row (seen at 5 % notification loss): HELLO
    changes nothing on the board, so a new connection asks again (was:
    NoReplyError, the install over before it began)."""
    board = LoopbackBoard()
    lost: list[str] = []
    connector = Connector(
        board, Link(drop_notify=drop_first("OTA:HELLO", lost, count=3))
    )
    result = go(connector, options=InstallOptions(control_attempts=3))
    assert on_board(board_fs)
    assert len(lost) == 3
    assert result.connections == 3  # the silent one, the install, the check
    assert connector.open_connections == 0
