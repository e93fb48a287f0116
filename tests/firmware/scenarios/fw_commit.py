"""Journaled commit, recovery and rollback, with the power cut at every step.

A power cut is a `PowerCut` (a BaseException) raised by the `os` and `open`
of ota_commit and ota_state just before filesystem step k; the "reboot"
forgets every firmware module and creates a new OTAManager, which rolls a
journal forward, as boot does.
"""

import json

from fwtest import (
    Board,
    Cut,
    PowerCut,
    blob,
    clear_dir,
    crc32_hex,
    exists,
    install_v1,
    listdir,
    power_on,
    read,
    stage,
    state,
    write,
)

FILES = {"main.py", "app.py", "lib.py"}
OLD = {"main.py": blob(700, 1), "app.py": blob(300, 2)}
NEW = {"main.py": blob(900, 3), "app.py": blob(250, 4), "lib.py": blob(400, 5)}
BUNDLE = "OTA:APPLY:main.py,app.py,lib.py:"


def _snapshot():
    import os

    return {name: read(name) for name in os.listdir(".")}


def _restore(snap):
    clear_dir()
    for name in snap:
        write(name, snap[name])


def _board():
    return Board(ALLOWED_FILES=FILES)


def _cut(at, oserror=False):
    import ota_commit
    import ota_state
    from fwtest import cut_power

    cut = Cut(at, oserror)
    cut_power(cut, ota_commit, ota_state)
    return cut


def _cut_while(at, action, *args):
    """Run `action(*args)` with the power cut at step `at`; True if it ran through."""
    _cut(at)
    try:
        action(*args)
    except PowerCut:
        return False
    return True


def _every_step():
    """0, 1, 2, ...: the step the power is cut at, until a run goes through."""
    k = 0
    while True:
        yield k
        k += 1


def _powered_board(snap):
    """The files of `snap`, power on, a new board."""
    _restore(snap)
    power_on()
    return _board()


def _prepare_bundle():
    """Version 1.0.0 installed by a bundle, version 2.0.0 staged; a snapshot."""
    b = _board()
    stage(b, "main.py", OLD["main.py"], ver="1.0.0")
    stage(b, "app.py", OLD["app.py"], ver="1.0.0")
    assert b.send("OTA:APPLY:main.py,app.py:") == ["OTA:OK"]
    b.reboot()
    for name in ("main.py", "app.py", "lib.py"):
        stage(b, name, NEW[name], ver="2.0.0")
    b.reboot()
    return _snapshot()


def _all_old():
    if not exists("main.py") or not exists("app.py"):
        return False
    return (
        read("main.py") == OLD["main.py"]
        and read("app.py") == OLD["app.py"]
        and not exists("lib.py")
    )


def _all_new():
    return all(exists(n) and read(n) == NEW[n] for n in NEW)


def _no_leftovers():
    names = listdir()
    assert "ota_journal.json" not in names, names
    assert not [n for n in names if n.endswith(".tmp")], names
    assert "_ota_tmp" not in names, names


def _check_new_state():
    st = state()
    for name, data in NEW.items():
        assert st["files"][name] == {
            "size": len(data),
            "crc": crc32_hex(data),
            "ver": "2.0.0",
        }
    assert st["staged"] == {}
    t = st["trial"]
    assert t["ver"] == "2.0.0"
    assert t["prev_ver"] == "1.0.0"
    assert t["boots"] == 0
    assert t["added"] == ["lib.py"]
    assert sorted(t["files"]) == [
        "app.py",
        "lib.py",
        "main.py",
    ]
    assert t["prev"]["main.py"]["crc"] == crc32_hex(OLD["main.py"])
    assert t["prev"]["lib.py"] is None
    assert read("main.py.bak") == OLD["main.py"]
    assert read("app.py.bak") == OLD["app.py"]


def _check_old_state():
    st = state()
    assert st["files"]["main.py"]["crc"] == crc32_hex(OLD["main.py"])
    assert "lib.py" not in st["files"]
    assert sorted(st["staged"]) == ["app.py", "lib.py", "main.py"]
    assert st["trial"]["ver"] == "1.0.0"


