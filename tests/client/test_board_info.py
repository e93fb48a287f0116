"""HELLO capabilities: typed, validated, impossible boards rejected."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.esp32_ota.nus_ota.board_info import (
    MAX_MESSAGE,
    MAX_TRACEBACK,
    CrashReport,
    DeflateOffer,
    InstalledFile,
    Rollback,
    StagedFile,
    Trial,
    parse_board_info,
    usable_version,
)
from custom_components.esp32_ota.nus_ota.errors import InvalidBoardInfoError

from .samples import GOOD_HELLO as GOOD

if TYPE_CHECKING:
    from pathlib import Path


def parse(obj: Any) -> Any:
    return parse_board_info(json.dumps(obj))


def test_full_hello() -> None:
    info = parse(GOOD)
    assert info.proto == 2
    assert info.firmware == "2.0.0"
    assert info.app_version == "1.0.0"
    assert info.window == 8
    assert info.frame_window is None  # no fwin: no window of its own for frames
    assert parse({**GOOD, "fwin": 12, "fmax": 256}).frame_window == 12
    assert parse({**GOOD, "fwin": 12, "fmax": 256}).frame_max == 256
    assert info.max_line == 512
    assert info.encodings == {"hex", "b64"}
    assert info.auth == "hmac"
    assert info.nonce == "0123456789abcdef"
    assert info.free == 1_000_000
    assert info.files == {
        "main.py": InstalledFile(900, "0badf00d", "1.0.0"),
        "app.py": None,
    }
    assert info.allowed_files == {"main.py", "app.py"}
    staged = info.staged["app.py"]
    assert staged == StagedFile(100, "deadbeef", "1.1.0", 40)
    assert not staged.complete
    assert info.trial == Trial("1.1.0", 1)
    assert info.rollback == Rollback("1.2.0", "1.1.0")


def test_minimal_hello_and_tolerated_extras() -> None:
    obj = {
        k: GOOD[k]
        for k in ("proto", "fw", "win", "line", "enc", "auth", "nonce", "files")
    }
    obj["enc"] = ["b64", "zstd"]  # a future encoding is ignored
    obj["future_key"] = {"x": 1}
    info = parse(obj)
    assert info.encodings == {"b64"}
    assert info.free is None
    assert info.app_version is None
    assert info.staged == {}
    assert info.trial is None
    assert info.rollback is None


BIN = {**GOOD, "enc": ["hex", "b64", "bin"], "fwin": 12, "fmax": 256}


def test_deflate_offer() -> None:
    info = parse({**BIN, "deflate": {"wbits": 9, "max": 1024}})
    assert info.deflate == DeflateOffer(wbits=9, max_bytes=1024)
    assert parse({**BIN, "deflate": {"wbits": 15, "max": 65535}}).deflate == (
        DeflateOffer(15, 65535)
    )
    assert parse({**BIN, "deflate": {"wbits": 8, "max": 1}}).deflate == (
        DeflateOffer(8, 1)
    )
    assert parse(BIN).deflate is None  # not offered: plain frames


@pytest.mark.parametrize(
    "offer",
    [
        None,
        True,
        [9, 1024],
        "deflate",
        {},
        {"wbits": 9},
        {"max": 1024},
        {"wbits": 7, "max": 1024},
        {"wbits": 16, "max": 1024},
        {"wbits": 9, "max": 0},
        {"wbits": 9, "max": 65536},
        {"wbits": True, "max": 1024},
        {"wbits": 9.0, "max": 1024},
        {"wbits": "9", "max": 1024},
        {"wbits": 9, "max": None},
    ],
)
def test_an_unusable_deflate_offer_means_plain_frames(offer: Any) -> None:
    """A malformed offer costs speed only: the HELLO parses, without deflate."""
    info = parse({**BIN, "deflate": offer})
    assert info.deflate is None
    assert info.frame_max == 256


def test_deflate_without_binary_frames_is_ignored() -> None:
    """A board without `bin` cannot take deflated frames, whatever it says."""
    info = parse({**GOOD, "deflate": {"wbits": 9, "max": 1024}})
    assert info.encodings == {"hex", "b64"}
    assert info.deflate is None


def test_hello_of_the_real_engine(board_fs: Path) -> None:
    """What ota_manager actually sends parses (fresh board and after a transfer)."""
    import ota_manager

    lines: list[str] = []
    manager = ota_manager.OTAManager(lines.append)
    manager.handle("OTA:HELLO")
    assert lines[-1].startswith("OTA:HELLO:"), lines
    info = parse_board_info(lines[-1][len("OTA:HELLO:") :])
    assert info.files == {"app.py": None, "main.py": None}
    assert info.nonce == manager._nonce
    manager.handle(f"OTA:FILE:app.py:6:{0x0:08x}:1.0.1:hex:-:")
    manager.handle("OTA:HELLO")
    assert lines[-1].startswith("OTA:HELLO:"), lines
    info = parse_board_info(lines[-1][len("OTA:HELLO:") :])
    assert info.staged["app.py"].have == 0


def mutate(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(GOOD)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("proto",), 1),
        (("proto",), "2"),
        (("proto",), True),
        (("proto",), KeyError),
        (("win",), 0),
        (("fwin",), 0),
        (("fmax",), 8),
        (("win",), 1_000_000),
        (("win",), 8.0),
        (("line",), 10),
        (("line",), 1 << 20),
        (("free",), -1),
        (("free",), 1 << 60),
        (("enc",), []),
        (("enc",), ["rot13"]),
        (("enc",), "b64"),
        (("enc",), [1]),
        (("auth",), "magic"),
        (("auth",), None),
        (("nonce",), "0123"),
        (("nonce",), "0123456789ABCDEF"),
        (("nonce",), None),
        (("files",), {}),
        (("files",), []),
        (("files",), {f"f{i}.py": None for i in range(100)}),
        (("files", "../boot.py"), None),
        (("files", "a,b"), None),
        (("files", "main.py", "size"), -5),
        (("files", "main.py", "size"), 1 << 40),
        (("files", "main.py", "crc"), "xyz"),
        (("files", "main.py", "crc"), "0BADF00D"),
        (("files", "main.py"), "big"),
        (("staged",), []),
        (("staged", "app.py", "have"), 101),
        (("staged", "app.py", "have"), -1),
        (("staged", "app.py"), None),
        (("staged", ".."), {"size": 1, "crc": "00000000", "ver": None, "have": 0}),
        (("trial", "boots"), -1),
        (("trial", "boots"), 10**9),
        (("trial",), "yes"),
        (("rollback",), []),
    ],
)
def test_impossible_or_malformed_boards_are_rejected(
    path: tuple[str, ...], value: Any
) -> None:
    with pytest.raises(InvalidBoardInfoError):
        parse(mutate(path, value))


UNUSABLE_VERSIONS = [
    "1,2",
    "1|2",
    "2:0",
    "1.0\n",
    "tab\there",
    "versión",
    "x" * 65,
    "",
    5,
    2.0,
    ["1.0"],
    {"v": 1},
]


@pytest.mark.parametrize("value", UNUSABLE_VERSIONS)
@pytest.mark.parametrize(
    "path",
    [
        ("app",),
        ("files", "main.py", "ver"),
        ("staged", "app.py", "ver"),
        ("trial", "ver"),
        ("rollback", "ver"),
        ("rollback", "restored"),
    ],
)
def test_a_version_text_the_client_cannot_use_is_unknown(
    path: tuple[str, ...], value: Any
) -> None:
    """A board reporting any version text still parses (issue 15: no lock-out)."""
    info = parse(mutate(path, value))
    read = {
        ("app",): lambda: info.app_version,
        ("files", "main.py", "ver"): lambda: info.files["main.py"].version,
        ("staged", "app.py", "ver"): lambda: info.staged["app.py"].version,
        ("trial", "ver"): lambda: info.trial.version,
        ("rollback", "ver"): lambda: info.rollback.version,
        ("rollback", "restored"): lambda: info.rollback.restored,
    }[path]
    assert read() is None
    assert info.files["main.py"].crc == "0badf00d"  # the rest is intact


@pytest.mark.parametrize("value", [*UNUSABLE_VERSIONS, KeyError])
def test_unusable_firmware_version_is_unknown(value: Any) -> None:
    assert parse(mutate(("fw",), value)).firmware == "unknown"


def test_usable_versions_are_kept() -> None:
    for text in ("1.0.0", "2026.11.30-rc1+build.7", "v" * 64, "release 3 (beta)"):
        assert usable_version(text) == text
        assert parse(mutate(("app",), text)).app_version == text


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_fuzzed_json_values_never_crash(value: Any) -> None:
    for obj in (
        value,
        {**GOOD, "files": value},
        {**GOOD, "staged": value},
        {**GOOD, "trial": value},
    ):
        with contextlib.suppress(InvalidBoardInfoError):
            parse(obj)


CRASH = {
    "type": "NameError",
    "msg": "name 'sensr' isn't defined",
    "file": "app.py",
    "line": 12,
    "tb": 'Traceback (most recent call last):\n  File "app.py", line 12\n',
}


def test_rollback_with_the_saved_exception() -> None:
    info = parse(mutate(("rollback", "error"), CRASH))
    error = info.rollback.error
    assert error == CrashReport(
        "NameError", "name 'sensr' isn't defined", "app.py", 12, CRASH["tb"].strip()
    )
    cause = "app.py line 12: NameError: name 'sensr' isn't defined"
    assert info.rollback.cause == cause
    watchdog = {"type": "watchdog", "msg": "hung: not fed", "file": None}
    assert parse(mutate(("rollback", "error"), watchdog)).rollback.cause == (
        "watchdog: hung: not fed"
    )
    assert parse(GOOD).rollback.cause is None


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("a string", None),
        ({"type": "Bad Type!", "msg": "x"}, None),
        ({"type": "E", "msg": "x" * 5000}, "E: " + "x" * MAX_MESSAGE),
        ({"type": "E", "msg": "a\x1b[2Jb\nc"}, "E: a [2Jb c"),
        ({"type": "E", "msg": 7, "file": "../x", "line": True}, "E"),
        ({"type": "E", "msg": "m", "file": "app.py", "line": -1}, "app.py: E: m"),
    ],
)
def test_a_hostile_crash_report_is_cut_or_dropped(
    error: Any, cause: str | None
) -> None:
    info = parse(mutate(("rollback", "error"), error))  # never refuses the board
    assert info.rollback.cause == cause
    if info.rollback.error is not None:
        assert len(info.rollback.error.traceback) <= MAX_TRACEBACK
