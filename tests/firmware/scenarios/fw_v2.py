"""Protocol v2: HELLO, FILE/READY, windowed D/A/N, resume, APPLY, ABORT."""

import json

from fwtest import (
    Board,
    FakeOs,
    b64,
    blob,
    crc32_hex,
    d_line,
    exists,
    file_line,
    hexs,
    install_v1,
    listdir,
    push,
    read,
    stage,
    state,
    write,
)

OLD_MAIN = b"print('main 1.0.0')\n" * 20
OLD_APP = b"def run():\n    pass\n" * 30


def _nonce_ok(n):
    return len(n) == 16 and not n.strip("0123456789abcdef")


def _ready(b, line):
    r = b.one(line)
    assert r.startswith("OTA:READY:"), r
    off, nonce = r[10:].split(":")
    assert _nonce_ok(nonce), r
    return int(off), nonce


def _part_then_link_lost(b, name, data, stop):
    """FILE, the data up to `stop`, then the link drops (the board aborts)."""
    _ready(b, file_line(name, data))
    push(b, data, stop=stop)
    b.m.abort()


def _each_answered(b, reply, lines):
    for line in lines:
        assert b.one(line) == reply, line


def test_hello_capabilities():
    write("main.py", OLD_MAIN)
    b = Board()
    import ota_hello

    ota_hello.os = FakeOs(8 * 4096)
    h = b.hello()
    assert sorted(h) == sorted(
        [
            "proto",
            "fw",
            "app",
            "win",
            "line",
            "enc",
            "auth",
            "hash",
            "nonce",
            "free",
            "files",
            "staged",
            "trial",
            "rollback",
        ]
    )
    assert h["proto"] == 2
    assert h["fw"] == "2.2.0"
    assert h["app"] == "1.0.0"
    assert h["win"] == b.cls.WINDOW
    assert h["line"] == b.cls.LINE_MAX
    assert h["enc"] == ["hex", "b64"]
    assert h["auth"] == "none"
    assert h["free"] == 8 * 4096
    assert h["files"] == {
        "main.py": {"size": len(OLD_MAIN), "crc": crc32_hex(OLD_MAIN), "ver": None},
        "app.py": None,
    }
    assert h["staged"] == {}
    assert h["trial"] is None
    assert h["rollback"] is None
    assert _nonce_ok(h["nonce"])
    assert b.hello()["nonce"] != h["nonce"]
    line = b.send("OTA:HELLO")[0]
    assert " " not in line  # compact JSON
    assert listdir() == ["main.py"]  # HELLO writes nothing


def test_hello_in_every_state_changes_nothing_but_the_nonce():
    b = Board()
    data = blob(1000)
    _ready(b, file_line("main.py", data))
    push(b, data, stop=360)
    h = b.hello()
    assert h["staged"] == {
        "main.py": {"size": 1000, "crc": crc32_hex(data), "ver": "1.1.0", "have": 360}
    }
    assert b.m.state == b.m.RECEIVING
    assert push(b, data, start=360)[-1] == "OTA:A:1000"
    assert b.hello()["staged"]["main.py"]["have"] == 1000
    assert b.one("OTA:START:app.py:4:{}".format(crc32_hex(b"abcd"))) == "OTA:READY"
    b.hello()
    assert b.one("OTA:DATA:0:61626364") == "OTA:ACK:0"


def test_hello_version_needs_matching_crc():
    b = Board()
    data = blob(200)
    install_v1(b, "main.py", data, ver="1.3.0")
    b.reboot()
    assert b.hello()["files"]["main.py"]["ver"] == "1.3.0"
    write("main.py", b"copied by hand")
    assert b.hello()["files"]["main.py"] == {
        "size": 14,
        "crc": crc32_hex(b"copied by hand"),
        "ver": None,
    }


