"""What a v1 user's desktop tests of their OTAManager look like.

Run on plain CPython next to an `ota_manager.py` (ours or a v1 one) with only
the `machine` stub (v1_machine.py): no `micropython` module, and `time` as
CPython has it. They use what the v1 class offers: `_state` and the state
constants, `_reply` (reassigned to capture replies), `_reset()` (back to
IDLE, which v1 calls after OTA:OK), `ota_manager.machine` (patched so that a
commit does not end the test), the watchdog hook and the v1 replies.
tests/firmware/test_v1_drop_in.py copies this file, v1_conftest.py and
v1_machine.py into a scratch folder and runs them there.
"""

import binascii
import sys
import time

import machine
import ota_manager
import pytest
from ota_manager import OTAManager


def crc(data):
    return "%08x" % (binascii.crc32(data) & 0xFFFFFFFF)


START_ABC = "OTA:START:main.py:3:" + crc(b"abc")  # the 3 bytes b"abc"


def board(token=None, wdt=None):
    replies = []
    OTAManager.AUTH_TOKEN = token
    OTAManager.ALLOWED_FILES = {"main.py", "app.py"}
    if wdt is None:
        m = OTAManager(replies.append)
    else:
        m = OTAManager(replies.append, wdt=wdt)
    return m, replies


def abc_received(start=START_ABC):
    """A board that took `start`, then the first chunk, b"abc"; (m, replies)."""
    m, out = board()
    m.handle(start)
    m.handle("OTA:DATA:0:" + b"abc".hex())
    return m, out


def send_file(m, name, data, chunk=16):
    """START, every DATA, COMMIT; the replies of this transfer."""
    replies = []
    m._reply = replies.append
    m.handle(f"OTA:START:{name}:{len(data)}:{crc(data)}")
    assert replies == ["OTA:READY"], replies
    for seq, off in enumerate(range(0, len(data), chunk)):
        m.handle(f"OTA:DATA:{seq}:{data[off : off + chunk].hex()}")
        assert replies[-1] == f"OTA:ACK:{seq}", replies
    m.handle("OTA:COMMIT")
    return replies


@pytest.fixture(autouse=True)
def quick_reset(monkeypatch):
    """The post-commit delay is not the test's business."""
    monkeypatch.setattr(OTAManager, "RESET_DELAY_MS", 0)


# -- START ---------------------------------------------------------------------


def test_ready_arms_the_manager():
    m, out = board()
    assert m._state == OTAManager.IDLE
    m.handle(START_ABC)
    assert out == ["OTA:READY"]
    assert m._state == OTAManager.ARMED


@pytest.mark.parametrize("name", ["boot.py", "../main.py", "/main.py", "lib/x.py"])
def test_start_refuses_files_outside_the_allowlist(name):
    m, out = board()
    m.handle("OTA:START:{}:3:{}".format(name, crc(b"abc")))
    assert out == ["OTA:REJECT:FORBIDDEN"]
    assert m._state == OTAManager.IDLE


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        pytest.param(
            "OTA:START:main.py:3", "OTA:REJECT:BAD_ARGS", id="start_needs_crc"
        ),
        pytest.param("OTA:DATA:0:00", "OTA:ERR:NOT_READY", id="data_before_start"),
        pytest.param("OTA:FLY", "OTA:ERR:UNKNOWN_CMD", id="unknown_ota_command"),
    ],
)
def test_a_fresh_board_answers_one_line(line, reply):
    m, out = board()
    m.handle(line)
    assert out == [reply]


def test_second_start_is_busy():
    m, out = board()
    m.handle(START_ABC)
    m.handle("OTA:START:app.py:3:{}".format(crc(b"abc")))
    assert out == ["OTA:READY", "OTA:REJECT:BUSY"]


def test_start_refuses_what_does_not_fit(tight_flash):
    m, out = board()
    m.handle("OTA:START:main.py:10000:{}".format(crc(b"x" * 10000)))
    assert out == ["OTA:REJECT:NOSPACE"]


def test_token_in_the_documented_seven_field_form():
    m, out = board(token="s3cret")
    m.handle(START_ABC + ":1.0.1:64:s3cret")
    assert out == ["OTA:READY"]


def test_token_as_the_v1_clients_send_it():
    """The desktop CLI and the Android app put the token in the 6th field."""
    m, out = board(token="s3cret")
    m.handle(START_ABC + ":1.0.1:s3cret")
    assert out == ["OTA:READY"]


def test_wrong_token_is_refused():
    m, out = board(token="s3cret")
    m.handle(START_ABC + ":1.0.1:64:guess")
    assert out == ["OTA:REJECT:AUTH"]
    assert m._state == OTAManager.IDLE


def test_older_version_is_refused(board_dir):
    (board_dir / "config.py").write_text('VERSION = "1.4.0"\n')
    m, out = board()
    m.handle(START_ABC + ":1.3.9")
    assert out == ["OTA:REJECT:VERSION"]


def test_newer_version_with_a_v_prefix_is_taken(board_dir):
    (board_dir / "config.py").write_text('VERSION = "1.4.0"\n')
    m, out = board()
    m.handle(START_ABC + ":v2.0")
    assert out == ["OTA:READY"]


def test_float_config_version_is_compared_as_text(board_dir):
    (board_dir / "config.py").write_text("VERSION = 2.0\n")
    m, out = board()
    m.handle(START_ABC + ":2.1")
    assert out == ["OTA:READY"]


