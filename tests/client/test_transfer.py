"""Sans-I/O window state machines: scripted replies and an injected clock."""

from __future__ import annotations

import base64

import pytest

from custom_components.esp32_ota.nus_ota.errors import (
    CrcMismatchError,
    DeviceError,
    ProtocolError,
    TooManyRetriesError,
)
from custom_components.esp32_ota.nus_ota.replies import (
    Ack,
    BadData,
    CrcError,
    Error,
    Nak,
    Ok,
    SeqAck,
    SeqError,
    parse_reply,
)
from custom_components.esp32_ota.nus_ota.transfer import (
    RttEstimator,
    SeqSender,
    WindowSender,
)

DATA = bytes(range(256)) * 4  # 1024 bytes


def offsets(lines: list[bytes]) -> list[int]:
    return [int(line.split(b":")[2]) for line in lines]


def decode(line: bytes) -> bytes:
    return base64.b64decode(line.rstrip(b"\n").split(b":")[3])


# -- RttEstimator ---------------------------------------------------------


def test_rto_before_and_after_samples() -> None:
    rtt = RttEstimator(initial_rto=0.5, min_rto=0.04, max_rto=1.0)
    assert rtt.rto == 0.5
    rtt.sample(0.02)
    assert rtt.srtt == pytest.approx(0.02)
    assert rtt.rto == pytest.approx(0.06)  # srtt + 4 * rttvar (0.01)
    for _ in range(50):
        rtt.sample(0.02)
    # a steady 20 ms round trip: retransmit after a few connection intervals
    assert 0.04 <= rtt.rto <= 0.05


def test_rto_bounds_and_backoff() -> None:
    rtt = RttEstimator(initial_rto=0.3, min_rto=0.04, max_rto=1.0)
    rtt.sample(0.0001)
    assert rtt.rto == 0.04
    rtt.sample(-1.0)  # a clock going backwards counts as zero
    assert rtt.srtt is not None
    assert rtt.srtt >= 0
    waits = []
    for _ in range(10):
        rtt.backoff()
        waits.append(rtt.rto)
    assert waits[0] == pytest.approx(0.08)
    assert max(waits) == 1.0  # never multi-second waits
    rtt.reset_backoff()
    assert rtt.rto == 0.04
    slow = RttEstimator(max_rto=1.0)
    slow.sample(5.0)
    assert slow.rto == 1.0


# -- WindowSender (v2) ----------------------------------------------------


def window_sender(**kw: object) -> WindowSender:
    args: dict[str, object] = {
        "chunk": 100,
        "encoding": "b64",
        "window": 4,
        "rtt": RttEstimator(initial_rto=0.5),
    }
    args.update(kw)
    return WindowSender("app.py", DATA, **args)  # type: ignore[arg-type]


def test_window_is_respected_and_refilled_by_cumulative_acks() -> None:
    s = window_sender()
    lines = s.poll(0.0)
    assert offsets(lines) == [0, 100, 200, 300]
    assert [decode(line) for line in lines] == [
        DATA[o : o + 100] for o in (0, 100, 200, 300)
    ]
    assert s.poll(0.01) == []  # window full
    s.on_reply(Ack(200), 0.02)  # one cumulative ACK for two chunks
    assert s.acked_bytes == 200
    assert offsets(s.poll(0.02)) == [400, 500]
    s.on_reply(Ack(200), 0.03)  # a repeated notification
    assert s.acked_bytes == 200
    assert s.stats.duplicates == 1
    s.on_reply(Ack(600), 0.04)
    lines = s.poll(0.04)
    assert offsets(lines) == [600, 700, 800, 900]
    s.on_reply(Ack(1000), 0.05)
    (last,) = s.poll(0.05)
    assert offsets([last]) == [1000]
    assert decode(last) == DATA[1000:]  # the short final chunk
    assert not s.done
    s.on_reply(Ack(1024), 0.06)
    assert s.done
    assert s.poll(0.06) == []
    assert s.deadline is None
    assert s.stats.rewinds == 0
    assert s.stats.lines_sent == 11


def test_resume_starts_at_the_offset_the_board_gave() -> None:
    s = window_sender(start=900)
    assert offsets(s.poll(0.0)) == [900, 1000]
    with pytest.raises(ProtocolError):
        window_sender(start=2000)
    done = window_sender(start=1024)
    assert done.done
    assert done.poll(0.0) == []


