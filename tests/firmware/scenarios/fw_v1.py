"""Protocol v1: what an existing client (stop-and-wait, one line per write) sees.

Every reply is compared byte for byte with docs/protocol-v1.md.
"""

import json

from fwtest import (
    Board,
    FakeOs,
    blob,
    crc32_hex,
    exists,
    hexs,
    install_v1,
    listdir,
    read,
    write,
)

OLD = b"print('old main')\n"


def _start(data, name="main.py", ver="1.0.1", chunk=64, token=None):
    line = f"OTA:START:{name}:{len(data)}:{crc32_hex(data)}:{ver}:{chunk}"
    if token is not None:
        line += ":" + token
    return line


def _free(board_free):
    import ota_hello

    ota_hello.os = FakeOs(board_free)
    return ota_hello.os


def test_v1_client_flow_is_byte_identical():
    write("main.py", OLD)
    b = Board()
    data = blob(1000, 5)
    replies = [b.one(_start(data))]
    assert b.m.state == b.m.ARMED
    for seq in range(16):
        replies.append(b.one(f"OTA:DATA:{seq}:{hexs(data[seq * 64 : seq * 64 + 64])}"))
        assert b.m.state == b.m.RECEIVING
    replies.extend(b.send("OTA:COMMIT"))
    assert replies == ["OTA:READY"] + [f"OTA:ACK:{i}" for i in range(16)] + ["OTA:OK"]
    assert b.reset
    assert read("main.py") == data
    assert read("main.py.bak") == OLD
    assert listdir() == ["main.py", "main.py.bak", "ota_reserve.bin", "ota_state.json"]


def test_v1_commit_records_version_and_trial():
    write("main.py", OLD)
    b = Board()
    data = blob(300, 2)
    install_v1(b, "main.py", data, ver="1.2.0")
    st = json.loads(read("ota_state.json"))
    assert st["files"]["main.py"] == {
        "size": 300,
        "crc": crc32_hex(data),
        "ver": "1.2.0",
    }
    trial = st["trial"]
    assert trial["ver"] == "1.2.0"
    assert trial["prev_ver"] == "1.0.0"
    assert trial["files"] == ["main.py"]
    assert trial["added"] == []
    assert trial["prev"] == {"main.py": None}
    assert trial["boots"] == 0
    b.reboot()
    hello = b.hello()
    assert hello["files"]["main.py"] == {
        "size": 300,
        "crc": crc32_hex(data),
        "ver": "1.2.0",
    }
    assert hello["trial"] == {"ver": "1.2.0", "boots": 0}


def test_v1_new_file_is_added_without_backup():
    b = Board()
    data = blob(10, 1)
    install_v1(b, "app.py", data, ver="")
    assert read("app.py") == data
    assert not exists("app.py.bak")
    st = json.loads(read("ota_state.json"))
    assert st["trial"]["added"] == ["app.py"]
    assert st["trial"]["ver"] is None
    assert st["files"]["app.py"]["ver"] is None


def test_v1_start_busy_comes_first():
    b = Board()
    data = blob(10)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(_start(data)) == "OTA:REJECT:BUSY"
    assert b.one("OTA:START") == "OTA:REJECT:BUSY"
    assert b.one("OTA:START:../x:1:zz") == "OTA:REJECT:BUSY"
    assert b.m.state == b.m.ARMED


def test_v1_start_bad_args():
    b = Board()
    for line in (
        "OTA:START",
        "OTA:START:main.py",
        "OTA:START:main.py:10",
        "OTA:START:main.py:ten:0000abcd",
        "OTA:START:main.py:-1:0000abcd",
        "OTA:START:main.py:10:xyz",
        "OTA:START:main.py:10:0000abcdef",
        "OTA:START:main.py:10:0000abcd:1.0.1::tok",
        "OTA:START:main.py:10:0000abcd:1.0.1:big:tok",
        "OTA:START:main.py::0000abcd",
    ):
        assert b.one(line) == "OTA:REJECT:BAD_ARGS", line
        assert b.m.state == b.m.IDLE
    assert listdir() == []