# -- DATA ----------------------------------------------------------------------


def test_first_chunk_is_acked_and_receiving():
    m, out = abc_received()
    assert out[-1] == "OTA:ACK:0"
    assert m._state == OTAManager.RECEIVING


def test_repeated_chunk_is_acked_again_and_written_once(board_dir):
    m, out = abc_received("OTA:START:main.py:6:{}".format(crc(b"abcdef")))
    m.handle("OTA:DATA:0:" + b"abc".hex())
    m.handle("OTA:DATA:1:" + b"def".hex())
    assert out[1:] == ["OTA:ACK:0", "OTA:ACK:0", "OTA:ACK:1"]
    m._reply = out.append
    m.handle("OTA:COMMIT")
    assert out[-1] == "OTA:OK"
    assert (board_dir / "main.py").read_bytes() == b"abcdef"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        pytest.param(
            "OTA:DATA:2:" + b"abc".hex(), "OTA:ERR:2", id="chunk_out_of_order"
        ),
        pytest.param("OTA:DATA:zero:00", "OTA:ERR:BAD_SEQ", id="bad_seq"),
        pytest.param("OTA:COMMIT", "OTA:ERR:NOT_RECEIVING", id="commit_without_data"),
    ],
)
def test_after_start_a_line_out_of_turn_is_an_error(line, error):
    m, out = board()
    m.handle(START_ABC)
    m.handle(line)
    assert out[-1] == error


# -- COMMIT --------------------------------------------------------------------


def test_commit_installs_and_resets(board_dir):
    (board_dir / "main.py").write_bytes(b"old\n")
    m, _ = board()
    data = b"print('new')\n" * 5
    assert send_file(m, "main.py", data)[-1] == "OTA:OK"
    assert (board_dir / "main.py").read_bytes() == data
    assert machine.reset_calls == [True]


def test_commit_returns_to_idle_before_the_reset(no_reset):
    m, _ = board()
    assert send_file(m, "main.py", b"x = 1\n")[-1] == "OTA:OK"
    assert m._state == OTAManager.IDLE


def test_commit_keeps_the_old_file_as_bak(board_dir, no_reset):
    (board_dir / "app.py").write_bytes(b"old\n")
    m, _ = board()
    send_file(m, "app.py", b"new\n")
    assert (board_dir / "app.py.bak").read_bytes() == b"old\n"


def test_bad_crc_installs_nothing(board_dir):
    m, out = abc_received("OTA:START:main.py:3:00000000")
    m.handle("OTA:COMMIT")
    assert out[-1].startswith("OTA:ERR:CRC:")
    assert not (board_dir / "main.py").exists()
    assert not (board_dir / "_ota_tmp").exists()
    assert m._state == OTAManager.IDLE


def test_short_file_is_a_size_error():
    m, out = abc_received("OTA:START:main.py:99:{}".format(crc(b"abc")))
    m.handle("OTA:COMMIT")
    assert out[-1] == "OTA:ERR:SIZE:got=3,exp=99"
    assert m._state == OTAManager.IDLE


def test_reset_waits_reset_delay_ms(monkeypatch):
    waits = []
    monkeypatch.setattr(OTAManager, "RESET_DELAY_MS", 250)
    monkeypatch.setattr(time, "sleep", waits.append)
    m, _ = board()
    assert send_file(m, "main.py", b"x = 2\n")[-1] == "OTA:OK"
    assert waits == [0.25]
    assert machine.reset_calls == [True]


def test_whole_machine_module_replaced(monkeypatch):
    class Recorder:
        resets = 0

        def reset(self):
            self.resets += 1

    fake = Recorder()
    monkeypatch.setattr(ota_manager, "machine", fake)
    m, _ = board()
    assert send_file(m, "main.py", b"x = 3\n")[-1] == "OTA:OK"
    assert fake.resets == 1
    assert machine.reset_calls == []


def test_two_transfers_with_reset_patched_out(board_dir, no_reset):
    m, _ = board()
    assert send_file(m, "main.py", b"one\n")[-1] == "OTA:OK"
    m._reset()
    assert m._state == OTAManager.IDLE
    assert send_file(m, "app.py", b"two\n")[-1] == "OTA:OK"
    assert (board_dir / "main.py").read_bytes() == b"one\n"
    assert (board_dir / "app.py").read_bytes() == b"two\n"


def test_watchdog_is_fed():
    dog = machine.WDT(timeout=1000)
    m, _ = board(wdt=dog)
    send_file(m, "main.py", b"x = 4\n")
    assert dog.feeds >= 3


# -- ABORT and the rest ----------------------------------------------------------


def test_abort_command_drops_the_transfer(board_dir):
    m, out = abc_received("OTA:START:main.py:6:{}".format(crc(b"abcdef")))
    m.handle("OTA:ABORT")
    assert out[-1] == "OTA:ABORTED"
    assert m._state == OTAManager.IDLE
    assert not (board_dir / "_ota_tmp").exists()


def test_disconnect_abort_sends_nothing():
    m, out = board()
    m.handle(START_ABC)
    m.abort()
    assert out == ["OTA:READY"]
    assert m._state == OTAManager.IDLE


@pytest.mark.parametrize("line", ["PING", "VERSION", "say:OTA:START", ""])
def test_other_lines_get_no_reply(line):
    m, out = board()
    m.handle(line)
    assert out == []


def test_imports_without_micropython():
    assert "micropython" not in sys.modules
    assert not hasattr(time, "sleep_ms")