def _reboot(at=-1):
    """Power on; the recovery itself may be cut at step `at`. True if it ran through."""
    power_on()
    if at >= 0:
        import ota_commit  # noqa: F401

        _cut(at)
    try:
        _board()
    except PowerCut:
        return False
    return True


def test_bundle_power_cut_at_every_step():
    snap = _prepare_bundle()
    outcomes = {"old": 0, "new": 0}
    for k in _every_step():
        b = _powered_board(snap)
        done = _cut_while(k, b.send, BUNDLE)
        assert _reboot()
        _no_leftovers()
        if _all_new():
            outcomes["new"] += 1
            _check_new_state()
        else:
            assert _all_old(), k
            outcomes["old"] += 1
            _check_old_state()
            # the staged files are intact: the client applies again
            b = _board()
            assert b.send(BUNDLE) == ["OTA:OK"]
            assert _all_new()
        if done:
            break
    assert outcomes["old"] > 0
    assert outcomes["new"] > 0
    return {"steps": k, "all_old": outcomes["old"], "all_new": outcomes["new"]}


def test_bundle_power_cut_during_recovery_too():
    snap = _prepare_bundle()
    cases = 0
    for k in _every_step():
        b = _powered_board(snap)
        done = _cut_while(k, b.send, BUNDLE)
        for j in (0, 1, 2, 4, 8, 16):
            mid = _snapshot()
            if not _reboot(j):
                cases += 1
                assert _reboot()
                _no_leftovers()
                assert _all_new() or _all_old(), (k, j)
            _restore(mid)
        if done:
            break
    assert cases > 0
    return {"double_cuts": cases}


def test_v1_commit_power_cut_at_every_step():
    write("main.py", OLD["main.py"])
    data = NEW["main.py"]
    for k in _every_step():
        clear_dir()
        write("main.py", OLD["main.py"])
        power_on()
        b = _board()
        assert (
            b.one(f"OTA:START:main.py:{len(data)}:{crc32_hex(data)}:2.0.0:450")
            == "OTA:READY"
        )
        from fwtest import hexs

        assert b.one("OTA:DATA:0:" + hexs(data[:450])) == "OTA:ACK:0"
        assert b.one("OTA:DATA:1:" + hexs(data[450:])) == "OTA:ACK:1"
        done = _cut_while(k, b.send, "OTA:COMMIT")
        assert _reboot()
        _no_leftovers()
        if read("main.py") == data:
            assert read("main.py.bak") == OLD["main.py"]
            assert state()["files"]["main.py"]["ver"] == "2.0.0"
        else:
            assert read("main.py") == OLD["main.py"], k
            assert not exists("ota_state.json")
        if done:
            break
    return {"steps": k}


def test_failed_step_puts_everything_back():
    """An OSError (no power cut) at any write step: ERR:RENAME and all old."""
    snap = _prepare_bundle()
    power_on()
    b = _board()
    cut = _cut(-1)
    b.send(BUNDLE)
    steps = cut.log
    _restore(snap)
    failed = 0
    for k in range(len(steps)):
        what = steps[k]
        reading = what.endswith(" r") or (
            what.startswith("close") and not what.endswith(".tmp")
        )
        if what.startswith("stat") or reading:
            continue  # a read error reads as a missing file: not this test
        b = _powered_board(snap)
        _cut(k, oserror=True)
        r = b.send(BUNDLE)
        if r == ["OTA:OK"]:
            assert what.startswith("remove ota_journal.json"), what
            assert _all_new()
        else:
            assert len(r) == 1, (what, r)
            assert r[0].startswith("OTA:ERR:RENAME:"), (what, r)
            assert not b.reset
            assert b.m.state == b.m.IDLE
            assert _all_old(), what
            _no_leftovers()
            failed += 1
            power_on()
            b = _board()
            assert b.send(BUNDLE) == ["OTA:OK"], what
            assert _all_new()
    assert failed > 5
    return {"failed_steps": failed}


def _rollback_all_the_way():
    """What the boot guard does after a reset: recover, then roll back."""
    import ota_commit

    _board()
    ota_commit.rollback()