def test_v1_start_auth_before_forbidden():
    b = Board(AUTH_TOKEN="s3cret")
    data = blob(10)
    assert b.one(_start(data, name="../boot.py")) == "OTA:REJECT:AUTH"
    assert b.one(_start(data, token="wrong")) == "OTA:REJECT:AUTH"
    assert b.one(_start(data, token="s3cret")) == "OTA:READY"


def test_v1_token_may_hold_colons():
    b = Board(AUTH_TOKEN="a:b")
    assert b.one(_start(blob(10), token="a:b")) == "OTA:READY"


def test_v1_start_forbidden_before_any_file_io():
    b = Board()
    fake = _free(0)
    data = blob(10)
    for name in (
        "boot.py",
        "/main.py",
        "../main.py",
        "main.py/..",
        "lib/main.py",
        "MAIN.PY",
        "",
    ):
        assert b.one(_start(data, name=name)) == "OTA:REJECT:FORBIDDEN", name
    assert fake.statvfs_calls == 0
    assert listdir() == []


def test_v1_start_nospace_at_80_percent():
    b = Board()
    from ota_setup import COMMIT_RESERVE

    fake = _free(40960 + COMMIT_RESERVE)  # 80 % of what the commit leaves
    assert b.one(_start(blob(32769))) == "OTA:REJECT:NOSPACE"
    assert b.one(_start(blob(32768))) == "OTA:READY"
    assert fake.statvfs_calls == 2


def test_v1_nospace_before_version():
    b = Board()
    _free(4096)
    assert b.one(_start(blob(4000), ver="0.0.1")) == "OTA:REJECT:NOSPACE"


def test_v1_start_version_guard():
    b = Board()
    data = blob(10)
    for ver in ("0.9.9", "0.99", "1.0.0-0" if False else "0", "0.9.9-rc1"):
        assert b.one(_start(data, ver=ver)) == "OTA:REJECT:VERSION", ver
    for ver in ("1.0.0", "1.0", "1.0.1", "1.10.0", "2", ""):
        assert b.one(_start(data, ver=ver)) == "OTA:READY", ver
        assert b.one("OTA:ABORT") == "OTA:ABORTED"


class _Config:
    """A board's config module, as `import config` finds it."""

    def __init__(self, version):
        self.VERSION = version


# (config.VERSION on the board, version in START, expected reply)
VERSIONS = (
    ("1.2.3", "v1.2.3", "OTA:READY"),
    ("1.2.3", "V1.2.4", "OTA:READY"),
    ("1.2.3", "v1.2.2", "OTA:REJECT:VERSION"),
    ("1.2.3", "1.2", "OTA:REJECT:VERSION"),
    ("1.2.3", "1.3", "OTA:READY"),
    ("1.2.3", "1.2.3-rc1", "OTA:READY"),
    ("1.2.3", "1.2.2-rc1", "OTA:REJECT:VERSION"),
    ("1.2.3", "", "OTA:READY"),
    ("1.2.3", "garbage", "OTA:READY"),
    ("1.2.3", "v", "OTA:READY"),
    ("v1.2.3", "1.2.2", "OTA:REJECT:VERSION"),
    ("v1.2.3", "1.2.3", "OTA:READY"),
    ("1.2", "1.2.0", "OTA:READY"),
    ("1.2", "1.1.9", "OTA:REJECT:VERSION"),
    ("1.2.0-rc1", "1.2.0", "OTA:READY"),
    ("1.2.0-rc1", "1.1", "OTA:REJECT:VERSION"),
    (2.0, "1.9", "OTA:REJECT:VERSION"),
    (2.0, "2.0", "OTA:READY"),
    (2.0, "v2.0.1", "OTA:READY"),
    (2.0, "garbage", "OTA:READY"),
    (2, "1.9", "OTA:REJECT:VERSION"),
    ("", "0.0.1", "OTA:READY"),
    ("garbage", "0.0.1", "OTA:READY"),
    ("unknown", "v0.1", "OTA:READY"),
)