def test_windowed_b64_transfer_and_apply():
    write("main.py", OLD_MAIN)
    b = Board()
    import ota_core
    import ota_hello

    fake = FakeOs()  # the real statvfs, counted
    ota_hello.os = fake
    ota_core.os = fake
    data = blob(5000, 11)
    off, _ = _ready(b, file_line("main.py", data, "1.1.0"))
    assert fake.statvfs_calls == 1
    assert off == 0
    assert b.m.state == b.m.ARMED
    replies = push(b, data, chunk=180, win=8)
    expect = [f"OTA:A:{min(5000, i)}" for i in range(180, 5000 + 180, 180)]
    assert replies == expect
    assert fake.statvfs_calls == 1  # never per chunk
    assert b.m.state == b.m.IDLE
    assert read("main.py.new") == data
    assert read("main.py") == OLD_MAIN
    assert state()["staged"]["main.py"] == {
        "size": 5000,
        "crc": crc32_hex(data),
        "ver": "1.1.0",
        "ok": True,
    }
    assert b.send("OTA:APPLY:main.py:") == ["OTA:OK"]
    assert b.reset
    assert read("main.py") == data
    assert read("main.py.bak") == OLD_MAIN
    assert listdir() == ["main.py", "main.py.bak", "ota_reserve.bin", "ota_state.json"]
    st = state()
    assert st["files"]["main.py"] == {
        "size": 5000,
        "crc": crc32_hex(data),
        "ver": "1.1.0",
    }
    assert st["staged"] == {}


def test_hex_transfer_upper_and_lower_case():
    b = Board()
    data = blob(300, 4)
    _ready(b, file_line("app.py", data, enc="hex"))
    assert b.one(f"OTA:D:0:{hexs(data[:100]).upper()}") == "OTA:A:100"
    assert b.one(f"OTA:D:100:{hexs(data[100:200])}") == "OTA:A:200"
    assert (
        b.one(d_line(data, 200, 100, "b64")) == "OTA:ERR:BAD_DATA:200"
    )  # wrong encoding
    assert b.one(f"OTA:D:200:{hexs(data[200:])}") == "OTA:A:300"
    assert read("app.py.new") == data


def test_gap_gets_one_nak_then_silence():
    b = Board()
    data = blob(2000, 3)
    _ready(b, file_line("main.py", data))
    c = 100
    assert b.send(d_line(data, 0, c)) == ["OTA:A:100"]
    assert b.send(d_line(data, 100, c)) == ["OTA:A:200"]
    # chunk 200 is lost on the air
    assert b.send(d_line(data, 300, c)) == ["OTA:N:200"]
    for off in (400, 500, 600, 700, 300):
        assert b.send(d_line(data, off, c)) == [], off
    assert b.send(d_line(data, 100, c)) == ["OTA:A:200"]  # a duplicate is re-ACKed
    assert b.send(d_line(data, 200, c)) == ["OTA:A:300"]
    assert b.send(d_line(data, 400, c)) == ["OTA:N:300"]  # a new gap: one N again
    assert b.send(d_line(data, 500, c)) == []
    replies = push(b, data, start=300, chunk=c)
    assert replies[-1] == "OTA:A:2000"
    assert len(replies) == 17
    assert read("main.py.new") == data


def test_duplicates_write_nothing():
    b = Board()
    data = blob(600)
    _ready(b, file_line("main.py", data))
    assert b.one(d_line(data, 0)) == "OTA:A:180"
    assert b.one(d_line(data, 0)) == "OTA:A:180"
    assert b.one("OTA:D:0:{}".format(b64(b"garbage"))) == "OTA:A:180"
    assert push(b, data, start=180)[-1] == "OTA:A:600"
    assert read("main.py.new") == data
    # after the last A, late copies still get the final A
    assert b.one(d_line(data, 360)) == "OTA:A:600"
    assert b.one("OTA:FILE:bad") == "OTA:REJECT:BAD_ARGS"


def test_bad_data_keeps_transfer_going():
    b = Board()
    data = blob(400)
    _ready(b, file_line("main.py", data))
    good = b64(data[:120])
    for payload in (
        "",
        "!!!!",
        good[:-1],
        good + "=",
        "a" + good[1:-4] + "@@@@",
        "YQ==YQ==",
        "\u00e9" * 4,
    ):
        assert b.one("OTA:D:0:" + payload) == "OTA:ERR:BAD_DATA:0", payload
    long_line = "OTA:D:0:" + b64(blob(b.cls.LINE_MAX))
    assert b.one(long_line) == "OTA:ERR:BAD_DATA:0"
    assert b.one("OTA:D:0:" + good) == "OTA:A:120"
    assert (
        b.one("OTA:D:120:" + b64(blob(283))) == "OTA:ERR:BAD_DATA:120"
    )  # past the size
    assert push(b, data, start=120, chunk=140)[-1] == "OTA:A:400"
    assert read("main.py.new") == data


