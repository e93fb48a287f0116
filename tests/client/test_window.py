"""The data window sized from the link (nus_ota.window), on a virtual clock.

`SlottedLink` is a small model of a BLE link through a proxy: a hop each
way, the proxy's bounded queue (a full queue drops a write silently),
connection events that carry a few writes each way, an in-order board
that acknowledges cumulatively and answers a gap with N. It drives the
real WindowSender; tests/test_bench.py runs the whole simulator with big
board windows.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

import pytest

from custom_components.esp32_ota.nus_ota.replies import Ack, Nak, Reply
from custom_components.esp32_ota.nus_ota.transfer import SeqSender, WindowSender
from custom_components.esp32_ota.nus_ota.window import (
    BASE_WINDOW,
    PROXY_QUEUE,
    LinkWindow,
    Stamp,
)

KIB = 1024
CHUNK = 237


@dataclass
class SlottedLink:
    """Writes and notifications in connection events, behind a Wi-Fi hop."""

    hop: float = 0.010
    interval: float = 0.030
    per_event: int = 4
    queue_limit: int = PROXY_QUEUE
    loss: float = 0.0
    seed: int = 1
    dropped: int = 0
    max_in_flight: int = 0
    windows: list[int] = field(default_factory=list)

    def run(self, sender: WindowSender, until: float = 60.0) -> float:
        """Drive `sender` to the end; returns the virtual time it took."""
        rng = random.Random(self.seed)
        events: list[tuple[float, int, str, object]] = []
        order = 0
        queue: list[bytes] = []
        replies: list[Reply] = []
        expected = 0  # the board's next offset
        nak_sent = False
        now = 0.0
        next_event = self.interval

        def at(when: float, kind: str, item: object) -> None:
            nonlocal order
            order += 1
            heapq.heappush(events, (when, order, kind, item))

        while not sender.done:
            for line in sender.poll(now):
                at(now + self.hop, "proxy", line)
            self.max_in_flight = max(self.max_in_flight, len(sender._flight))
            self.windows.append(sender.window.size)
            deadline = sender.deadline
            wake = min(
                [e[0] for e in events[:1]]
                + [next_event]
                + ([deadline] if deadline is not None else [])
            )
            now = max(now, wake)
            if now > until:
                raise AssertionError("the transfer did not end")
            while events and events[0][0] <= now:
                _, _, kind, item = heapq.heappop(events)
                if kind == "proxy":
                    if len(queue) >= self.queue_limit:
                        self.dropped += 1
                    else:
                        queue.append(item)  # type: ignore[arg-type]
                else:
                    sender.on_reply(item, now)  # type: ignore[arg-type]
            if now >= next_event:
                next_event += self.interval
                for line in queue[: self.per_event]:
                    if rng.random() < self.loss:
                        continue
                    offset = int.from_bytes(line[3:7], "little")
                    if offset == expected:
                        expected += len(line) - 7
                        nak_sent = False
                        replies.append(Ack(expected))
                    elif offset > expected and not nak_sent:
                        nak_sent = True
                        replies.append(Nak(expected))
                del queue[: self.per_event]
                # the board answers at the next event, then the hop back
                for reply in replies[: self.per_event]:
                    at(next_event + self.hop, "reply", reply)
                del replies[: self.per_event]
        return now


def sender(board_window: int, size: int = 64 * KIB) -> WindowSender:
    return WindowSender(
        "app.py", bytes(size), chunk=CHUNK, encoding="bin", window=board_window
    )


def capacity(link: SlottedLink) -> float:
    """File bytes per second the link carries at best."""
    return link.per_event * CHUNK / link.interval


# -- start and bounds -----------------------------------------------------


def test_starts_at_the_base_window_or_the_boards_if_smaller() -> None:
    assert len(sender(16).poll(0.0)) == BASE_WINDOW
    assert len(sender(7).poll(0.0)) == 7
    assert len(sender(1).poll(0.0)) == 1


def test_a_v1_window_stays_fixed() -> None:
    v1 = SeqSender("app.py", bytes(4 * KIB), chunk=110, window=4)
    assert len(v1.poll(0.0)) == 4
    v1.window.on_ack(4, 1.0, (0.5, 0, 0.0, 0.0))
    assert v1.window.size == 4


def test_a_board_window_at_the_base_leaves_nothing_to_size() -> None:
    assert LinkWindow(BASE_WINDOW).fixed  # no bookkeeping per acknowledgement
    assert not LinkWindow(BASE_WINDOW + 1).fixed


def test_an_instant_acknowledgement_gives_no_rate() -> None:
    # a loopback link answers in no time: no division by zero, no change
    window = LinkWindow(32)
    window.start(1.0)
    window.on_ack(1, 1.0, window.stamp(1.0))
    assert window.min_rtt == 0.0
    assert window.size == BASE_WINDOW
    assert not window.filled


def test_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LinkWindow(0)


def test_never_more_than_the_board_window_or_the_proxy_queue() -> None:
    for board_window, bound in ((12, 12), (64, PROXY_QUEUE)):
        # a very long round trip: the link could take far more in flight
        link = SlottedLink(hop=0.150)
        link.run(sender(board_window))
        assert link.max_in_flight == bound
        assert max(link.windows) == bound
        assert link.dropped == 0


# -- sized by the link ----------------------------------------------------


def test_grows_to_cover_a_long_round_trip() -> None:
    # 60 ms each way: the round trip holds about 24 lines, twice the
    # base window; the window grows and the link runs nearly full
    link = SlottedLink(hop=0.060)
    size = 64 * KIB
    seconds = link.run(sender(32, size))
    assert max(link.windows) >= 20
    assert size / seconds > 0.8 * capacity(link)
    # the base window alone fills about half of it
    fixed = SlottedLink(hop=0.060)
    fixed_seconds = fixed.run(sender(BASE_WINDOW, size))
    assert size / fixed_seconds < 0.6 * capacity(link)


def test_stays_near_the_link_not_the_board() -> None:
    # 10 ms hop: about 12 lines cover the round trip; a board offering 32
    # gets no more than that in flight once the link is measured
    link = SlottedLink()
    seconds = link.run(sender(32))
    settled = link.windows[len(link.windows) // 2 :]
    assert max(settled) <= 16
    assert link.dropped == 0
    assert 64 * KIB / seconds > 0.85 * capacity(link)


def test_shrinks_a_window_the_link_does_not_need() -> None:
    # a line every 10 ms, each acknowledged 50 ms after it went out: 5 in
    # flight carry it all, and a window of 32 shrinks to its floor
    window = LinkWindow(32)
    window.start(0.0)
    window.size = 32
    pending: deque[tuple[float, Stamp]] = deque()
    for step in range(300):
        now = step * 0.010
        while pending and pending[0][0] <= now:
            window.on_ack(1, now, pending.popleft()[1])
        pending.append((now + 0.050, window.stamp(now)))
    assert window.size == BASE_WINDOW


def test_settles_one_line_above_the_measured_product() -> None:
    # 200 lines/s, each acknowledged 100 ms after it went out: 20 lines in
    # flight carry it; the window first grows past that (1.5 x while the
    # rate still grows), then keeps the product and one line to probe with
    window = LinkWindow(32)
    window.start(0.0)
    pending: deque[tuple[float, Stamp]] = deque()
    sizes = []
    for step in range(400):
        now = step * 0.005
        while pending and pending[0][0] <= now:
            window.on_ack(1, now, pending.popleft()[1])
            sizes.append(window.size)
        pending.append((now + 0.100, window.stamp(now)))
    assert max(sizes) == 30
    assert window.filled
    assert window.size == 21


def test_never_below_the_base_window_however_slow_the_link_looks() -> None:
    # after a latency spike the samples say one line per 100 ms: the
    # window keeps the base, or the link would idle once the spike is over
    window = LinkWindow(32)
    window.start(0.0)
    for step in range(50):
        now = step * 0.100
        window.on_ack(1, now + 0.050, window.stamp(now))
        assert window.size == BASE_WINDOW


def test_stays_bounded_under_loss() -> None:
    link = SlottedLink(loss=0.05, seed=4)
    link.run(sender(32))
    assert all(BASE_WINDOW <= size <= 16 for size in link.windows[50:])
    assert link.dropped == 0
