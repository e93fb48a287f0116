"""Property tests of the NUS peripheral on CPython (hypothesis).

Writes reach NUSPeripheral through the bluetooth stand-in's central hooks,
as a phone or a proxy sends them: lines of a real v1/v2 session cut at any
byte into several writes, several lines in one write, the longest writes
the link allows (with and without response), random binary, binary data
frames of a `bin` transfer (plain 0xFF and deflated 0xFE, one or two in a
write, cut short or with bytes changed), disconnects in the middle.
Invariants: no exception escapes poll() (a reset comes only after OTA:OK),
the engine stays in a valid state, nothing but the allowed files and the
engine's own ever appears, and the installed files change only with OTA:OK.
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from .harness import cpython_board
from .test_fuzz_handle import ALLOWED, _session_lines

MTU = 256
MAX_ATTR = 512  # the stand-in's longest write with response

_action = st.one_of(
    # lines of the real session, from `start`, cut at the given offsets
    st.tuples(
        st.just("fragmented"),
        st.integers(0, 40),
        st.integers(1, 6),
        st.lists(st.integers(1, 300), max_size=8),
    ),
    # several lines of the real session joined into one write
    st.tuples(st.just("concatenated"), st.integers(0, 40), st.integers(2, 6)),
    st.tuples(st.just("oversized"), st.binary(min_size=MTU, max_size=MAX_ATTR)),
    st.tuples(st.just("binary"), st.binary(max_size=MTU - 3)),
    st.tuples(st.just("text"), st.text(max_size=120)),
    # frames of a `bin` transfer: (first frame, how many, FILE first, cut at,
    # (position, xor) changes)
    st.tuples(
        st.just("frames"),
        st.integers(0, 9),
        st.integers(1, 2),
        st.booleans(),
        st.integers(0, 600),
        st.lists(st.tuples(st.integers(0, 600), st.integers(1, 255)), max_size=3),
    ),
    st.tuples(st.just("poll"), st.integers(0, 10)),
    st.tuples(st.just("reconnect")),
)


FRAMED = bytes(range(256)) * 6  # the file the `frames` action sends
FRAMED_FILE = (
    f"OTA:FILE:app.py:{len(FRAMED)}:{zlib.crc32(FRAMED):08x}:1.2.0:bin:f:\n".encode()
)
FRAME_STEP = 160


def _frame(k: int) -> bytes:
    """The k-th frame of FRAMED: plain when k is even, deflated when odd."""
    off = k * FRAME_STEP
    data = FRAMED[off : off + FRAME_STEP]
    if k % 2 == 0:
        return (
            b"\xff" + len(data).to_bytes(2, "little") + off.to_bytes(4, "little") + data
        )
    c = zlib.compressobj(9, zlib.DEFLATED, -9)
    stream = c.compress(data) + c.flush()
    head = b"\xfe" + len(stream).to_bytes(2, "little") + off.to_bytes(4, "little")
    return head + len(data).to_bytes(2, "little") + stream


def _frame_writes(action: tuple[Any, ...]) -> list[tuple[bytes, bool]]:
    _, first, count, file_first, cut, changes = action
    raw = bytearray(b"".join(_frame(k) for k in range(first, first + count)))
    for pos, xor in changes:
        raw[pos % len(raw)] ^= xor
    out = [(FRAMED_FILE, True)] if file_first else []
    return [*out, (bytes(raw[: max(cut, 1)][: MTU - 3]), False)]


def _writes(action: tuple[Any, ...], lines: list[str]) -> list[tuple[bytes, bool]]:
    """(data, with_response) writes of one action."""
    kind = action[0]
    if kind == "frames":
        return _frame_writes(action)
    if kind == "fragmented":
        start = action[1] % len(lines)
        data = "".join(line + "\n" for line in lines[start : start + action[2]])
        raw = data.encode()
        out = []
        pos = 0
        for size in action[3]:
            if pos >= len(raw):
                break
            out.append((raw[pos : pos + min(size, MTU - 3)], False))
            pos += size
        out.extend((raw[i : i + MTU - 3], False) for i in range(pos, len(raw), MTU - 3))
        return out
    if kind == "concatenated":
        start = action[1] % len(lines)
        raw = "".join(line + "\n" for line in lines[start : start + action[2]])
        return [(raw.encode()[:MAX_ATTR], True)]
    if kind == "oversized":
        return [(action[1], True)]
    if kind == "binary":
        return [(action[1], False)]
    if kind == "text":
        return [(action[1].encode()[: MTU - 3], False)]
    return []


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_action, max_size=40))
def test_peripheral_survives_any_writes(actions: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as home, cpython_board(Path(home)):
        import fwtest as fw
        import machine
        from nus_central import Central
        from nus_peripheral import NUSPeripheral
        from ota_manager import OTAManager

        fw.write("main.py", b"print('installed')\n")
        OTAManager.ALLOWED_FILES = set(ALLOWED)
        OTAManager.RESET_DELAY_MS = 0
        p = NUSPeripheral()
        conn = 1
        central = Central(p, mtu=MTU, conn=conn)
        lines = _session_lines(fw)
        installed = {n: fw.read(n) for n in ALLOWED if fw.exists(n)}
        for action in actions:
            if action[0] == "reconnect":
                central.disconnect()
                p.poll()
                conn += 1
                central = Central(p, mtu=MTU, conn=conn)
                continue
            try:
                for data, response in _writes(action, lines):
                    central.ble.central_write(conn, data, response=response)
                    if action[0] == "fragmented":
                        p.poll()  # sometimes a line is taken between its pieces
                central.pump()
            except machine.Reset:
                assert central.lines[-1] == "OTA:OK", central.lines
                event("an update was applied")
                return
            ota = p.ota
            assert ota.state in (ota.IDLE, ota.ARMED, ota.RECEIVING), ota.state
            for name in fw.listdir():
                base = name.removesuffix(".new").removesuffix(".bak")
                assert base in ALLOWED or name in fw.OURS, name
            for line in central.take():
                assert line.startswith("OTA:"), line
                if action[0] == "frames" and line.startswith("OTA:A:"):
                    event("a frame of the bin transfer was acknowledged")
            now = {n: fw.read(n) for n in ALLOWED if fw.exists(n)}
            assert now == installed
        assert p.pending() == 0


def test_lines_queued_when_the_central_leaves_are_dropped() -> None:
    """A START still queued at the disconnect must not arm the engine after it.

    Found by tests/faults: the board took the line after abort() had run and
    stayed armed, with a v1 temp file, for the next client to meet as BUSY.
    """
    with tempfile.TemporaryDirectory() as home, cpython_board(Path(home)):
        import fwtest as fw
        from nus_central import Central
        from nus_peripheral import NUSPeripheral
        from ota_manager import OTAManager

        OTAManager.ALLOWED_FILES = set(ALLOWED)
        p = NUSPeripheral()
        central = Central(p, mtu=MTU)
        data = b"print('new')\n"
        central.send(f"OTA:START:app.py:{len(data)}:{fw.crc32_hex(data)}")
        central.disconnect()  # before the main loop got to the line
        central.pump()
        assert p.ota.state == OTAManager.IDLE
        assert not fw.exists("_ota_tmp")
        central = Central(p, mtu=MTU, conn=2)
        assert central.ask(f"OTA:START:app.py:{len(data)}:{fw.crc32_hex(data)}") == [
            "OTA:READY"
        ]