def test_nak_goes_back_once_per_gap() -> None:
    s = window_sender()
    s.poll(0.0)  # 0..300 in flight
    s.on_reply(Ack(100), 0.02)
    s.poll(0.02)  # 400
    # chunk 100 was lost; the board says N:100 once
    s.on_reply(Nak(100), 0.03)
    assert s.stats.rewinds == 1
    assert offsets(s.poll(0.03)) == [100, 200, 300, 400]
    assert s.stats.resent == 4
    # a late copy of the same NAK must not cause a second go-back
    s.on_reply(Nak(100), 0.035)
    assert s.stats.rewinds == 1
    assert s.poll(0.036) == []
    s.on_reply(Ack(300), 0.05)
    # after progress, a new gap at a new place is a new go-back
    s.poll(0.05)
    s.on_reply(Nak(400), 0.06)
    assert s.stats.rewinds == 2
    assert offsets(s.poll(0.06))[0] == 400


def test_nak_ahead_of_acked_counts_as_progress() -> None:
    s = window_sender()
    s.poll(0.0)
    s.on_reply(Nak(200), 0.02)  # board holds 200 (the ACKs got lost) and misses 200
    assert s.acked_bytes == 200
    assert offsets(s.poll(0.02)) == [200, 300, 400, 500]


def test_board_claiming_more_than_was_sent_is_a_protocol_error() -> None:
    s = window_sender()
    s.poll(0.0)
    with pytest.raises(ProtocolError):
        s.on_reply(Ack(500), 0.01)
    s2 = window_sender()
    s2.poll(0.0)
    with pytest.raises(ProtocolError):
        s2.on_reply(Nak(900), 0.01)


def test_lost_write_recovered_by_timer_from_measured_rtt() -> None:
    s = window_sender(window=2)
    now = 0.0
    # steady state: ACK every 20 ms, the estimator learns the round trip
    for _ in range(4):
        s.poll(now)
        now += 0.02
        s.on_reply(Ack(s.acked_bytes + 100), now)
    assert s.rtt.srtt == pytest.approx(0.02, rel=0.5)
    s.poll(now)  # 400 and 500 in flight; both writes get lost
    deadline = s.deadline
    assert deadline is not None
    assert deadline - now <= 0.1  # a few connection intervals, not seconds
    assert s.poll(deadline - 0.001) == []
    resent = s.poll(deadline)
    assert offsets(resent) == [400, 500]
    assert s.stats.timeouts == 1
    # the resent chunks give no RTT sample (Karn): srtt stays
    srtt = s.rtt.srtt
    s.on_reply(Ack(600), deadline + 0.5)
    assert s.rtt.srtt == srtt


def test_gives_up_after_max_retries_without_progress() -> None:
    s = window_sender(max_retries=3)
    now = 0.0
    s.poll(now)
    waits: list[float] = []

    def wait_out() -> None:
        nonlocal now
        for _ in range(100):
            deadline = s.deadline
            assert deadline is not None
            waits.append(deadline - now)
            now = deadline
            s.poll(now)

    with pytest.raises(TooManyRetriesError) as err:
        wait_out()
    assert err.value.file == "app.py"
    assert err.value.offset == 0
    assert len(waits) == 4
    assert all(w <= 1.0 for w in waits)
    assert waits == sorted(waits)  # backoff


def test_progress_resets_the_retry_budget() -> None:
    s = window_sender(max_retries=2, window=1, chunk=10)
    now = 0.0
    for i in range(20):  # every chunk needs one timeout, the transfer goes on
        s.poll(now)
        deadline = s.deadline
        assert deadline is not None
        now = deadline
        s.poll(now)
        now += 0.01
        s.on_reply(Ack((i + 1) * 10), now)
    assert s.acked_bytes == 200
    assert s.stats.timeouts == 20


def test_terminal_errors_during_data() -> None:
    s = window_sender()
    s.poll(0.0)
    with pytest.raises(CrcMismatchError) as crc:
        s.on_reply(CrcError("00000001", "00000002"), 0.1)
    assert (crc.value.file, crc.value.got, crc.value.expected) == (
        "app.py",
        "00000001",
        "00000002",
    )
    with pytest.raises(DeviceError) as dev:
        s.on_reply(Error("WRITE", "ENOSPC"), 0.1)
    assert (dev.value.code, dev.value.detail) == ("WRITE", "ENOSPC")
    with pytest.raises(ProtocolError):
        s.on_reply(Ok(), 0.1)
    with pytest.raises(ProtocolError):
        s.on_reply(SeqAck(1), 0.1)


