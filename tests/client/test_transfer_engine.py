"""The senders against the REAL firmware engine, over a scripted lossy link.

No asyncio and no Bluetooth: a discrete-event loop moves lines (and binary
frames) between a sender and `ota_manager.OTAManager` with a latency and a
per-line board cost, and drops, duplicates or reorders lines as each test
scripts it. The clock is virtual, so timings are exact and cost no real time.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from esp32_ota_sim.content import source_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.esp32_ota.nus_ota.board_info import DeflateOffer
from custom_components.esp32_ota.nus_ota.client import v2_chunk
from custom_components.esp32_ota.nus_ota.compress import DeflateSender, deflate_frames
from custom_components.esp32_ota.nus_ota.errors import TooManyRetriesError
from custom_components.esp32_ota.nus_ota.lines import DEFLATE_MARK, FRAME_MARK
from custom_components.esp32_ota.nus_ota.replies import Hello, Ready, parse_reply
from custom_components.esp32_ota.nus_ota.transfer import (
    RttEstimator,
    SeqSender,
    WindowSender,
)

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_WRITE = 244
FRAME_MARKS = (FRAME_MARK, DEFLATE_MARK)


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


@dataclass
class Script:
    """What the link does to each line (index counts lines of that direction)."""

    drop_up: Callable[[int, bytes], bool] = lambda _i, _l: False
    dup_up: Callable[[int, bytes], bool] = lambda _i, _l: False
    drop_down: Callable[[int, str], bool] = lambda _i, _l: False
    swap_down: Callable[[int, str], bool] = lambda _i, _l: (
        False
    )  # deliver after the next
    latency: float = 0.015
    line_cost: float = 0.003


@dataclass
class Outcome:
    seconds: float
    events: int
    up: int
    down: int
    recoveries: list[float] = field(default_factory=list)


def run(
    sender: WindowSender | SeqSender, manager: Any, replies: list[str], script: Script
) -> Outcome:
    """Drive `sender` against `manager` until done; return virtual figures."""
    events: list[tuple[float, int, str, Any]] = []
    counter = 0
    now = 0.0
    board_free = 0.0
    up = down = 0
    held: tuple[float, str] | None = None

    def push(t: float, kind: str, item: Any) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, (t, counter, kind, item))

    for _ in range(200_000):
        for line in sender.poll(now):
            if line[0] not in FRAME_MARKS:
                assert line.endswith(b"\n")
                assert line.count(b"\n") == 1  # one whole line per write
            assert len(line) <= MAX_WRITE
            index = up
            up += 1
            if script.drop_up(index, line):
                continue
            copies = 2 if script.dup_up(index, line) else 1
            for _ in range(copies):
                push(now + script.latency, "arrive", line)
        if sender.done:
            return Outcome(now, counter, up, down)
        deadline = sender.deadline
        if events and (deadline is None or events[0][0] <= deadline):
            now, _, kind, item = heapq.heappop(events)
        else:
            assert deadline is not None, "sender stalled with nothing in flight"
            now = deadline
            continue
        if kind == "arrive":
            board_free = max(board_free, now) + script.line_cost
            push(board_free, "handle", item)
        elif kind == "handle":
            if item[0] in FRAME_MARKS:
                manager.frame(memoryview(item))
            else:
                manager.handle(item.decode().rstrip("\n"))
            for reply in replies:
                index = down
                down += 1
                if script.drop_down(index, reply):
                    continue
                if held is not None:
                    push(now + script.latency, "notify", held[1])
                    push(now + script.latency, "notify", reply)
                    held = None
                elif script.swap_down(index, reply):
                    held = (now, reply)
                else:
                    push(now + script.latency, "notify", reply)
            replies.clear()
        else:
            if held is not None and not events:
                push(now, "notify", held[1])
                held = None
            parsed = parse_reply(item)
            assert parsed is not None
            sender.on_reply(parsed, now)
    raise AssertionError("transfer did not finish")


@pytest.fixture
def engine(board_fs: Path) -> tuple[Any, list[str], Path]:
    import ota_manager

    ota_manager.OTAManager.RESET_DELAY_MS = 0
    replies: list[str] = []
    return ota_manager.OTAManager(replies.append), replies, board_fs


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def v2_sender(manager: Any, replies: list[str], data: bytes, **kw: Any) -> WindowSender:
    manager.handle(f"OTA:FILE:app.py:{len(data)}:{crc(data)}:1.0.1:b64:-:")
    ready = parse_reply(replies.pop())
    assert isinstance(ready, Ready)
    assert ready.offset is not None
    chunk = v2_chunk(MAX_WRITE, len(data), "b64")
    args: dict[str, Any] = {
        "chunk": chunk,
        "encoding": "b64",
        "window": 8,
        "start": ready.offset,
    }
    args.update(kw)
    return WindowSender("app.py", data, **args)


def staged_ok(manager: Any, replies: list[str], data: bytes, home: Path) -> None:
    assert (home / "app.py.new").read_bytes() == data
    manager.handle("OTA:HELLO")
    hello = parse_reply(replies.pop())
    assert hello is not None
    staged = hello.info.staged["app.py"]  # type: ignore[union-attr]
    assert staged.complete
    assert staged.crc == crc(data)


def test_v2_clean_link(engine: tuple[Any, list[str], Path]) -> None:
    manager, replies, home = engine
    data = payload(20_000)
    sender = v2_sender(manager, replies, data)
    out = run(sender, manager, replies, Script())
    staged_ok(manager, replies, data, home)
    assert sender.stats.rewinds == 0
    assert sender.stats.resent == 0
    assert out.up == -(-len(data) // sender.chunk)
    # the window keeps the board busy: far faster than one chunk per round trip
    assert out.seconds < out.up * 2 * Script().latency / 3


@pytest.mark.parametrize("seed", range(6))
def test_v2_random_loss_duplication_and_reordering(
    engine: tuple[Any, list[str], Path], seed: int
) -> None:
    manager, replies, home = engine
    data = payload(12_000, seed)
    rng = random.Random(seed)
    script = Script(
        drop_up=lambda _i, _l: rng.random() < 0.15,
        dup_up=lambda _i, _l: rng.random() < 0.05,
        drop_down=lambda _i, _l: rng.random() < 0.05,
        swap_down=lambda _i, _l: rng.random() < 0.05,
    )
    sender = v2_sender(manager, replies, data, max_retries=12)
    run(sender, manager, replies, script)
    staged_ok(manager, replies, data, home)
    assert sender.stats.rewinds > 0


def test_v2_lost_last_chunk_recovers_within_a_few_round_trips(
    engine: tuple[Any, list[str], Path],
) -> None:
    manager, replies, home = engine
    data = payload(3_600)
    sender = v2_sender(manager, replies, data, window=4)
    last = -(-len(data) // sender.chunk) - 1
    script = Script(drop_up=lambda i, _l: i == last)
    out = run(sender, manager, replies, script)
    staged_ok(manager, replies, data, home)
    assert sender.stats.timeouts == 1
    clean = v2_sender_time(data)
    # the loss costs the retransmit timeout plus one round trip, not seconds
    assert out.seconds - clean < 6 * 2 * script.latency


def v2_sender_time(data: bytes) -> float:
    """Time of the same transfer over a clean link (fresh engine state)."""
    import ota_manager

    replies: list[str] = []
    manager = ota_manager.OTAManager(replies.append)
    manager.handle("OTA:ABORT")
    replies.clear()
    sender = v2_sender(manager, replies, data, window=4)
    return run(sender, manager, replies, Script()).seconds


def test_v2_gap_in_the_middle_uses_the_nak(engine: tuple[Any, list[str], Path]) -> None:
    manager, replies, home = engine
    data = payload(5_000)
    sender = v2_sender(manager, replies, data)
    run(sender, manager, replies, Script(drop_up=lambda i, _l: i == 3))
    staged_ok(manager, replies, data, home)
    assert sender.stats.rewinds == 1
    assert sender.stats.timeouts == 0  # the NAK, not the timer, recovered it


def test_v2_resume_after_disconnect(engine: tuple[Any, list[str], Path]) -> None:
    manager, replies, home = engine
    data = payload(9_000)
    first = v2_sender(manager, replies, data)
    with pytest.raises(TooManyRetriesError):
        run(
            first, manager, replies, Script(drop_up=lambda i, _l: i >= 20, latency=0.01)
        )
    manager.abort()  # the link dropped
    replies.clear()
    second = v2_sender(manager, replies, data)
    assert second.acked_bytes > 0
    run(second, manager, replies, Script())
    staged_ok(manager, replies, data, home)


@pytest.mark.parametrize("window", [1, 4])
def test_v1_against_the_engine(
    engine: tuple[Any, list[str], Path], window: int
) -> None:
    import machine

    manager, replies, home = engine
    data = payload(6_000)
    manager.handle(f"OTA:START:app.py:{len(data)}:{crc(data)}:1.0.1:100")
    assert replies.pop() == "OTA:READY"
    rng = random.Random(window)
    script = Script(
        drop_up=lambda _i, _l: rng.random() < 0.1,
        dup_up=lambda _i, _l: rng.random() < 0.05,
        drop_down=lambda _i, _l: rng.random() < 0.05,
    )
    sender = SeqSender(
        "app.py", data, chunk=100, window=window, rtt=RttEstimator(), max_retries=12
    )
    run(sender, manager, replies, script)
    with pytest.raises(machine.Reset):
        manager.handle("OTA:COMMIT")
    assert replies[-1] == "OTA:OK"
    assert (home / "app.py").read_bytes() == data


def test_v1_pipelining_beats_stop_and_wait(engine: tuple[Any, list[str], Path]) -> None:
    manager, replies, _home = engine
    data = payload(8_000)
    times = {}
    for window in (1, 4):
        manager.handle(f"OTA:START:app.py:{len(data)}:{crc(data)}:1.0.1:100")
        assert replies.pop() == "OTA:READY"
        sender = SeqSender("app.py", data, chunk=100, window=window)
        times[window] = run(sender, manager, replies, Script()).seconds
        manager.handle("OTA:ABORT")
        replies.clear()
    assert times[4] < times[1] / 2


@settings(max_examples=40, deadline=None)
@given(
    drops=st.lists(st.booleans(), min_size=1, max_size=40),
    dups=st.lists(st.booleans(), min_size=1, max_size=17),
    lost_replies=st.lists(st.booleans(), min_size=1, max_size=23),
    window=st.integers(1, 8),
    v1=st.booleans(),
)
def test_any_loss_pattern_never_corrupts(
    drops: list[bool], dups: list[bool], lost_replies: list[bool], window: int, v1: bool
) -> None:
    """Whatever the link does, the board ends with the exact file or we give up."""
    import tempfile

    from tests.firmware.harness import cpython_board

    with tempfile.TemporaryDirectory() as tmp, cpython_board(Path(tmp)):
        import machine
        import ota_manager

        ota_manager.OTAManager.RESET_DELAY_MS = 0
        replies: list[str] = []
        manager = ota_manager.OTAManager(replies.append)
        data = payload(3000, len(drops))
        script = Script(
            drop_up=lambda i, _l: drops[i % len(drops)],
            dup_up=lambda i, _l: dups[i % len(dups)],
            drop_down=lambda i, _l: lost_replies[i % len(lost_replies)],
        )
        if v1:
            manager.handle(f"OTA:START:app.py:{len(data)}:{crc(data)}:1.0.1:100")
            replies.clear()
            sender: WindowSender | SeqSender = SeqSender(
                "app.py", data, chunk=100, window=window, max_retries=6
            )
        else:
            sender = v2_sender(manager, replies, data, window=window, max_retries=6)
        try:
            run(sender, manager, replies, script)
        except TooManyRetriesError:
            return  # a link this bad may defeat us, but never silently
        if v1:
            with contextlib.suppress(machine.Reset):
                manager.handle("OTA:COMMIT")
            assert replies[-1] == "OTA:OK", replies[-3:]
            assert (Path(tmp) / "app.py").read_bytes() == data
        else:
            assert (Path(tmp) / "app.py.new").read_bytes() == data


# -- deflated frames (0xFE) ----------------------------------------------------

SOURCE = source_bytes(9_000)


def deflate_sender(
    manager: Any, replies: list[str], data: bytes = SOURCE, **kw: Any
) -> DeflateSender:
    """FILE as a binary-frame client, then a DeflateSender from READY's offset."""
    sender = binary_sender(manager, replies, data, **kw)
    assert isinstance(sender, DeflateSender)
    return sender