def test_bad_offsets_and_not_ready():
    b = Board()
    assert b.one("OTA:D:0:AAAA") == "OTA:ERR:NOT_READY"
    data = blob(100)
    _ready(b, file_line("main.py", data))
    _each_answered(
        b,
        "OTA:ERR:BAD_SEQ",
        (
            "OTA:D:",
            "OTA:D:x:AAAA",
            "OTA:D:-1:AAAA",
            "OTA:D::AAAA",
            "OTA:D:0",
            "OTA:D:1e3:AAAA",
        ),
    )
    assert b.one("OTA:D:99999999999999999999:AAAA") == "OTA:N:0"
    assert b.one("OTA:DATA:0:00") == "OTA:ERR:NOT_READY"  # v1 data in a v2 transfer
    assert b.one("OTA:COMMIT") == "OTA:ERR:NOT_RECEIVING"
    assert b.one(d_line(data, 0, 100)) == "OTA:A:100"


def test_crc_mismatch_discards_staged_file():
    b = Board()
    data = blob(300)
    line = f"OTA:FILE:main.py:300:{crc32_hex(blob(300, 99))}:1.1.0:b64:-:"
    _ready(b, line)
    replies = push(b, data)
    assert (
        replies[-1]
        == f"OTA:ERR:CRC:got={crc32_hex(data)},exp={crc32_hex(blob(300, 99))}"
    )
    assert b.m.state == b.m.IDLE
    assert not exists("main.py.new")
    assert state()["staged"] == {}
    assert b.one(d_line(data, 0)) == "OTA:ERR:NOT_READY"


def test_resume_after_disconnect():
    b = Board()
    data = blob(3000, 8)
    _part_then_link_lost(b, "main.py", data, 1800)  # no reply, staged data kept
    assert b.replies.take() == []
    assert b.m.state == b.m.IDLE
    assert b.one(d_line(data, 1800)) == "OTA:ERR:NOT_READY"
    assert b.hello()["staged"]["main.py"]["have"] == 1800
    off, _ = _ready(b, file_line("main.py", data))
    assert off == 1800
    assert push(b, data, start=off)[-1] == "OTA:A:3000"
    assert read("main.py.new") == data


def test_resume_after_reboot_and_lost_tail():
    b = Board()
    data = blob(9000, 12)
    _ready(b, file_line("app.py", data, ver="2.0.0"))
    push(b, data, stop=5400)
    b.reboot()
    assert b.hello()["staged"]["app.py"]["have"] == 5400
    # the power went before the last blocks reached flash: keep a ragged prefix
    write("app.py.new", read("app.py.new")[:4321])
    b.reboot()
    off, _ = _ready(b, file_line("app.py", data, ver="2.0.0"))
    assert off == 4321
    assert push(b, data, start=off)[-1] == "OTA:A:9000"
    assert b.send("OTA:APPLY:app.py:") == ["OTA:OK"]
    assert read("app.py") == data


def test_resume_of_corrupted_staged_data_fails_crc():
    b = Board()
    data = blob(1000, 12)
    _ready(b, file_line("main.py", data))
    push(b, data, stop=540)
    b.reboot()
    write("main.py.new", b"\x00" * 540)
    off, _ = _ready(b, file_line("main.py", data))
    assert off == 540
    assert push(b, data, start=off)[-1].startswith("OTA:ERR:CRC:")
    assert not exists("main.py.new")
    assert _ready(b, file_line("main.py", data))[0] == 0


def test_resume_refused_for_other_content():
    b = Board()
    data = blob(1000, 1)
    _part_then_link_lost(b, "main.py", data, 360)
    other = blob(1000, 2)
    assert _ready(b, file_line("main.py", other))[0] == 0
    assert push(b, other)[-1] == "OTA:A:1000"
    assert read("main.py.new") == other


