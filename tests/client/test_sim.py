"""The client over bleak, against virtual boards (esp32_ota_sim).

`BleakClient(..., backend=SimBleakClient)` + `BleakTransport`: the same code
path as Home Assistant's, with the real firmware booted on a virtual board
and the link profiles of the simulator (proxy, local adapter, lossy proxy).
Everything runs in virtual time; the figures are simulated seconds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak_retry_connector import establish_connection
from esp32_ota_sim.bleak_backend import (
    SimBleakClient,
    connection_slots,
    register_board,
    reset_registry,
)
from esp32_ota_sim.board import VirtualBoard
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.content import source_comments
from esp32_ota_sim.v1_board import V1OnlyBoard

from custom_components.esp32_ota.nus_ota import (
    BleakTransport,
    DisconnectedError,
    InstallOptions,
    InstallResult,
    OTAClient,
    RolledBackError,
    install,
    probe,
)

if TYPE_CHECKING:
    from collections.abc import Callable

PADDING = b"".join(
    b"# line %05d: padding to make the application larger\n" % i for i in range(300)
)


def make_board(
    profile: str, *, v1_only: bool = False, address: str = "24:0A:C4:00:00:01"
) -> VirtualBoard:
    board = (V1OnlyBoard if v1_only else VirtualBoard)(address)
    register_board(board, profile)
    return board


def connector(board: VirtualBoard) -> Callable[[], Any]:
    """What Home Assistant does: establish_connection with a disconnect callback."""
    device = BLEDevice(board.address, board.name, {"source": "local"})

    async def connect() -> BleakTransport:
        return await BleakTransport.open(
            lambda on_disconnect: establish_connection(
                BleakClient,
                device,
                board.name or board.address,
                on_disconnect,
                max_attempts=2,
                backend=SimBleakClient,
            )
        )

    return connect


def files_for(board: VirtualBoard, *, more: int = 0) -> dict[str, bytes]:
    """The board's own app.py and main.py, changed (a working app, or the
    boot guard rightly rolls the update back). `more`: add about that many
    bytes of real source as comments, so that even deflated frames are
    enough writes for a lossy link to lose some."""
    return {
        "main.py": board.read("main.py") + b"# updated\n",
        "app.py": board.read("app.py") + PADDING + source_comments(more),
    }


def run_install(
    board: VirtualBoard, files: dict[str, bytes], version: str = "1.1.0", **kw: Any
) -> InstallResult:
    async def go() -> InstallResult:
        result = await install(connector(board), files, version, **kw)
        free, limit, _ = connection_slots("local")
        assert free == limit  # every connection released
        return result

    return run_virtual(go())


@pytest.mark.parametrize("profile", ["fast", "local", "proxy", "lossy-proxy"])
def test_v2_install_over_bleak(profile: str) -> None:
    board = make_board(profile)
    files = files_for(board, more=40_000 if profile == "lossy-proxy" else 0)
    progress: list[int] = []
    result = run_install(board, files, progress=lambda done, _t: progress.append(done))
    assert board.read("app.py") == files["app.py"]
    assert board.read("main.py") == files["main.py"]
    assert result.protocol == 2
    assert result.board is not None
    assert result.board.files["app.py"] is not None
    assert result.board.files["app.py"].version == "1.1.0"
    assert progress[-1] == result.bytes_total
    assert board.resets == 1
    if profile == "lossy-proxy":
        assert result.retries > 0
    # the board stays healthy and the app answers after the update
    assert board.state == "running"


@pytest.mark.parametrize("encoding", ["hex", "b64", "bin"])
def test_every_encoding_over_a_lossy_proxy(encoding: str) -> None:
    """Lost writes and notifications, gaps and duplicates, in each encoding."""
    board = make_board("lossy-proxy")
    files = files_for(board, more=40_000)
    result = run_install(board, files, options=InstallOptions(encoding=encoding))
    assert board.read("app.py") == files["app.py"]
    assert board.read("main.py") == files["main.py"]
    assert result.retries > 0
    assert board.state == "running"


def test_second_install_sends_nothing() -> None:
    board = make_board("fast")
    files = files_for(board)
    run_install(board, files)
    again = run_install(board, files)
    assert not again.applied
    assert set(again.files_skipped) == set(files)
    assert board.resets == 1


@pytest.mark.parametrize("profile", ["fast", "proxy", "lossy-proxy"])
def test_v1_only_board(profile: str) -> None:
    board = make_board(profile, v1_only=True)
    files = files_for(board)
    result = run_install(board, files)
    assert result.protocol == 1
    assert board.read("app.py") == files["app.py"]
    assert board.read("main.py") == files["main.py"]
    assert board.resets == 2  # every v1 commit resets the board


def test_v2_is_much_faster_than_v1_through_a_proxy() -> None:
    """Figures for the report: pipelined b64 v2 against classic v1 stop-and-wait."""
    figures = {}
    for name, v1_only, options in (
        ("v2", False, InstallOptions()),
        ("v1-pipelined", True, InstallOptions(v1_window=4)),
        ("v1-stop-and-wait", True, InstallOptions(v1_window=1)),
    ):
        reset_registry()
        board = make_board("proxy", v1_only=v1_only)
        files = {"app.py": files_for(board)["app.py"]}
        result = run_install(board, files, options=options)
        assert board.read("app.py") == files["app.py"]
        # the transfer: connecting through the proxy (1-3 s) is the same for all
        figures[name] = result.transfer_seconds
    assert figures["v2"] < figures["v1-pipelined"] < figures["v1-stop-and-wait"]
    assert figures["v2"] * 3 < figures["v1-stop-and-wait"]


def test_rollback_on_a_virtual_board() -> None:
    board = make_board("fast")
    files = files_for(board)
    run_install(board, files, "1.1.0")
    broken = {"app.py": b"raise RuntimeError('broken app')\n"}
    with pytest.raises(RolledBackError) as err:
        run_install(board, broken, "1.2.0")
    assert err.value.version == "1.2.0"
    assert board.read("app.py") == files["app.py"]


def test_transport_sizes_writes_from_the_characteristic() -> None:
    board = make_board("proxy")

    async def go() -> tuple[int, list[str]]:
        transport = await connector(board)()
        seen: list[str] = []
        client = OTAClient(transport, on_app_line=seen.append)
        await client.start()
        size = transport.max_write
        await transport.write(b"PING\n", response=True)
        info = await client.hello()
        assert info is not None
        await client.close()
        return size, seen

    size, seen = run_virtual(go())
    assert size == 244  # MTU 247 - 3, from max_write_without_response_size
    assert seen == ["PONG"]


def test_board_reset_is_seen_as_a_disconnect() -> None:
    board = make_board("proxy")

    async def go() -> None:
        transport = await connector(board)()
        client = OTAClient(transport)
        await client.start()
        assert await client.hello() is not None
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, board.reboot)
        with pytest.raises(DisconnectedError):
            await client.send_file(_big_image())
        await client.close()

    run_virtual(go())


def _big_image() -> Any:
    from custom_components.esp32_ota.nus_ota import FileImage

    return FileImage("app.py", PADDING * 20, "1.2.0")


def test_probe_over_bleak() -> None:
    board = make_board("local")
    info = run_virtual(probe(connector(board)))
    assert info is not None
    assert "app.py" in info.allowed_files
    v1 = make_board("local", v1_only=True, address="24:0A:C4:00:00:02")
    assert run_virtual(probe(connector(v1))) is None
