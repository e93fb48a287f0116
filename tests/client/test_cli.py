"""`python -m nus_ota` end to end: the real firmware on virtual boards, reached
through bleak's own BleakClient with the simulator's backend (esp32_ota_sim),
in virtual time. Only the Bluetooth radio is simulated; nothing of the
library is replaced.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from esp32_ota_sim.bleak_backend import SimBleakClient, register_board
from esp32_ota_sim.board import VirtualBoard
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.content import source_comments
from esp32_ota_sim.v1_board import V1OnlyBoard
from nus_ota import NUS_SERVICE_UUID
from nus_ota.cli import run
from nus_ota.lines import DEFLATE_MARK, FRAME_MARK

# The demo application, padded: a new app.py that really boots.
DEMO_APP = Path(__file__).parents[2] / "device_firmware" / "app.py"
APP = DEMO_APP.read_bytes() + b"".join(
    b"# %d %s\n" % (i, random.Random(i).randbytes(24).hex().encode())
    for i in range(100)
)
KEY = "cli-k3y-secret"
TOKEN = "cli-t0ken-secret"


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = run_virtual(run(list(argv), out=out, backend=SimBleakClient))
    return status, out.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    (tmp_path / "app.py").write_bytes(APP)
    return [str(tmp_path / "app.py")]


def test_push_info_and_nothing_to_do_on_a_v2_board(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    board = VirtualBoard(files={"config.py": 'VERSION = "1.0.0"\n'})
    register_board(board, "proxy")
    status, out = cli("push", *files, "--address", board.address, "--version", "1.1.0")
    assert status == 0, capsys.readouterr().err
    assert "installed app.py over protocol 2" in out
    assert board.read("app.py") == APP
    assert "100 %" in capsys.readouterr().err

    status, out = cli("info", "--address", board.address)
    assert status == 0
    assert "protocol 2, firmware 2." in out
    assert "application version: 1.0.0" in out
    assert f"app.py: {len(APP)} B" in out
    assert "1.1.0" in out

    status, out = cli("push", *files, "--address", board.address, "--version", "1.1.0")
    assert status == 0
    assert "app.py: already installed" in out
    assert "nothing to send" in out


def test_v1_board_with_a_token(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    board = V1OnlyBoard(
        files={"config.py": f'VERSION = "0.9"\nAUTH_TOKEN = "{TOKEN}"\n'}
    )
    register_board(board, "proxy")
    status, out = cli("info", "--address", board.address)
    assert status == 0
    assert "protocol 1" in out
    assert "application version: 0.9" in out  # the v1 probe: VERSION → VERSION:0.9

    args = ("push", files[0], "--address", board.address, "--version", "1.0")
    status, _ = cli(*args, "--token", "wrong")
    assert status == 1
    err = capsys.readouterr().err
    assert "AUTH" in err
    assert board.read("app.py") != APP

    status, out = cli(*args, "--token", TOKEN)
    assert status == 0, capsys.readouterr().err
    assert "over protocol 1" in out
    assert board.read("app.py") == APP


def test_hmac_board_key_from_the_environment(
    files: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board = VirtualBoard(files={"config.py": f'VERSION = "1"\nAUTH_KEY = "{KEY}"\n'})
    register_board(board, "proxy")
    status, _ = cli("push", files[0], "--address", board.address)
    assert status == 1
    assert "requires hmac authentication" in capsys.readouterr().err

    status, _ = cli("push", files[0], "--address", board.address, "--key", "nope")
    assert status == 1
    err = capsys.readouterr().err
    assert "AUTH" in err
    assert "nope" not in err

    monkeypatch.setenv("NUS_OTA_KEY", KEY)
    status, out = cli("push", files[0], "--address", board.address)
    assert status == 0
    assert board.read("app.py") == APP
    assert KEY not in out + capsys.readouterr().err


def test_a_token_the_protocol_cannot_carry_is_refused_unquoted(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    board = V1OnlyBoard()
    register_board(board, "proxy")
    args = ("push", files[0], "--address", board.address, "--version", "1.0")
    status, _ = cli(*args, "--token", "se\rcret")
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot be sent" in err
    assert "cret" not in err


def test_no_such_board() -> None:
    status, _ = cli("info", "--address", "24:0A:C4:99:99:99")
    assert status == 1


def test_scan_lists_boards_by_service_or_name() -> None:
    boards = [VirtualBoard(f"24:0A:C4:00:00:0{i}") for i in (1, 2)]

    async def discover(_seconds: float) -> dict[str, tuple[BLEDevice, object]]:
        found: dict[str, tuple[BLEDevice, object]] = {}
        for rssi, board, uuids in ((-70, boards[0], []), (-50, boards[1], [])):
            found[board.address] = advert(board.address, board.name, rssi, uuids)
        found["AA"] = advert("AA:BB:CC:DD:EE:FF", "Kettle", -40, [])
        found["BB"] = advert("11:22:33:44:55:66", None, -60, [NUS_SERVICE_UUID])
        return found

    out = io.StringIO()
    status = run_virtual(run(["scan"], out=out, discover=discover))  # type: ignore[arg-type]
    assert status == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == [  # strongest first
        boards[1].address,
        "11:22:33:44:55:66",
        boards[0].address,
    ]
    assert "Kettle" not in out.getvalue()


def advert(
    address: str, name: str | None, rssi: int, uuids: list[str]
) -> tuple[BLEDevice, AdvertisementData]:
    return BLEDevice(address, name, {}), AdvertisementData(
        local_name=name,
        manufacturer_data={},
        service_data={},
        service_uuids=uuids,
        tx_power=None,
        rssi=rssi,
        platform_data=(),
    )


@pytest.mark.parametrize("flags", [(), ("--no-compress",)])
def test_push_deflates_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...]
) -> None:
    board = VirtualBoard(files={"config.py": 'VERSION = "1.0.0"\n'})
    register_board(board, "proxy")
    app = DEMO_APP.read_bytes() + source_comments(16_000)
    (tmp_path / "app.py").write_bytes(app)
    marks: list[int] = []
    receive = board.receive

    def seen(link: Any, data: bytes) -> None:
        marks.append(data[0])
        receive(link, data)

    board.receive = seen  # type: ignore[method-assign]
    status, out = cli(
        "push", str(tmp_path / "app.py"), "--address", board.address, *flags
    )
    assert status == 0, capsys.readouterr().err
    assert "installed app.py over protocol 2" in out
    assert board.read("app.py") == app
    plain, deflated = marks.count(FRAME_MARK), marks.count(DEFLATE_MARK)
    if flags:
        assert deflated == 0
        assert plain >= len(app) / 237
    else:
        assert deflated > 0
        assert plain + deflated < 0.7 * len(app) / 237