def test_complete_staged_file_survives_reboot():
    b = Board()
    data = blob(700)
    stage(b, "main.py", data)
    b.reboot()
    assert b.hello()["staged"]["main.py"]["have"] == 700
    assert _ready(b, file_line("main.py", data))[0] == 700
    assert b.m.state == b.m.IDLE
    assert b.one(d_line(data, 540)) == "OTA:A:700"
    assert b.send("OTA:APPLY:main.py:") == ["OTA:OK"]
    assert read("main.py") == data


def test_staged_full_but_unverified_is_checked():
    b = Board()
    data = blob(500)
    _ready(b, file_line("main.py", data))
    push(b, data, stop=360)
    b.reboot()
    write("main.py.new", data)  # complete on flash, the CRC check never ran
    assert b.one("OTA:APPLY:main.py:") == "OTA:ERR:INCOMPLETE:main.py"
    assert not exists("main.py")
    assert b.hello()["staged"]["main.py"]["have"] == 500
    write("main.py.new", data[:499] + b"!")
    assert b.hello()["staged"]["main.py"]["have"] == 0
    assert _ready(b, file_line("main.py", data))[0] == 0


def test_empty_file():
    write("app.py", OLD_APP)
    b = Board()
    r = b.send(file_line("app.py", b""))
    assert len(r) == 2
    assert r[0].startswith("OTA:READY:0:")
    assert r[1] == "OTA:A:0"
    assert b.m.state == b.m.IDLE
    assert read("app.py.new") == b""
    assert b.send("OTA:APPLY:app.py:") == ["OTA:OK"]
    assert read("app.py") == b""
    assert read("app.py.bak") == OLD_APP


def test_file_checks_in_order():
    b = Board()
    import ota_hello

    fake = FakeOs(40960)
    ota_hello.os = fake
    data = blob(100)
    _ready(b, file_line("main.py", data))
    assert b.one("OTA:FILE:x") == "OTA:REJECT:BUSY"
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    crc = crc32_hex(data)
    _each_answered(
        b,
        "OTA:REJECT:BAD_ARGS",
        (
            "OTA:FILE",
            f"OTA:FILE:main.py:100:{crc}:1.1.0:b64:-",
            f"OTA:FILE:main.py:100:{crc}:1.1.0:b64:-::",
            f"OTA:FILE:main.py:x:{crc}:1.1.0:b64:-:",
            f"OTA:FILE:main.py:-5:{crc}:1.1.0:b64:-:",
            f"OTA:FILE:main.py:100:{crc[:7]}:1.1.0:b64:-:",
            f"OTA:FILE:main.py:100:{crc[:7]}g:1.1.0:b64:-:",
            f"OTA:FILE:main.py:100:{crc}:1.1.0:b32:-:",
            f"OTA:FILE:main.py:100:{crc}:1.1.0:b64::",
            f"OTA:FILE:main.py:100:{crc}:1.1.0:b64:x:",
            f"OTA:FILE:main.py:100:{crc}:1.1.0:b64:f-:",
            f"OTA:FILE:../x:x:{crc}:1.1.0:b64:-:",
            # versions HELLO could not report back
            f"OTA:FILE:main.py:100:{crc}:1,1:b64:-:",
            f"OTA:FILE:main.py:100:{crc}:1|1:b64:-:",
            f"OTA:FILE:main.py:100:{crc}:1.1\u00e9:b64:-:",
            f"OTA:FILE:main.py:100:{crc}:1.1\t:b64:-:",
            f"OTA:FILE:main.py:100:{crc}:{'1' * 65}:b64:-:",
        ),
    )
    fake.statvfs_calls = 0
    assert b.one(file_line("boot.py", data)) == "OTA:REJECT:FORBIDDEN"
    assert b.one(file_line("../main.py", blob(40000))) == "OTA:REJECT:FORBIDDEN"
    assert fake.statvfs_calls == 0
    assert b.one(file_line("main.py", blob(32769))) == "OTA:REJECT:NOSPACE"
    assert b.one(file_line("main.py", blob(32769), ver="0.1")) == "OTA:REJECT:NOSPACE"
    assert b.one(file_line("main.py", data, ver="0.9")) == "OTA:REJECT:VERSION"
    assert _ready(b, file_line("main.py", data, ver="0.9", flags="f"))[0] == 0
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert _ready(b, file_line("main.py", data, ver="0.9", flags="ff"))[0] == 0
    assert listdir() == ["main.py.new", "ota_state.json"]


