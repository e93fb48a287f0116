"""VirtualBoard: the real firmware booted from an in-memory flash."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import sys
import zlib
from dataclasses import replace

import pytest
from esp32_ota_sim.board import FIRMWARE_DIR, VirtualBoard
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.link import PROFILES, SimLink
from esp32_ota_sim.speed import ESP32_FLASH, BoardSpeed, next_write_kind

from custom_components.esp32_ota.nus_ota.lines import deflate_frame

NUS_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"


class Central:
    """The link side of a board, recording notifications with their times."""

    def __init__(self, mtu: int = 256) -> None:
        self.mtu = mtu
        self.conn_handle: int | None = None
        self.notified: list[tuple[float, bytes]] = []
        self.dropped: list[bool] = []

    def board_notify(self, data: bytes) -> None:
        self.notified.append((asyncio.get_running_loop().time(), data))

    def board_dropped(self, *, reset: bool) -> None:
        self.dropped.append(reset)

    def lines(self) -> list[bytes]:
        return b"".join(data for _, data in self.notified).splitlines()


def connect(board: VirtualBoard, central: Central) -> None:
    central.conn_handle = board.accept(central)  # type: ignore[arg-type]


def send(board: VirtualBoard, central: Central, data: bytes) -> None:
    board.receive(central, data)  # type: ignore[arg-type]


def test_boots_the_real_firmware_and_advertises() -> None:
    board = VirtualBoard("24:0A:C4:00:AB:CD")
    assert [(b.number, b.outcome) for b in board.boots] == [(1, "ok")]
    assert board.state == "running"
    firmware = {p.name: p.read_bytes() for p in FIRMWARE_DIR.glob("*.py")}
    assert {name: board.read(name) for name in firmware} == firmware
    adv = board.advertisement()
    assert adv is not None
    assert adv.local_name == "ESP32-OTA-ABCD"
    assert board.name == "ESP32-OTA-ABCD"
    assert NUS_UUID in adv.service_uuids
    assert adv.manufacturer_data == {}
    assert board.connectable
    # The name travels in the advertisement, the NUS UUID in the scan response.
    assert board.advertising_payload is not None
    assert b"ESP32-OTA-ABCD" in board.advertising_payload
    assert b"ESP32-OTA" not in board.scan_response_payload


def test_boards_are_isolated() -> None:
    host_modules = set(sys.modules)
    one = VirtualBoard("24:0A:C4:00:00:01")
    two = VirtualBoard("24:0A:C4:00:00:02")
    manager_one = one.module("ota_manager").OTAManager
    manager_two = two.module("ota_manager").OTAManager
    assert manager_one is not manager_two
    manager_one.ALLOWED_FILES.add("extra.py")
    assert "extra.py" not in manager_two.ALLOWED_FILES
    assert one.module("os") is not two.module("os")
    assert one.module("machine") is not two.module("machine")
    assert one.module("bluetooth").BLE() is not two.module("bluetooth").BLE()
    one.write("app.py", "def handle(line):\n    return 'one'\n")
    assert two.read("app.py") == (FIRMWARE_DIR / "app.py").read_bytes()
    assert one.name != two.name
    assert one.fs.urandom(8) != two.fs.urandom(8)  # seeded by address
    # Nothing of the firmware leaked into the host interpreter.
    assert not {"ota_manager", "nus_peripheral", "boot_guard", "app"} & (
        set(sys.modules) - host_modules
    )


def test_lines_are_processed_one_at_a_time_with_their_cost() -> None:
    async def scenario() -> tuple[Central, float]:
        board = VirtualBoard(speed=BoardSpeed(line_cost_ms=2.0, byte_cost_us=1000.0))
        central = Central()
        connect(board, central)
        start = asyncio.get_running_loop().time()
        send(board, central, b"PING\nPING\nVERSION\n")
        await asyncio.sleep(0.1)
        return central, start

    central, start = run_virtual(scenario())
    assert central.lines() == [b"PONG", b"PONG", b"VERSION:1.0.0"]
    offsets = [round((t - start) * 1000, 6) for t, _ in central.notified]
    # 2 ms per line + 1 ms per byte: 5-byte, 5-byte, 8-byte lines.
    assert offsets == [7.0, 14.0, 24.0]


def test_a_fast_connection_does_not_make_the_board_fast_for_good() -> None:
    """Only the `fast` profile sets a board speed of its own, for its connection.

    A board reached over `fast` once (a test's quick setup) and then over a
    proxy must cost what it costs again, not the `fast` profile's 0.05 ms.
    """
    own = BoardSpeed(line_cost_ms=2.0, byte_cost_us=3.0)

    async def scenario() -> list[BoardSpeed]:
        board = VirtualBoard(speed=own)
        seen = []
        for profile in ("fast", "proxy", "fast", "wifi-proxy"):
            link = SimLink(board, profile)
            await link.open()
            seen.append(board.speed)
            await link.close()
        return seen

    fast = PROFILES["fast"].board_speed
    assert fast is not None
    assert run_virtual(scenario()) == [fast, own, fast, own]


def test_ticks_follow_the_loop_clock() -> None:
    async def scenario() -> int:
        board = VirtualBoard()
        time_mod = board.module("time")
        before = time_mod.ticks_ms()
        await asyncio.sleep(2.5)
        return time_mod.ticks_diff(time_mod.ticks_ms(), before)

    assert run_virtual(scenario()) == 2500


RESETTING_APP = """
import machine

def handle(line):
    if line == "RESET":
        machine.reset()
    print("app got", line)
    return "OK " + line
"""


def test_machine_reset_reboots_the_board_and_drops_links() -> None:
    async def scenario() -> tuple[VirtualBoard, Central]:
        board = VirtualBoard(files={"app.py": RESETTING_APP})
        central = Central()
        connect(board, central)
        send(board, central, b"hello\nRESET\nnever\n")
        await asyncio.sleep(0.1)
        return board, central

    board, central = run_virtual(scenario())
    assert central.lines() == [b"OK hello"]
    assert central.dropped == [True]
    assert [b.outcome for b in board.boots] == ["ok", "ok"]
    assert [r.outcome for r in board.restarts] == ["reset"]
    assert board.resets == 1
    assert board.module("machine").reset_cause() == 5  # SOFT_RESET, as on an ESP32
    assert board.console == ["app got hello\n"]
    assert board.connectable  # advertising again after the reboot


def test_a_crashing_main_leaves_the_board_at_the_repl_until_reset() -> None:
    board = VirtualBoard(files={"main.py": "raise RuntimeError('broken main')\n"})
    assert [b.outcome for b in board.boots] == ["crash"]  # no reset, no new boot
    assert board.state == "repl"
    assert not board.connectable  # Bluetooth stopped with the script
    assert board.advertisement() is None
    assert board.resets == 0
    assert "broken main" in "".join(board.console)
    board.reboot()  # only a reset (button, power cycle) starts it again
    assert [b.outcome for b in board.boots] == ["crash", "crash"]
    assert board.state == "repl"


def test_a_crash_while_running_outside_a_trial_stops_bluetooth() -> None:
    main_loop_breaks = (
        "import nus_peripheral\n"
        "class Peripheral(nus_peripheral.NUSPeripheral):\n"
        "    def poll(self):\n"
        "        if super().poll():\n"
        "            raise RuntimeError('main loop broke')\n"
        "def start():\n"
        "    return Peripheral()\n"
    )

    async def scenario() -> tuple[VirtualBoard, Central, bool]:
        board = VirtualBoard(files={"main.py": main_loop_breaks})
        central = Central()
        connect(board, central)
        send(board, central, b"BOOM\n")
        await asyncio.sleep(5)
        return board, central, board.connectable

    board, central, connectable = run_virtual(scenario())
    assert not connectable
    assert board.state == "repl"
    assert central.dropped == [True]  # the link went with Bluetooth
    assert [r.outcome for r in board.restarts] == ["crash"]
    assert board.resets == 0
    assert len(board.boots) == 1
    with pytest.raises(RuntimeError, match="not running"):
        board.accept(Central())  # type: ignore[arg-type]
    board.reboot()
    assert board.connectable


def _update_lines(files: dict[str, bytes], version: str) -> list[bytes]:
    lines = []
    for name, data in files.items():
        crc = f"{binascii.crc32(data):08x}"
        lines.append(f"OTA:FILE:{name}:{len(data)}:{crc}:{version}:b64:-:\n".encode())
        lines.append(b"OTA:D:0:" + base64.b64encode(data) + b"\n")
    lines.append(f"OTA:APPLY:{','.join(files)}:\n".encode())
    return lines


async def _update(
    board: VirtualBoard, files: dict[str, bytes], version: str
) -> list[bytes]:
    got: list[bytes] = []
    link = SimLink(board, "local", on_notify=got.append)
    await link.open()
    for line in _update_lines(files, version):
        await link.write_with_response(line)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)
    return b"".join(got).splitlines()


async def _ask(board: VirtualBoard, line: bytes) -> list[bytes]:
    got: list[bytes] = []
    link = SimLink(board, "local", on_notify=got.append)
    await link.open()
    await link.write_with_response(line)
    await asyncio.sleep(0.2)
    await link.close()
    return b"".join(got).splitlines()


def test_an_update_over_the_link_installs_and_reboots() -> None:
    new_app = b'VERSION = "1.1.0"\n\ndef handle(line):\n    return "NEW " + line\n'

    async def scenario() -> tuple[VirtualBoard, list[bytes], list[bytes]]:
        board = VirtualBoard()
        replies = await _update(board, {"app.py": new_app}, "1.1.0")
        return board, replies, await _ask(board, b"hi\n")

    board, replies, answer = run_virtual(scenario())
    assert replies[0].startswith(b"OTA:READY:0:")
    assert replies[1:] == [b"OTA:A:%d" % len(new_app), b"OTA:OK"]
    assert answer == [b"NEW hi"]
    assert board.read("app.py") == new_app
    assert board.read("app.py.bak") == (FIRMWARE_DIR / "app.py").read_bytes()
    assert [r.outcome for r in board.restarts] == ["reset"]


def test_a_broken_update_is_rolled_back_by_the_boot_guard() -> None:
    broken = b"raise ImportError('the new app is broken')\n"

    async def scenario() -> tuple[VirtualBoard, list[bytes], dict[str, object]]:
        board = VirtualBoard()
        replies = await _update(board, {"app.py": broken}, "1.1.0")
        answer = await _ask(board, b"PING\n")
        hello = await _ask(board, b"OTA:HELLO\n")
        info = json.loads(hello[0][len(b"OTA:HELLO:") :])
        return board, replies + answer, info

    board, replies, info = run_virtual(scenario())
    assert replies[-1] == b"PONG"  # the old app answers again
    assert board.read("app.py") == (FIRMWARE_DIR / "app.py").read_bytes()
    error = info["rollback"].pop("error")
    assert info["rollback"] == {"ver": "1.1.0", "restored": "1.0.0"}
    assert (error["type"], error["file"], error["line"]) == ("ImportError", "app.py", 1)
    assert "reset" in [r.outcome for r in board.restarts]
    assert board.resets >= 2  # the update, then the failed trial boot(s)


def test_power_cut_during_apply_leaves_old_or_new_files() -> None:
    new_app = b'VERSION = "2.0.0"\n\ndef handle(line):\n    return "V2"\n'
    old_app = (FIRMWARE_DIR / "app.py").read_bytes()

    async def run(cut: int | None) -> tuple[VirtualBoard, int]:
        board = VirtualBoard()
        got: list[bytes] = []
        link = SimLink(board, "local", on_notify=got.append)
        await link.open()
        lines = _update_lines({"app.py": new_app}, "2.0.0")
        for line in lines[:-1]:
            await link.write_with_response(line)
        await asyncio.sleep(0.1)
        start = board.fs.ops
        if cut is not None:
            board.power_loss_at(cut)
        link.write_without_response(lines[-1])  # no response comes after a cut
        await asyncio.sleep(2)
        return board, board.fs.ops - start

    probe, apply_ops = run_virtual(run(None))
    assert probe.read("app.py") == new_app
    assert apply_ops > 3
    outcomes = set()
    for cut in range(1, apply_ops + 1):
        board, _ = run_virtual(run(cut))
        assert board.state == "running", cut
        assert board.read("app.py") in (old_app, new_app), cut
        assert "ota_journal.json" not in board.files(), cut
        outcomes.add(board.read("app.py") == new_app)
        # The cut hit while applying or while booting the new version.
        assert board.fs.power_losses == 1, cut
        assert [r.outcome for r in [*board.boots, *board.restarts]].count("power") == 1
    assert outcomes == {False, True}


def test_firmware_dir_none_boots_only_given_files() -> None:
    board = VirtualBoard(firmware_dir=None, files={"main.py": "print('tiny')\n"})
    assert board.files() == {"main.py": b"print('tiny')\n"}
    assert board.console == ["tiny\n"]
    assert board.peripheral is None
    assert not board.connectable
    with pytest.raises(KeyError):
        board.module("ota_manager")


def test_flash_writes_make_a_line_slower() -> None:
    async def scenario(erase_ms: float) -> float:
        flash = replace(ESP32_FLASH, erase_ms_per_block=erase_ms)
        speed = BoardSpeed(line_cost_ms=1.0, byte_cost_us=0.0, flash=flash)
        board = VirtualBoard(speed=speed)
        central = Central()
        connect(board, central)
        data = b"x" * 100
        crc = f"{binascii.crc32(data):08x}"
        send(board, central, f"OTA:FILE:app.py:100:{crc}:9.0.0:hex:-:\n".encode())
        await asyncio.sleep(0.1)
        start = asyncio.get_running_loop().time()
        send(board, central, b"OTA:D:0:" + data.hex().encode() + b"\n")
        await asyncio.sleep(0.5)
        assert central.lines()[-1] == b"OTA:A:100"
        return central.notified[-1][0] - start

    fast, slow = run_virtual(scenario(0.0)), run_virtual(scenario(30.0))
    # Two fresh blocks: the staged data, and the new copy of ota_state.json
    # (written to a .tmp file and renamed) that records the finished file.
    assert slow - fast == pytest.approx(2 * 0.030)


def test_the_firmware_can_drop_the_connection() -> None:
    async def scenario() -> tuple[list[float], VirtualBoard, float]:
        board = VirtualBoard()
        loop = asyncio.get_running_loop()
        noticed: list[float] = []
        link = SimLink(
            board, "proxy", on_disconnect=lambda: noticed.append(loop.time())
        )
        await link.open()
        assert not board.connectable
        start = loop.time()
        board.peripheral.disconnect()
        await asyncio.sleep(0.2)
        return noticed, board, start

    noticed, board, start = run_virtual(scenario())
    assert [round(t - start, 6) for t in noticed] == [0.04]  # an interval + the hop
    assert board.connectable  # the firmware advertises again
    assert board.restarts == []


FLAKY_MAIN = """
import os

import nus_peripheral


def start():
    try:
        os.stat("crashed_once")
    except OSError:
        with open("crashed_once", "w") as f:
            f.write("1")
        raise RuntimeError("first boot fails")
    return nus_peripheral.NUSPeripheral()
"""


def test_a_crash_at_boot_waits_at_the_repl_for_a_reset() -> None:
    board = VirtualBoard(files={"main.py": FLAKY_MAIN})
    assert [b.outcome for b in board.boots] == ["crash"]
    assert board.state == "repl"
    board.reboot()
    assert [b.outcome for b in board.boots] == ["crash", "ok"]
    assert board.failed_boots == 1
    assert board.state == "running"
    assert board.connectable
    assert "first boot fails" in board.boots[0].detail


def test_a_watchdog_uses_the_board_clock() -> None:
    async def scenario() -> tuple[bool, bool]:
        board = VirtualBoard()
        wdt = board.module("machine").WDT(timeout=1000)
        await asyncio.sleep(0.5)
        early = wdt.overdue()
        await asyncio.sleep(1)
        return early, wdt.overdue()

    assert run_virtual(scenario()) == (False, True)


def test_power_loss_while_booting_is_a_boot_that_did_not_finish() -> None:
    board = VirtualBoard(boot=False)
    board.power_loss_at(1)  # the first flash write during boot
    board.write(
        "main.py",
        "with open('log', 'w') as f:\n    f.write('up')\n"
        + board.read("main.py").decode(),
    )
    board.boot()
    assert [b.outcome for b in board.boots] == ["power", "ok"]
    assert board.read("log") == b"up"
    assert board.state == "running"


def test_a_reset_loses_what_the_firmware_wrote_but_did_not_flush() -> None:
    board = VirtualBoard()
    f = board.fs.open("staged", "wb")
    f.write(b"flushed")
    f.flush()
    f.write(b" and not flushed")
    board.reboot()  # the board does not close the firmware's files for it
    assert board.read("staged") == b"flushed"
    assert board.state == "running"


def deflated_frame(off: int, data: bytes) -> bytes:
    """A deflated frame (0xFE, docs/protocol.md) of `data` at file offset `off`."""
    c = zlib.compressobj(9, zlib.DEFLATED, -9)
    return deflate_frame(off, len(data), c.compress(data) + c.flush())


@pytest.mark.parametrize("has_deflate", [True, False])
def test_deflated_frames_on_a_board_with_and_without_deflate(has_deflate: bool) -> None:
    new_app = (FIRMWARE_DIR / "ota_data.py").read_bytes()[:300]  # real source

    async def scenario() -> tuple[VirtualBoard, dict[str, object], list[bytes]]:
        board = VirtualBoard(has_deflate=has_deflate)
        hello = await _ask(board, b"OTA:HELLO\n")
        info = json.loads(hello[0][len(b"OTA:HELLO:") :])
        got: list[bytes] = []
        link = SimLink(board, "local", on_notify=got.append)
        await link.open()
        crc = f"{binascii.crc32(new_app):08x}"
        line = f"OTA:FILE:app.py:{len(new_app)}:{crc}:1.1.0:bin:-:\n"
        await link.write_with_response(line.encode())
        await asyncio.sleep(0.1)
        await link.write_with_response(deflated_frame(0, new_app))
        await asyncio.sleep(0.5)
        return board, info, b"".join(got).splitlines()

    board, info, replies = run_virtual(scenario())
    assert replies[0].startswith(b"OTA:READY:0:")
    if has_deflate:
        assert info["deflate"] == {"wbits": 9, "max": 1024}
        assert replies[1:] == [b"OTA:A:%d" % len(new_app)]
        assert board.read("app.py.new") == new_app
    else:
        assert "deflate" not in info
        assert replies[1:] == [b"OTA:ERR:BAD_DATA:0"]


def test_decoding_a_deflated_frame_costs_board_time() -> None:
    """The decoder's time (inflate_us_per_byte per file byte) delays the A."""
    new_app = (FIRMWARE_DIR / "ota_data.py").read_bytes()[:300]  # real source

    async def ack_after(us_per_byte: float) -> float:
        board = VirtualBoard(speed=BoardSpeed(inflate_us_per_byte=us_per_byte))
        got: list[bytes] = []
        acked = asyncio.Event()

        def notified(data: bytes) -> None:
            got.append(data)
            if data.startswith(b"OTA:A:"):
                acked.set()

        link = SimLink(board, "local", on_notify=notified)
        await link.open()
        crc = f"{binascii.crc32(new_app):08x}"
        line = f"OTA:FILE:app.py:{len(new_app)}:{crc}:1.1.0:bin:-:\n"
        await link.write_with_response(line.encode())
        await asyncio.sleep(0.5)
        assert got[-1].startswith(b"OTA:READY:0:"), got
        loop = asyncio.get_running_loop()
        start = loop.time()
        await link.write_with_response(deflated_frame(0, new_app))
        await asyncio.wait_for(acked.wait(), 5)
        return loop.time() - start

    free = run_virtual(ack_after(0.0))
    costly = run_virtual(ack_after(100.0))  # 100 us per byte: 30 ms for 300
    assert 0.029 < costly - free < 0.032, (free, costly)


@pytest.mark.parametrize(
    ("write", "kind"),
    [
        (b"\xff\x03\x00\x00\x00\x00\x00abc", "frame"),
        (deflated_frame(0, b"abc"), "zframe"),
        (b"OTA:DATA:0:616263\n", "hex"),
        (b"PING\n", "line"),
    ],
    ids=["frame", "zframe", "hex", "line"],
)
def test_the_write_cost_kind_is_read_from_the_firmware_rx_ring(
    write: bytes, kind: str
) -> None:
    """The simulator prices the next poll() by what lies in the real ring."""
    board = VirtualBoard()
    central = Central()
    connect(board, central)
    board.receive(central, write)  # type: ignore[arg-type]
    assert board.peripheral.pending() == 1
    assert next_write_kind(board.peripheral) == kind
