"""Property tests of the OTA engine on CPython (hypothesis).

Random sessions mix the lines of a real v1 and v2 update (some mutated),
random text and random bytes, disconnects and resets. The invariants are the
ones fw_fuzz checks on both runtimes: handle() never raises, replies are
well formed, nothing is written outside the allowed files and our own, and
installed files change only with OTA:OK.
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from .harness import cpython_board

ALLOWED = {"main.py", "app.py"}


def _session_lines(fw: Any) -> list[str]:
    """Every line of a v2 bundle update and of a v1 update, in order."""
    main = fw.blob(500, 1)
    app = fw.blob(130, 2)
    lines = ["OTA:HELLO", fw.file_line("main.py", main, "1.2.0", "b64")]
    lines += [fw.d_line(main, off, 120, "b64") for off in range(0, 500, 120)]
    lines.append(fw.file_line("app.py", app, "1.2.0", "hex", "f"))
    lines += [fw.d_line(app, off, 60, "hex") for off in range(0, 130, 60)]
    lines += ["OTA:APPLY:main.py,app.py:", "OTA:ABORT"]
    lines.append(f"OTA:START:app.py:{len(app)}:{fw.crc32_hex(app)}:1.3.0:64")
    lines += [f"OTA:DATA:{i}:{fw.hexs(app[i * 64 : i * 64 + 64])}" for i in range(3)]
    lines.append("OTA:COMMIT")
    return lines


_mutation = st.tuples(
    st.integers(0, 600), st.sampled_from("dit"), st.characters(codec="utf-8")
)
_action = st.one_of(
    st.tuples(st.just("valid"), st.integers(0, 40)),
    st.tuples(st.just("run"), st.integers(0, 40), st.integers(1, 20)),
    st.tuples(
        st.just("mutated"),
        st.integers(0, 40),
        st.lists(_mutation, min_size=1, max_size=4),
    ),
    st.tuples(st.just("text"), st.text(max_size=300)),
    st.tuples(st.just("ota"), st.text(max_size=300)),
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("abort")),
    st.tuples(st.just("reboot")),
)


def _mutate(line: str, mutations: list[tuple[int, str, str]]) -> str:
    for pos, op, char in mutations:
        i = pos % (len(line) + 1)
        if op == "d":
            line = line[:i] + line[i + 1 :]
        elif op == "i":
            line = line[:i] + char + line[i:]
        else:
            line = line[:i]
    return line


@settings(max_examples=300, deadline=None)
@given(st.lists(_action, max_size=60))
def test_handle_never_fails(actions: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as home, cpython_board(Path(home)):
        import fwtest as fw

        fw.write("main.py", b"print('installed')\n")
        board = fw.Board(ALLOWED_FILES=ALLOWED)
        lines = _session_lines(fw)
        installed = {n: fw.read(n) for n in ALLOWED if fw.exists(n)}
        for action in actions:
            kind = action[0]
            if kind == "abort":
                board.m.abort()
                continue
            if kind == "reboot":
                board.reboot()
                continue
            if kind == "run":  # consecutive lines of the real session
                start = action[1] % len(lines)
                todo: list[str | bytes] = list(lines[start : start + action[2]])
            elif kind == "valid":
                todo = [lines[action[1] % len(lines)]]
            elif kind == "mutated":
                todo = [_mutate(lines[action[1] % len(lines)], action[2])]
            elif kind == "ota":
                todo = ["OTA:" + action[1]]
            else:
                todo = [action[1]]
            for line in todo:
                board.send(line)
                fw.check_board(board, ALLOWED)
                if board.reset:
                    break
            now = {n: fw.read(n) for n in ALLOWED if fw.exists(n)}
            if board.reset:
                assert board.last[-1] == "OTA:OK"
                board.reboot()
                recorded = fw.state()["files"]
                for name, data in now.items():
                    if data != installed.get(name):
                        assert fw.crc32_hex(data) == recorded[name]["crc"]
                assert set(installed) <= set(now)
                installed = now
                event("an update was installed")
            else:
                assert "OTA:OK" not in board.last
                assert now == installed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_cpython(key: bytes, message: bytes) -> None:
    with tempfile.TemporaryDirectory() as home, cpython_board(Path(home)):
        import ota_auth

        want = hmac.new(key, message, hashlib.sha256).digest()
        assert ota_auth.hmac_sha256(key, message) == want
        assert ota_auth.check(key, message, want.hex())