def test_v1_versions_both_sides():
    """A leading v/V is skipped; nothing to compare (no digits) allows the
    update, as v1 did; a numeric config.VERSION compares as its text."""
    import sys

    b = Board()
    data = blob(10)
    try:
        for board_ver, ver, want in VERSIONS:
            sys.modules["config"] = _Config(board_ver)
            got = b.send(_start(data, ver=ver))
            assert got == [want], (board_ver, ver, got)
            if want == "OTA:READY":
                assert b.one("OTA:ABORT") == "OTA:ABORTED"
    finally:
        del sys.modules["config"]


def test_v1_start_refuses_versions_hello_could_not_report():
    data = blob(10)
    b = Board()
    for ver in ("1,2", "1|2", "1.0\u00e9", "1.0\x01", "1.0\x7f", "9" * 65):
        assert b.one(_start(data, ver=ver)) == "OTA:REJECT:BAD_ARGS", ver
        assert b.m.state == b.m.IDLE
    for ver in ("9" * 64, "1.0 beta", "v2.0-rc.1+build~7"):
        assert b.one(_start(data, ver=ver)) == "OTA:READY", ver
        assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert listdir() == []


def test_v1_token_in_the_sixth_field_as_the_clients_send_it():
    data = blob(10)
    head = f"OTA:START:main.py:10:{crc32_hex(data)}:1.0.1"
    b = Board(AUTH_TOKEN="s3cret")
    assert b.one(head + ":s3cret") == "OTA:READY"
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert b.one(head + ":wrong") == "OTA:REJECT:AUTH"
    assert b.one(head + ":") == "OTA:REJECT:AUTH"
    assert b.one(head + ":64:s3cret") == "OTA:READY"  # the documented form
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert b.one(head + ":s3:cret") == "OTA:REJECT:BAD_ARGS"  # chunk size "s3"
    b = Board(AUTH_TOKEN="123456")
    assert b.one(head + ":123456") == "OTA:REJECT:AUTH"  # a number is the chunk size
    assert b.one(head + ":64:123456") == "OTA:READY"
    b = Board(AUTH_TOKEN=None)
    assert b.one(head + ":anything") == "OTA:READY"


def test_v1_names_state_reset_and_machine():
    """What v1 users' tests reach into: _state, _reset(), ota_manager.machine."""
    import ota_manager

    class Machine:
        resets = 0

        def reset(self):
            self.resets += 1

    fake = Machine()
    ota_manager.machine = fake
    b = Board()
    m = b.m
    data = blob(64)
    assert m._state == m.IDLE
    assert b.one(_start(data)) == "OTA:READY"
    assert m._state == m.ARMED == m.state
    m._reset()
    assert m._state == m.IDLE
    assert listdir() == []
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data)}") == "OTA:ACK:0"
    assert m._state == m.RECEIVING
    assert b.send("OTA:COMMIT") == ["OTA:OK"]
    assert fake.resets == 1
    assert not b.reset  # the stand-in's machine.reset was not used
    assert m._state == m.IDLE  # v1 returns to IDLE right after OTA:OK
    assert read("main.py") == data
    assert b.one(_start(data, ver="1.0.2")) == "OTA:READY"  # the next transfer


def test_v1_without_config_skips_version_check():
    import sys

    sys.modules["config"] = None  # no config.py on this board
    try:
        b = Board()
        assert b.one(_start(blob(10), ver="0.0.1")) == "OTA:READY"
    finally:
        del sys.modules["config"]


def test_v1_data_before_start():
    b = Board()
    assert b.one("OTA:DATA:0:00") == "OTA:ERR:NOT_READY"
    assert b.one("OTA:DATA:x:00") == "OTA:ERR:NOT_READY"
    assert b.one("OTA:COMMIT") == "OTA:ERR:NOT_RECEIVING"