def test_bad_data_waits_for_the_nak_then_gives_up_when_repeated() -> None:
    s = window_sender()
    s.poll(0.0)
    s.on_reply(BadData(100), 0.01)
    assert s.stats.rewinds == 0  # the NAK for the next chunk does the go-back
    s.on_reply(BadData(0), 0.01)  # stale / duplicate
    s.on_reply(BadData(200), 0.01)
    with pytest.raises(ProtocolError):
        s.on_reply(BadData(300), 0.01)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        window_sender(window=0)
    with pytest.raises(ValueError):
        window_sender(chunk=0)
    with pytest.raises(ValueError):
        SeqSender("a", DATA, chunk=0)


# -- SeqSender (v1) -------------------------------------------------------


def seqs(lines: list[bytes]) -> list[int]:
    return [int(line.split(b":")[2]) for line in lines]


def test_stop_and_wait() -> None:
    s = SeqSender("app.py", DATA[:250], chunk=100, window=1)
    (line,) = s.poll(0.0)
    assert line == b"OTA:DATA:0:" + DATA[:100].hex().encode() + b"\n"
    assert s.poll(0.01) == []
    s.on_reply(SeqAck(0), 0.02)
    assert seqs(s.poll(0.02)) == [1]
    s.on_reply(SeqAck(0), 0.03)  # a re-ACK of expected-1: nothing changes
    assert s.acked == 1
    s.on_reply(SeqAck(1), 0.04)
    (last,) = s.poll(0.04)
    assert last.endswith(DATA[200:250].hex().encode() + b"\n")
    s.on_reply(SeqAck(2), 0.05)
    assert s.done
    assert s.acked_bytes == 250


def test_pipelined_v1_goes_back_on_err_and_ignores_stale_errors() -> None:
    s = SeqSender("app.py", DATA, chunk=100, window=4)  # 11 chunks
    assert seqs(s.poll(0.0)) == [0, 1, 2, 3]
    s.on_reply(SeqAck(0), 0.02)
    assert seqs(s.poll(0.02)) == [4]
    # write 1 was lost: the board answers ERR to 2, 3 and 4
    s.on_reply(SeqError(2), 0.03)
    assert s.stats.rewinds == 1
    assert seqs(s.poll(0.03)) == [1, 2, 3, 4]
    s.on_reply(SeqError(3), 0.031)  # stale replies to lines sent before the go-back
    s.on_reply(SeqError(4), 0.032)
    assert s.stats.rewinds == 1
    s.on_reply(SeqAck(1), 0.05)
    assert seqs(s.poll(0.05)) == [5]
    # after progress, an error is a new gap again
    s.on_reply(SeqError(3), 0.06)
    assert s.stats.rewinds == 2


def test_v1_err_at_or_below_acked_means_the_board_is_ahead() -> None:
    s = SeqSender("app.py", DATA, chunk=100, window=4)
    s.poll(0.0)  # 0..3
    # the ACKs of 0 and 1 were lost; we resend 0 after a timeout
    deadline = s.deadline
    assert deadline is not None
    assert seqs(s.poll(deadline)) == [0, 1, 2, 3]
    s.on_reply(
        SeqError(0), deadline + 0.01
    )  # board expects neither 0 nor 1: it holds 0 and 1
    assert s.acked == 2
    s.on_reply(
        SeqError(1), deadline + 0.02
    )  # it expects neither 1 nor 2: it holds 2 too
    assert s.acked == 3
    s.on_reply(SeqAck(2), deadline + 0.03)  # a re-ACK of expected-1
    assert s.acked == 3
    with pytest.raises(ProtocolError):
        s.on_reply(SeqAck(9), deadline + 0.04)


