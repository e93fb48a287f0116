"""The in-memory board filesystem: MicroPython `os` semantics and power loss."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import pytest
from esp32_ota_sim.memfs import FlashSpeed, MemFS, PowerLoss

if TYPE_CHECKING:
    from collections.abc import Callable


def test_binary_and_text_round_trip() -> None:
    fs = MemFS()
    with fs.open("a.bin", "wb") as f:
        assert f.write(b"\x00\x01abc") == 5
        assert f.tell() == 5
    with fs.open("a.bin", "rb") as f:
        assert f.read(2) == b"\x00\x01"
        assert f.read() == b"abc"
        assert f.read() == b""
    with fs.open("t.txt", "w") as f:
        f.write("one\ntwo\n")
    with fs.open("t.txt") as f:
        assert f.readline() == "one\n"
        assert list(f) == ["two\n"]
    assert fs.read_file("/t.txt") == b"one\ntwo\n"


def test_seek_readinto_append() -> None:
    fs = MemFS()
    fs.write_file("f", b"0123456789")
    with fs.open("f", "rb") as f:
        f.seek(4)
        buf = bytearray(3)
        assert f.readinto(buf) == 3
        assert buf == b"456"
        assert f.tell() == 7
        assert f.seek(-2, 2) == 8
        assert f.read() == b"89"
        buf = bytearray(8)
        assert f.readinto(buf) == 0
    with fs.open("f", "ab") as f:
        f.write(b"AB")
    assert fs.read_file("f") == b"0123456789AB"
    with fs.open("f", "r+b") as f:
        f.seek(1)
        f.write(b"x")
    assert fs.read_file("f") == b"0x23456789AB"


def _errno(call: Callable[..., object], *args: object) -> int:
    """The errno of the OSError that `call(*args)` must raise."""
    with pytest.raises(OSError) as err:
        call(*args)
    code: int = err.value.args[0]
    return code


def test_errors_match_micropython() -> None:
    fs = MemFS()
    assert _errno(fs.open, "missing", "rb") == errno.ENOENT
    assert _errno(fs.stat, "missing") == errno.ENOENT
    assert _errno(fs.remove, "missing") == errno.ENOENT
    assert _errno(fs.rename, "missing", "x") == errno.ENOENT
    assert _errno(fs.open, "nodir/file", "wb") == errno.ENOENT
    f = fs.open("f", "wb")
    f.close()
    f.close()  # twice is fine
    with pytest.raises(OSError):
        f.write(b"late")
    with fs.open("f", "rb") as r, pytest.raises(OSError):
        r.write(b"no")


def test_stat_listdir_dirs_and_cwd() -> None:
    fs = MemFS()
    fs.write_file("main.py", b"x" * 123)
    fs.mkdir("lib")
    fs.write_file("lib/mod.py", b"yy")
    assert fs.stat("main.py")[6] == 123
    assert fs.stat("lib")[0] == 0x4000
    assert fs.listdir() == ["lib", "main.py"]
    assert fs.listdir("/lib") == ["mod.py"]
    assert sorted((e[0], e[1], e[3]) for e in fs.ilistdir("/")) == [
        ("lib", 0x4000, 0),
        ("main.py", 0x8000, 123),
    ]
    assert _errno(fs.mkdir, "lib") == errno.EEXIST
    assert _errno(fs.rmdir, "lib") == errno.ENOTEMPTY
    fs.chdir("lib")
    assert fs.getcwd() == "/lib"
    assert fs.listdir() == ["mod.py"]
    fs.remove("mod.py")
    fs.chdir("..")
    fs.rmdir("lib")
    assert fs.listdir() == ["main.py"]
    assert fs.snapshot() == {"main.py": b"x" * 123}


def test_rename_replaces_atomically() -> None:
    fs = MemFS()
    fs.write_file("state.json", b"old")
    fs.write_file("state.tmp", b"new")
    fs.rename("state.tmp", "state.json")
    assert fs.snapshot() == {"state.json": b"new"}


def test_statvfs_and_enospc() -> None:
    fs = MemFS(total_blocks=10, block_size=100, reserved_blocks=2)
    bsize, _, blocks, bfree, bavail, *_ = fs.statvfs("/")
    assert (bsize, blocks, bfree, bavail) == (100, 10, 8, 8)
    with fs.open("big", "wb") as f:
        f.write(b"x" * 250)
    assert fs.statvfs("/")[3] == 5
    with fs.open("more", "wb") as f:
        f.write(b"y" * 500)
        with pytest.raises(OSError) as err:
            f.write(b"y")
        assert err.value.args[0] == errno.ENOSPC
    assert fs.statvfs("/")[3] == 0
    fs.free_blocks_override = 3
    assert fs.statvfs("/")[3] == 3


def test_unflushed_data_is_lost_on_power_loss() -> None:
    fs = MemFS()
    fs.write_file("keep", b"old content")
    f = fs.open("keep", "wb")  # op 1
    f.write(b"new")  # op 2
    g = fs.open("fresh", "wb")  # op 3: the new (empty) file is durable at once
    g.write(b"data")  # op 4
    g.flush()  # op 5: durable
    g.write(b" more")  # op 6
    fs.cut_power_at(1)
    with pytest.raises(PowerLoss):
        f.write(b"!")
    assert not fs.powered
    with pytest.raises(PowerLoss):
        fs.listdir()
    fs.power_on()
    # The truncation by "w" was never flushed; the old content survives.
    assert fs.snapshot() == {"fresh": b"data", "keep": b"old content"}
    with pytest.raises(OSError):
        f.write(b"the handle died with the power")
    assert fs.power_losses == 1


def test_operations_are_counted_and_cut_exactly() -> None:
    fs = MemFS()
    start = fs.ops
    with fs.open("a", "wb") as f:
        f.write(b"1")
        f.write(b"2")
    fs.rename("a", "b")
    fs.remove("b")
    # open, write, write, flush-on-close, rename, remove
    assert fs.ops - start == 6
    fs.write_file("a", b"x")
    fs.cut_power_at(2)
    fs.mkdir("d")  # op 1 happens
    with pytest.raises(PowerLoss):
        fs.rename("a", "c")  # op 2 is cut: nothing happens
    fs.power_on()
    assert fs.exists("d")
    assert fs.snapshot() == {"a": b"x"}


def _safe_replace(fs: MemFS, data: bytes) -> None:
    with fs.open("cfg.tmp", "wb") as f:
        f.write(data[:3])
        f.write(data[3:])
    fs.rename("cfg.tmp", "cfg")


def test_tmp_then_rename_survives_every_cut_point() -> None:
    probe = MemFS()
    probe.write_file("cfg", b"version-1")
    before = probe.ops
    _safe_replace(probe, b"version-2")
    total = probe.ops - before
    assert total == 5
    for cut in range(1, total + 1):
        fs = MemFS()
        fs.write_file("cfg", b"version-1")
        fs.cut_power_at(cut)
        with pytest.raises(PowerLoss):
            _safe_replace(fs, b"version-2")
        fs.power_on()
        assert fs.read_file("cfg") == (b"version-2" if cut > total else b"version-1")
    fs = MemFS()
    fs.write_file("cfg", b"version-1")
    fs.cut_power_at(total + 1)
    _safe_replace(fs, b"version-2")
    assert fs.read_file("cfg") == b"version-2"


def test_in_place_rewrite_is_not_safe() -> None:
    """The hazard the firmware avoids: writing over the file itself."""
    fs = MemFS()
    fs.write_file("cfg", b"version-1")
    fs.cut_power_at(3)  # open, write, [flush] <- cut
    f = fs.open("cfg", "wb")
    f.write(b"vers")
    with pytest.raises(PowerLoss):
        f.flush()
    fs.power_on()
    assert fs.read_file("cfg") == b"version-1"
    fs.cut_power_at(4)  # open, write, flush, [write] <- cut
    f = fs.open("cfg", "wb")
    f.write(b"vers")
    f.flush()
    with pytest.raises(PowerLoss):
        f.write(b"ion-2")
    fs.power_on()
    assert fs.read_file("cfg") == b"vers"  # torn


def test_urandom_is_seeded_per_filesystem() -> None:
    assert MemFS(seed=1).urandom(8) == MemFS(seed=1).urandom(8)
    assert MemFS(seed=1).urandom(8) != MemFS(seed=2).urandom(8)
    assert len(MemFS().urandom(16)) == 16


def test_writes_report_their_flash_time() -> None:
    fs = MemFS(
        block_size=100,
        flash=FlashSpeed(program_us_per_byte=10.0, erase_ms_per_block=30.0),
    )
    spent: list[float] = []
    fs.cost_sink = spent.append
    with fs.open("f", "wb") as f:
        f.write(b"x" * 50)  # 0.5 ms + one new block
        f.write(b"x" * 50)  # 0.5 ms, same block
        f.write(b"x" * 150)  # 1.5 ms + two new blocks
    assert spent == pytest.approx([30.5, 0.5, 61.5])


def test_flush_close_rename_and_remove_cost_a_metadata_commit() -> None:
    fs = MemFS(flash=FlashSpeed(commit_ms=5.0))
    spent: list[float] = []
    fs.cost_sink = spent.append
    f = fs.open("f", "wb")  # creating the entry
    f.write(b"x")
    f.flush()
    f.flush()  # nothing new: free
    f.close()  # nothing new: free
    fs.rename("f", "g")
    fs.remove("g")
    assert spent == [5.0, 5.0, 5.0, 5.0]


def test_a_full_flash_refuses_state_and_journal_writes_with_enospc() -> None:
    fs = MemFS(total_blocks=6, block_size=100, reserved_blocks=2)
    fs.write_file("ota_state.json", b"s" * 100)
    fs.write_file("app.py", b"a" * 300)
    assert fs.free_blocks() == 0
    # A new journal needs a block.
    with fs.open("ota_journal.json", "w") as f, pytest.raises(OSError) as err:
        f.write("{}")
    assert err.value.errno == errno.ENOSPC == 28
    # Rewriting the state file in place is copy-on-write: the new block is
    # needed while the old one is still held.
    with fs.open("ota_state.json", "w") as f, pytest.raises(OSError) as err:
        f.write("{}")
    assert err.value.errno == 28
    # ...and closing commits the truncation, as LittleFS does: state written
    # in place is lost on a full flash (write a temp file and rename).
    assert fs.read_file("ota_state.json") == b""


def test_esp32_flash_figures_give_about_42_kb_per_second() -> None:
    from esp32_ota_sim.speed import ESP32_FLASH

    fs = MemFS(flash=ESP32_FLASH)
    spent: list[float] = []
    fs.cost_sink = spent.append
    size = 88_000
    with fs.open("big", "wb") as f:
        for start in range(0, size, 4096):  # flushed every 4 KB, as the firmware
            f.write(b"x" * min(4096, size - start))
            f.flush()
    rate = size / 1000 / (sum(spent) / 1000)
    assert 38 <= rate <= 43  # KB/s: esp_littlefs wrote 5 x 88 KB in 10.3 s
    assert fs.block_size == 4096
    assert 10 <= ESP32_FLASH.erase_ms_per_block <= 100  # an erase takes tens of ms