def test_v1_data_seq_rules():
    b = Board()
    data = blob(200, 9)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:1:{hexs(data[:64])}") == "OTA:ERR:1"
    assert b.one(f"OTA:DATA:0:{hexs(data[:64])}") == "OTA:ACK:0"
    assert b.one(f"OTA:DATA:0:{hexs(data[:64])}") == "OTA:ACK:0"  # repeat: not written
    assert b.one("OTA:DATA:x:00") == "OTA:ERR:BAD_SEQ"
    assert b.one("OTA:DATA:-1:00") == "OTA:ERR:BAD_SEQ"
    assert b.one("OTA:DATA::00") == "OTA:ERR:BAD_SEQ"
    assert b.one("OTA:DATA") == "OTA:ERR:BAD_SEQ"
    assert b.one("OTA:DATA:5:00") == "OTA:ERR:5"
    assert b.one("OTA:DATA:99999999999999999999:00") == "OTA:ERR:99999999999999999999"
    assert b.one("OTA:DATA:1:zz") == "OTA:ERR:BAD_DATA:1"
    assert b.one("OTA:DATA:1:") == "OTA:ERR:BAD_DATA:1"
    assert b.one("OTA:DATA:1:abc") == "OTA:ERR:BAD_DATA:1"
    assert b.one(f"OTA:DATA:01:{hexs(data[64:128])}") == "OTA:ACK:1"
    assert b.one(f"OTA:DATA:2:{hexs(data[128:]).upper()}") == "OTA:ACK:2"
    assert b.send("OTA:COMMIT") == ["OTA:OK"]
    assert read("main.py") == data


def test_v1_commit_needs_a_chunk():
    b = Board()
    assert b.one("OTA:START:main.py:0:00000000:1.0.1:64") == "OTA:READY"
    assert b.one("OTA:COMMIT") == "OTA:ERR:NOT_RECEIVING"
    assert b.m.state == b.m.ARMED


def test_v1_commit_size_error_deletes_temp():
    write("main.py", OLD)
    b = Board()
    data = blob(100)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data[:64])}") == "OTA:ACK:0"
    assert exists("_ota_tmp")
    assert b.one("OTA:COMMIT") == "OTA:ERR:SIZE:got=64,exp=100"
    assert b.m.state == b.m.IDLE
    assert listdir() == ["main.py"]
    assert read("main.py") == OLD
    assert b.one("OTA:DATA:1:00") == "OTA:ERR:NOT_READY"


def test_v1_oversize_is_counted_not_stored():
    b = Board()
    data = blob(100)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(blob(64, 3))}") == "OTA:ACK:0"
    assert b.one(f"OTA:DATA:1:{hexs(blob(64, 4))}") == "OTA:ACK:1"
    b.m.t.f.flush()
    assert len(read("_ota_tmp")) == 100
    assert b.one("OTA:COMMIT") == "OTA:ERR:SIZE:got=128,exp=100"
    assert listdir() == []


def test_v1_commit_crc_error_deletes_temp():
    b = Board()
    data = blob(64)
    line = "OTA:START:main.py:64:{}:1.0.1:64".format(crc32_hex(b"x" * 64))
    assert b.one(line) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data)}") == "OTA:ACK:0"
    assert b.one("OTA:COMMIT") == "OTA:ERR:CRC:got={},exp={}".format(
        crc32_hex(data),
        crc32_hex(b"x" * 64),
    )
    assert b.m.state == b.m.IDLE
    assert listdir() == []


def test_v1_abort_command_and_disconnect():
    b = Board()
    data = blob(100)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data[:64])}") == "OTA:ACK:0"
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert b.m.state == b.m.IDLE
    assert listdir() == []
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data[:64])}") == "OTA:ACK:0"
    b.m.abort()
    assert b.replies.take() == []
    assert b.m.state == b.m.IDLE
    assert listdir() == []
    assert b.one(f"OTA:DATA:1:{hexs(data[64:])}") == "OTA:ERR:NOT_READY"
    assert b.one(_start(data)) == "OTA:READY"


def test_unknown_commands():
    b = Board()
    for line in (
        "OTA:",
        "OTA:FOO",
        "OTA:start:main.py:1:00000000",
        "OTA:STARTX",
        "OTA:DAT",
        "OTA:ACK:0",
        b"OTA:\xff\xfe",
    ):
        assert b.one(line) == "OTA:ERR:UNKNOWN_CMD", line
    for line in ("PING", "", "OTA", "ota:START", " VERSION", b"\xff\xfe OTA"):
        assert b.send(line) == [], line  # the application's lines: no reply
    assert b.m.state == b.m.IDLE