def _check_rolled_back():
    assert _all_old()
    assert not exists("main.py.bak")
    assert not exists("app.py.bak")
    st = state()
    assert st["trial"] is None
    assert st["rollback"] == {"ver": "2.0.0", "restored": "1.0.0"}
    assert st["files"]["main.py"] == {
        "size": 700,
        "crc": crc32_hex(OLD["main.py"]),
        "ver": "1.0.0",
    }
    assert "lib.py" not in st["files"]
    _no_leftovers()


def test_rollback_restores_previous_version():
    snap = _prepare_bundle()
    b = _powered_board(snap)
    assert b.send(BUNDLE) == ["OTA:OK"]
    power_on()
    import ota_commit

    assert ota_commit.rollback() is True
    _check_rolled_back()
    assert ota_commit.rollback() is False
    _check_rolled_back()
    b = _board()
    h = b.hello()
    assert h["rollback"] == {"ver": "2.0.0", "restored": "1.0.0"}
    assert h["trial"] is None
    assert h["files"]["main.py"]["ver"] == "1.0.0"
    assert h["files"]["lib.py"] is None


def test_rollback_power_cut_at_every_step():
    snap = _prepare_bundle()
    b = _powered_board(snap)
    assert b.send(BUNDLE) == ["OTA:OK"]
    applied = _snapshot()
    for k in _every_step():
        _restore(applied)
        power_on()
        import ota_commit

        done = _cut_while(k, ota_commit.rollback)
        mid = _snapshot()
        for j in (-1, 0, 1, 3, 6):
            _restore(mid)
            power_on()
            if j >= 0:
                import ota_commit

                _cut(j)
            try:
                _rollback_all_the_way()
            except PowerCut:
                power_on()
                _rollback_all_the_way()
            _check_rolled_back()
        if done:
            break
    return {"steps": k}


def test_manager_start_rolls_journal_forward():
    snap = _prepare_bundle()
    b = _powered_board(snap)
    cut = _cut(-1)
    b.send(BUNDLE)
    renames = [i for i, w in enumerate(cut.log) if w.startswith("rename")]
    # cut right after the journal landed and the first file moved
    b = _powered_board(snap)
    _cut(renames[2])
    try:  # noqa: SIM105 - MicroPython has no contextlib
        b.send(BUNDLE)
    except PowerCut:
        pass
    assert exists("ota_journal.json")
    assert not _all_new()
    assert not _all_old()
    power_on()
    import ota_manager

    ota_manager.OTAManager(lambda line: None)
    assert _all_new()
    _no_leftovers()


def test_recover_without_or_with_broken_journal():
    import ota_commit

    assert ota_commit.recover() is False
    write("ota_journal.json", b'{"op": "apply", "pai')
    write("ota_journal.json.tmp", b"{}")
    write("ota_state.json.tmp", b"{")
    assert ota_commit.recover() is False
    assert listdir() == []
    assert ota_commit.rollback() is False
    assert listdir() == []


def test_state_file_damage_reads_as_empty():
    import ota_state

    write("ota_state.json", b"[1, 2]")
    assert ota_state.load() == {
        "files": {},
        "staged": {},
        "trial": None,
        "rollback": None,
    }
    write("ota_state.json", b"\xff\x00garbage")
    assert ota_state.load()["files"] == {}
    write("ota_state.json", b'{"files": 3, "trial": "x", "extra": 1}')
    st = ota_state.load()
    assert st["files"] == {}
    assert st["trial"] is None
    assert st["extra"] == 1
    st["files"]["main.py"] = {"size": 1, "crc": "00000000", "ver": None}
    ota_state.save(st)
    assert listdir() == ["ota_state.json"]
    assert json.loads(read("ota_state.json"))["files"]["main.py"]["size"] == 1


def test_new_update_during_trial_backs_up_the_trial_files():
    b = _board()
    install_v1(b, "main.py", OLD["main.py"], ver="1.0.0")
    b.reboot()
    stage(b, "main.py", NEW["main.py"], ver="2.0.0")
    assert b.send("OTA:APPLY:main.py:") == ["OTA:OK"]
    b.reboot()
    st = state()
    assert st["trial"]["prev_ver"] == "1.0.0"
    assert st["trial"]["prev"]["main.py"]["ver"] == "1.0.0"
    assert read("main.py.bak") == OLD["main.py"]