def binary_sender(
    manager: Any, replies: list[str], data: bytes = SOURCE, **kw: Any
) -> WindowSender:
    """FILE as a binary-frame client, then the sender it picks from READY's offset.

    Deflated frames, unless no frame of what is left could carry more than
    a plain one (a tail of at most 237 bytes): then plain frames.
    """
    manager.frames = True  # a NUS layer that hands frames over (HELLO offers bin)
    manager.handle("OTA:HELLO")
    hello = parse_reply(replies.pop())
    assert isinstance(hello, Hello)
    offer = hello.info.deflate
    assert offer == DeflateOffer(9, 1024)  # OTAManager.DEFLATE_WBITS, DEFLATE_MAX
    manager.handle(f"OTA:FILE:app.py:{len(data)}:{crc(data)}:1.0.1:bin:-:")
    ready = parse_reply(replies.pop())
    assert isinstance(ready, Ready)
    assert ready.offset is not None
    frames = deflate_frames(data, start=ready.offset, limit=MAX_WRITE, offer=offer)
    window = kw.pop("window", 12)
    if frames is None:
        return WindowSender(
            "app.py",
            data,
            chunk=MAX_WRITE - 7,
            encoding="bin",
            window=window,
            start=ready.offset,
            **kw,
        )
    return DeflateSender("app.py", frames, window=window, start=ready.offset, **kw)