def test_v1_bad_data_is_a_gap() -> None:
    s = SeqSender("app.py", DATA, chunk=100, window=2)
    s.poll(0.0)
    s.on_reply(BadData(0), 0.01)
    assert s.stats.rewinds == 1
    assert seqs(s.poll(0.01)) == [0, 1]
    s.on_reply(SeqAck(0), 0.02)
    s.on_reply(BadData(1), 0.03)
    assert s.stats.rewinds == 2
    s.on_reply(BadData(1), 0.04)  # stale after the go-back: ignored, but counted
    assert s.stats.rewinds == 2
    with pytest.raises(ProtocolError):
        s.on_reply(BadData(1), 0.05)


def test_v1_device_errors() -> None:
    s = SeqSender("app.py", DATA, chunk=100)
    s.poll(0.0)
    with pytest.raises(DeviceError) as err:
        s.on_reply(parse_reply("OTA:ERR:NOT_READY") or Ok(), 0.01)
    assert err.value.code == "NOT_READY"
    with pytest.raises(ProtocolError):
        s.on_reply(Ack(100), 0.01)


# -- acknowledgements no honest board sends (issue 15) ----------------------


@pytest.mark.parametrize(
    ("replies", "match"),
    [
        ([Ack(1)], "inside a line"),  # mid-chunk
        ([Ack(100), Ack(150)], "inside a line"),
        ([Ack(200), Ack(100)], "at 100 after 200"),  # backwards
        ([Ack(200), Nak(100)], "at 100 after 200"),
        ([Ack(401)], "beyond what was sent"),
    ],
)
def test_unexpected_acknowledgements_are_protocol_errors(
    replies: list[Ack | Nak], match: str
) -> None:
    s = window_sender()
    s.poll(0.0)  # 0..300 in flight: acknowledgements may name 100, 200, 300, 400
    *before, odd = replies
    for reply in before:
        s.on_reply(reply, 0.02)
    with pytest.raises(ProtocolError, match=match):
        s.on_reply(odd, 0.02)


def test_a_nak_inside_a_line_resends_from_the_boards_offset() -> None:
    s = window_sender()
    s.poll(0.0)
    s.on_reply(Nak(50), 0.02)  # the board says it holds 50 bytes: take its word
    assert offsets(s.poll(0.02)) == [50, 150, 250, 350]
    s.on_reply(Ack(250), 0.04)  # lines now end at 150, 250, ...
    assert s.acked_bytes == 250


def test_resumed_lines_are_aligned_on_the_resume_offset() -> None:
    s = window_sender(start=30)
    assert offsets(s.poll(0.0)) == [30, 130, 230, 330]
    s.on_reply(Ack(130), 0.02)
    with pytest.raises(ProtocolError, match="inside a line"):
        s.on_reply(Ack(200), 0.03)


def test_the_watchdog_runs_until_everything_is_acknowledged() -> None:
    """No state but `done` leaves the sender without a deadline."""
    s = window_sender(window=20, max_retries=2)
    s.poll(0.0)  # the whole file in flight
    s.on_reply(Ack(1000), 0.02)  # everything but the short last line
    assert not s.done
    deadline = s.deadline
    assert deadline is not None
    assert offsets(s.poll(deadline)) == [1000]  # resent after one timeout
    deadline = s.deadline
    assert deadline is not None
    s.poll(deadline)  # the second and last resend
    deadline = s.deadline
    assert deadline is not None
    with pytest.raises(TooManyRetriesError):
        s.poll(deadline)


def test_v1_acknowledgement_going_backwards_is_a_protocol_error() -> None:
    s = SeqSender("app.py", DATA, chunk=100, window=4)
    s.poll(0.0)
    s.on_reply(SeqAck(2), 0.02)
    s.on_reply(SeqAck(2), 0.02)  # repeated: fine
    with pytest.raises(ProtocolError, match="at 1 after 3"):
        s.on_reply(SeqAck(0), 0.03)
    with pytest.raises(ProtocolError, match="beyond"):
        s.on_reply(SeqError(7), 0.03)  # an error about a chunk never sent


def test_rto_keeps_one_round_trip_of_margin_on_a_slow_steady_link() -> None:
    """Through a proxy a round trip can be 200 ms; the 40 ms floor hides nothing."""
    rtt = RttEstimator(initial_rto=0.5, min_rto=0.04, max_rto=1.0)
    for _ in range(50):
        rtt.sample(0.2)  # steady: the variance decays to nothing
    assert rtt.rto == pytest.approx(0.4, rel=0.01)  # srtt + one srtt