def test_line_endings_and_bytes_accepted():
    b = Board()
    data = blob(64)
    assert b.one(_start(data) + "\r\n") == "OTA:READY"
    assert b.one((f"OTA:DATA:0:{hexs(data)}\n").encode()) == "OTA:ACK:0"
    assert b.one(bytearray(b"OTA:COMMIT")) == "OTA:OK"
    assert read("main.py") == data


def test_restart_removes_stale_temp():
    b = Board()
    data = blob(100)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data[:64])}") == "OTA:ACK:0"
    b.reboot()
    assert listdir() == []
    assert b.one(f"OTA:DATA:1:{hexs(data[64:])}") == "OTA:ERR:NOT_READY"


def test_watchdog_fed_on_lines_writes_commit_and_reset():
    import machine
    import ota_manager

    ota_manager.OTAManager.RESET_DELAY_MS = 0
    wdt = machine.WDT(timeout=5000)
    out = []
    m = ota_manager.OTAManager(out.append, wdt)
    data = blob(128)
    m.handle(_start(data))
    assert wdt.feeds == 1
    m.handle(f"OTA:DATA:0:{hexs(data[:64])}")
    assert wdt.feeds == 3  # the line, then the flash write
    m.handle(f"OTA:DATA:0:{hexs(data[:64])}")
    assert wdt.feeds == 4  # a repeat writes nothing
    m.handle(f"OTA:DATA:1:{hexs(data[64:])}")
    assert wdt.feeds == 6
    try:  # noqa: SIM105 - MicroPython has no contextlib
        m.handle("OTA:COMMIT")
    except machine.Reset:
        pass
    assert out[-1] == "OTA:OK"
    assert wdt.feeds == 10  # the line, before commit, after OK, before reset


def test_write_error_aborts_transfer():
    b = Board()
    data = blob(128)
    assert b.one(_start(data)) == "OTA:READY"

    class Full:
        def write(self, data):
            raise OSError(28)

        def close(self):
            pass

    b.m.t.f.close()
    b.m.t.f = Full()
    r = b.one(f"OTA:DATA:0:{hexs(data[:64])}")
    assert r.startswith("OTA:ERR:WRITE:"), r
    assert r.count(":") == 3, r
    assert b.m.state == b.m.IDLE
    assert listdir() == []


def test_rename_error_puts_old_file_back():
    import ota_commit
    from fwtest import Cut, cut_power

    write("main.py", OLD)
    write("main.py.bak", b"older")
    b = Board()
    data = blob(64)
    assert b.one(_start(data)) == "OTA:READY"
    assert b.one(f"OTA:DATA:0:{hexs(data)}") == "OTA:ACK:0"
    import ota_state

    # the step that renames the temp file onto main.py, found on a scratch copy
    log = _dry_run_log(data)
    at = [i for i, what in enumerate(log) if what.startswith("rename _ota_tmp")]
    assert len(at) == 1, log
    cut_power(Cut(at[0], oserror=True), ota_commit, ota_state)
    r = b.one("OTA:COMMIT")
    assert r.startswith("OTA:ERR:RENAME:"), r
    assert not b.reset
    assert b.m.state == b.m.IDLE
    assert read("main.py") == OLD
    assert "ota_journal.json" not in listdir()
    assert "_ota_tmp" not in listdir()


def _dry_run_log(data):
    """The filesystem steps of a v1 commit, recorded on a scratch copy."""
    import os

    import ota_commit
    import ota_state
    from fwtest import Cut, cut_power

    here = os.getcwd()
    os.mkdir("dry")
    os.chdir("dry")
    try:
        write("main.py", OLD)
        write("main.py.bak", b"older")
        write("_ota_tmp", data)
        cut = Cut()
        cut_power(cut, ota_commit, ota_state)
        ota_commit.apply(
            [("main.py", "_ota_tmp", "1.0.1", len(data), crc32_hex(data))], "1.0.0"
        )
        for name in os.listdir("."):
            os.remove(name)
    finally:
        os.chdir(here)
        os.rmdir("dry")
    return cut.log