def test_deflated_frames_clean_link(engine: tuple[Any, list[str], Path]) -> None:
    manager, replies, home = engine
    sender = deflate_sender(manager, replies)
    outcome = run(sender, manager, replies, Script())
    staged_ok(manager, replies, SOURCE, home)
    assert sender.stats.resent == 0
    # Far fewer writes than plain frames (38 of 237 bytes) would take.
    assert outcome.up < 0.7 * len(SOURCE) / (MAX_WRITE - 7)
    # Every frame deflated, but for a tail that a plain frame carries.
    stats = sender.frames.stats
    assert stats.deflated + stats.plain == outcome.up
    assert stats.plain <= 1


def test_deflated_frames_lost_duplicated_and_reordered(
    engine: tuple[Any, list[str], Path],
) -> None:
    manager, replies, home = engine
    rng = random.Random(5)
    sender = deflate_sender(manager, replies)
    script = Script(
        drop_up=lambda _i, _l: rng.random() < 0.08,
        dup_up=lambda _i, _l: rng.random() < 0.08,
        drop_down=lambda _i, _l: rng.random() < 0.05,
        swap_down=lambda _i, _l: rng.random() < 0.05,
    )
    run(sender, manager, replies, script)
    staged_ok(manager, replies, SOURCE, home)
    assert sender.stats.resent > 0
    assert sender.stats.rewinds > 0