def test_nospace_counts_staged_bytes_as_free():
    b = Board()
    import ota_hello

    data = blob(40000, 5)
    _part_then_link_lost(b, "main.py", data, 36000)
    from ota_setup import COMMIT_RESERVE

    # beyond the commit's reserve: 36000 staged + 8192 free: 80 % is 35353
    ota_hello.os = FakeOs(8192 + COMMIT_RESERVE)
    assert b.one(file_line("main.py", data)) == "OTA:REJECT:NOSPACE"
    ota_hello.os = FakeOs(16384 + COMMIT_RESERVE)  # 80 % of 52384 is 41907
    assert _ready(b, file_line("main.py", data))[0] == 36000


def test_version_guard_uses_installed_version():
    b = Board()
    data = blob(100, 1)
    install_v1(b, "main.py", data, ver="3.0.0")
    b.reboot()
    assert (
        b.one(file_line("main.py", blob(100, 2), ver="2.9.9")) == "OTA:REJECT:VERSION"
    )
    assert b.one(file_line("app.py", blob(100, 2), ver="2.9.9")) != "OTA:REJECT:VERSION"
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert _ready(b, file_line("main.py", blob(100, 2), ver="3.0.0"))[0] == 0
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert _ready(b, file_line("main.py", blob(100, 2), ver=""))[0] == 0
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    r = b.one(file_line("main.py", blob(100, 2), ver="1.0.0", flags="f"))
    assert r.startswith("OTA:READY:0:")


def test_bundle_apply_is_one_update():
    write("main.py", OLD_MAIN)
    write("app.py", OLD_APP)
    b = Board()
    new_main = blob(2500, 21)
    new_app = blob(1200, 22)
    stage(b, "main.py", new_main, ver="1.5.0")
    stage(b, "app.py", new_app, ver="1.5.0", enc="hex", chunk=100)
    h = b.hello()
    assert h["staged"]["main.py"]["have"] == 2500
    assert h["staged"]["app.py"]["have"] == 1200
    assert read("main.py") == OLD_MAIN
    assert read("app.py") == OLD_APP
    assert b.send("OTA:APPLY:main.py,app.py:") == ["OTA:OK"]
    assert b.reset
    assert read("main.py") == new_main
    assert read("app.py") == new_app
    assert read("main.py.bak") == OLD_MAIN
    assert read("app.py.bak") == OLD_APP
    st = state()
    assert st["files"] == {
        "main.py": {"size": 2500, "crc": crc32_hex(new_main), "ver": "1.5.0"},
        "app.py": {"size": 1200, "crc": crc32_hex(new_app), "ver": "1.5.0"},
    }
    assert st["staged"] == {}
    t = st["trial"]
    assert t["ver"] == "1.5.0"
    assert t["files"] == ["main.py", "app.py"]
    assert t["added"] == []
    assert t["prev_ver"] == "1.0.0"
    assert t["boots"] == 0
    assert t["prev"] == {"main.py": None, "app.py": None}
    b.reboot()
    h = b.hello()
    assert h["files"]["app.py"]["ver"] == "1.5.0"
    assert h["trial"] == {
        "ver": "1.5.0",
        "boots": 0,
    }


def test_apply_only_listed_files():
    b = Board()
    m1 = blob(100, 1)
    a1 = blob(100, 2)
    stage(b, "main.py", m1)
    stage(b, "app.py", a1)
    assert b.send("OTA:APPLY:app.py:") == ["OTA:OK"]
    assert read("app.py") == a1
    assert not exists("main.py")
    assert state()["staged"]["main.py"]["ok"] is True
    assert exists("main.py.new")


