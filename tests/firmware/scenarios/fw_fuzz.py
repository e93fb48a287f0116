"""Seeded fuzzing of OTAManager.handle on both runtimes.

Lines are plausible commands with odd fields, mutations of valid lines and
raw bytes, with disconnects and resets thrown in. After every line: no
exception, well-formed replies, a known state, no file outside the allowed
set and our own, and the installed files untouched unless the board
answered OTA:OK (and then they match the CRCs it recorded).
"""

from fwtest import (
    Board,
    Fuzzer,
    blob,
    check_board,
    crc32_hex,
    exists,
    read,
    state,
    write,
)

ALLOWED = {"main.py", "app.py"}


def _files():
    return {name: read(name) for name in ALLOWED if exists(name)}


V1 = ("OTA:READY", "OTA:ACK:")
V2 = ("OTA:READY:", "OTA:A:", "OTA:REJECT:", "OTA:ERR:", "OTA:HELLO:", "OTA:ABORTED")


def _fuzz(seed, count, expect=V1 + V2, **attrs):
    write("main.py", blob(333, 77))
    b = Board(ALLOWED_FILES=ALLOWED, **attrs)
    fz = Fuzzer(seed, ALLOWED, attrs.get("AUTH_TOKEN"), attrs.get("AUTH_KEY"))
    installed = _files()
    seen = {}
    oks = 0
    for _ in range(count):
        k = fz.r.below(100)
        if k == 0:
            b.m.abort()
        elif k == 1:
            b.reboot()
        fz.observe(b.send(fz.line()))
        check_board(b, ALLOWED)
        for line in b.last:
            head = line[: line.find(":", 4) + 1] if line.find(":", 4) > 0 else line
            seen[head] = seen.get(head, 0) + 1
        if b.reset:
            assert b.last[-1] == "OTA:OK", b.last
            oks += 1
            b.reboot()
            now = _files()
            recorded = state()["files"]
            for name in installed:
                assert name in now, name
            for name in now:
                if now[name] != installed.get(name):
                    assert crc32_hex(now[name]) == recorded[name]["crc"], name
            installed = now
        else:
            assert "OTA:OK" not in b.last
            assert _files() == installed
    # the fuzzer reached the deep paths, not only the parsers
    for head in expect:
        assert seen.get(head, 0) > 0, (head, seen)
    return {"lines": count, "commits": oks, "replies": len(seen)}


def test_fuzz_seed_1():
    return _fuzz(1, 2500)


def test_fuzz_seed_2_with_token():
    return _fuzz(2, 2500, AUTH_TOKEN="tok")


def test_fuzz_seed_3_with_key():
    return _fuzz(3, 2500, V2, AUTH_KEY="k")  # a key refuses v1


def test_fuzz_seed_4():
    return _fuzz(4, 2500)