def test_a_deflated_gap_uses_the_nak(engine: tuple[Any, list[str], Path]) -> None:
    manager, replies, home = engine
    sender = deflate_sender(manager, replies)
    run(sender, manager, replies, Script(drop_up=lambda i, _l: i == 3))
    staged_ok(manager, replies, SOURCE, home)
    assert sender.stats.rewinds == 1
    assert sender.stats.timeouts == 0


def frame_ends(data: bytes) -> list[int]:
    """Where the frames of a whole transfer of `data` end, but the last."""
    frames = deflate_frames(data, start=0, limit=MAX_WRITE, offer=DeflateOffer(9, 1024))
    assert frames is not None
    ends = [frames.end(0)]
    while ends[-1] < len(data):
        ends.append(frames.end(ends[-1]))
    return ends[:-1]


@pytest.mark.parametrize("cut", range(len(frame_ends(SOURCE))))
def test_resume_at_every_frame_boundary(
    engine: tuple[Any, list[str], Path], cut: int
) -> None:
    """The link dies after `cut` + 1 frames; the next session resumes there."""
    manager, replies, home = engine
    boundary = frame_ends(SOURCE)[cut]
    first = deflate_sender(manager, replies)

    def after_boundary(_i: int, line: bytes) -> bool:
        return int.from_bytes(line[3:7], "little") >= boundary

    with pytest.raises(TooManyRetriesError):
        run(first, manager, replies, Script(drop_up=after_boundary))
    assert first.acked_bytes == boundary
    manager.abort()  # the link dropped
    replies.clear()
    second = binary_sender(manager, replies)  # plain frames for a short tail
    assert second.acked_bytes == boundary  # READY's offset: a new frame grid
    run(second, manager, replies, Script())
    staged_ok(manager, replies, SOURCE, home)