def test_apply_errors():
    b = Board()
    data = blob(400)
    stage(b, "main.py", data)
    _ready(b, file_line("app.py", data))
    assert b.one("OTA:APPLY:main.py:") == "OTA:REJECT:BUSY"
    push(b, data, stop=180)
    b.m.abort()
    _each_answered(
        b,
        "OTA:REJECT:BAD_ARGS",
        (
            "OTA:APPLY",
            "OTA:APPLY:main.py",
            "OTA:APPLY::",
            "OTA:APPLY:main.py,:",
            "OTA:APPLY:main.py,main.py:",
            "OTA:APPLY:a:b:c",
        ),
    )
    assert b.one("OTA:APPLY:main.py,boot.py:") == "OTA:REJECT:FORBIDDEN"
    assert b.one("OTA:APPLY:main.py,app.py:") == "OTA:ERR:INCOMPLETE:app.py"
    b.cls.ALLOWED_FILES = {"main.py", "app.py", "lib.py"}
    assert b.one("OTA:APPLY:lib.py:") == "OTA:ERR:INCOMPLETE:lib.py"
    write("main.py.new", data[:10])  # staged file damaged behind our back
    assert b.one("OTA:APPLY:main.py:") == "OTA:ERR:INCOMPLETE:main.py"
    assert not exists("main.py")
    assert not exists("ota_journal.json")


def test_abort_discards_every_staged_file():
    write("main.py", OLD_MAIN)
    b = Board()
    stage(b, "main.py", blob(300))
    data = blob(900)
    _ready(b, file_line("app.py", data))
    push(b, data, stop=360)
    write("app.py.new.x", b"not ours")
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert listdir() == ["app.py.new.x", "main.py", "ota_state.json"]
    assert state()["staged"] == {}
    assert b.hello()["staged"] == {}
    assert _ready(b, file_line("app.py", data))[0] == 0


def test_flash_error_discards_staged_file():
    b = Board()
    data = blob(600)
    _ready(b, file_line("main.py", data))
    assert b.one(d_line(data, 0)) == "OTA:A:180"

    class Broken:
        def write(self, data):
            raise OSError(5)

        def flush(self):
            pass

        def close(self):
            pass

    b.m.t.f.close()
    b.m.t.f = Broken()
    r = b.one(d_line(data, 180))
    assert r.startswith("OTA:ERR:WRITE:"), r
    assert b.m.state == b.m.IDLE
    assert not exists("main.py.new")
    assert state()["staged"] == {}


def test_unexpected_error_answers_internal_and_recovers():
    b = Board()
    data = blob(600)
    _ready(b, file_line("main.py", data))
    assert b.one(d_line(data, 0)) == "OTA:A:180"
    real = b.m.t.f

    class Odd:
        def write(self, data):
            raise ValueError("odd: failure\nhere")

        def close(self):
            real.close()

    b.m.t.f = Odd()
    r = b.one(d_line(data, 180))
    assert r.startswith("OTA:ERR:INTERNAL:"), r
    assert r.count(":") == 3, r
    assert "\n" not in r, r
    assert b.m.state == b.m.IDLE
    assert _ready(b, file_line("main.py", data))[0] == 180  # staged data kept
    assert push(b, data, start=180)[-1] == "OTA:A:600"


def test_reply_failure_does_not_break_the_transfer():
    b = Board()
    data = blob(600)
    _ready(b, file_line("main.py", data))
    good = b.m._reply

    def flaky(line):
        raise OSError(128)  # notify failed: not connected

    b.m._reply = flaky
    b.m.handle(d_line(data, 0))
    b.m._reply = good
    assert b.one(d_line(data, 0)) == "OTA:A:180"
    assert push(b, data, start=180)[-1] == "OTA:A:600"


def test_v1_and_v2_do_not_mix():
    b = Board()
    data = blob(200)
    assert b.one(f"OTA:START:main.py:200:{crc32_hex(data)}") == "OTA:READY"
    assert b.one(file_line("app.py", data)) == "OTA:REJECT:BUSY"
    assert b.one(d_line(data, 0)) == "OTA:ERR:NOT_READY"
    assert b.one("OTA:APPLY:app.py:") == "OTA:REJECT:BUSY"
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    _ready(b, file_line("app.py", data))
    assert b.one(f"OTA:START:main.py:200:{crc32_hex(data)}") == "OTA:REJECT:BUSY"
    assert b.one("OTA:DATA:0:00") == "OTA:ERR:NOT_READY"
    assert json.loads(read("ota_state.json"))["staged"]["app.py"]["ok"] is False
