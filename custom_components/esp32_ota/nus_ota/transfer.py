"""Sans-I/O senders of one file's data: no Bluetooth, no clock of their own.

The caller drives a sender with three calls and the current time:

    lines = sender.poll(now)          # lines to write now (resends included)
    sender.on_reply(reply, now)       # every OTA reply that arrives
    sender.deadline                   # when to call poll() again at the latest

until `sender.done`. Errors the board reports are raised as OTAError.

`WindowSender` speaks v2: byte offsets, cumulative `A:<have>`, `N:<have>`
go-back, as many lines in flight as the link needs (`window.LinkWindow`), at
most the board's `win` (or `fwin`). `SeqSender` speaks v1: chunk numbers,
`ACK:<seq>` and `ERR:<seq>`; with window 1 it is the classic stop-and-wait,
with a small window it pipelines while every write stays one whole line.

Lost writes (a proxy drops writes without response silently) are recovered
by a retransmit timer derived from the measured round trip, so a loss costs a
few round trips, never seconds. The same timer is the progress watchdog: it
runs until the board acknowledged everything, and `max_retries` resends in a
row without progress end the transfer (TooManyRetriesError). An
acknowledgement no honest board sends (inside a line, beyond what was sent,
or below one it already gave) is a ProtocolError at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, Final

from .errors import CrcMismatchError, DeviceError, ProtocolError, TooManyRetriesError
from .lines import data_frame, data_line_v1, data_line_v2, encode_payload
from .replies import (
    Ack,
    BadData,
    CrcError,
    Error,
    Hello,
    Nak,
    Ready,
    Reply,
    SeqAck,
    SeqError,
)
from .window import LinkWindow, Stamp

DEFAULT_MAX_RETRIES: Final = 8
MAX_BAD_DATA: Final = 3
# The replies to data lines, v2 and v1. One that arrives while the client
# awaits a control reply is a late answer to a resent line and is skipped.
DATA_REPLIES: Final = (Ack, Nak, SeqAck, SeqError, BadData)


@dataclass(slots=True, eq=False)
class RttEstimator:
    """Round-trip estimate and retransmit timeout in the manner of RFC 6298.

    Times in seconds; `max_rto` bounds every wait, backoff included.
    """

    initial_rto: float = 0.5
    min_rto: float = 0.04
    max_rto: float = 1.0
    srtt: float | None = field(default=None, init=False)
    rttvar: float = field(default=0.0, init=False)
    _backoff: int = field(default=1, init=False)

    def sample(self, rtt: float) -> None:
        """Add one measured round trip (never of a retransmitted line)."""
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    @property
    def rto(self) -> float:
        """Current retransmit timeout, backoff included, within [min_rto, max_rto].

        BLE round trips come in whole connection intervals, so a steady link
        drives the variance to zero and the next interval's worth of delay
        would look like a loss: the margin is never less than one srtt.
        """
        base = (
            self.initial_rto
            if self.srtt is None
            else self.srtt + max(self.srtt, 4 * self.rttvar)
        )
        return min(self.max_rto, max(self.min_rto, base) * self._backoff)

    def backoff(self) -> None:
        """Double the timeout after a timeout (bounded by max_rto)."""
        self._backoff = min(self._backoff * 2, 64)

    def reset_backoff(self) -> None:
        """Progress was made: back to the plain estimate."""
        self._backoff = 1


@dataclass(slots=True)
class SenderStats:
    """What a transfer cost."""

    lines_sent: int = 0
    resent: int = 0
    rewinds: int = 0
    timeouts: int = 0
    duplicates: int = 0


class _Sender:
    """Window, timer and retry bookkeeping shared by the v1 and v2 senders.

    Positions are byte offsets (v2) or chunk numbers (v1); `_end` is one past
    the last position, `_step(pos)` the position after `pos`.
    """

    _FIXED_WINDOW: ClassVar[bool] = False  # True: no sizing (`LinkWindow`'s fixed)

    def __init__(
        self,
        file: str,
        data: bytes,
        *,
        chunk: int,
        window: int = 1,
        start: int = 0,
        rtt: RttEstimator | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        """Chunk is the most file data one line carries, in bytes.

        Window: lines in flight at most (1: stop-and-wait); start: the
        position the board resumes from.
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1 byte")
        self.file = file
        self.data = data
        self._view = memoryview(data)  # slices without copying
        self.chunk = chunk
        self.window = LinkWindow(window, fixed=self._FIXED_WINDOW)
        self.rtt = rtt or RttEstimator()
        self.max_retries = max_retries
        self.stats = SenderStats()
        self._end = self._end_of(len(data))
        if not 0 <= start <= self._end:
            raise ProtocolError(
                f"resume offset {start} outside a {len(data)}-byte file"
            )
        self.acked = start
        self._next = start
        self._high = start  # one past the furthest position ever sent
        # Lines sent since the last rewind and not acknowledged, in the order
        # sent, which is ascending: (position, stamp). Only a line that went
        # out once has a stamp: a resent line's ACK may answer either copy,
        # so it gives no round-trip or rate sample. A rewind empties it.
        self._flight: deque[tuple[int, Stamp | None]] = deque()
        self._timer_start: float | None = None
        self._stalled = 0  # rewinds since the last progress
        self._bad_data = 0

    # -- to be provided by subclasses
    def _end_of(self, size: int) -> int:
        """One past the last position of a file of `size` bytes."""
        raise NotImplementedError

    def _step(self, pos: int) -> int:
        raise NotImplementedError

    def _line(self, pos: int) -> bytes:
        raise NotImplementedError

    # -- driving
    @property
    def done(self) -> bool:
        """True when the board acknowledged everything."""
        return self.acked >= self._end

    @property
    def deadline(self) -> float | None:
        """When to call poll() at the latest; None before the first poll or when done.

        This is the progress watchdog: the timer runs whenever the board
        still owes an acknowledgement, lines in flight or not, so no reply
        the sender did not foresee can leave it waiting for nothing.
        """
        if self._timer_start is None or self.done:
            return None
        return self._timer_start + self.rtt.rto

    def poll(self, now: float) -> list[bytes]:
        """Handle an expired timer, then return the lines the window allows."""
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self.stats.timeouts += 1
            self.rtt.backoff()
            self._rewind(self.acked, now)
        flight = self._flight
        window = self.window
        if self._timer_start is None:
            self._timer_start = now
            window.start(now)
        room = window.size - len(flight)
        pos = self._next
        end = self._end
        if room <= 0 or pos >= end:
            return []
        if not flight:
            self._timer_start = now  # the oldest line in flight starts it
        high = self._high
        stamp = window.stamp(now)  # the same for every line of this batch
        lines: list[bytes] = []
        while room and pos < end:
            if pos < high:
                self.stats.resent += 1
                flight.append((pos, None))
            else:
                flight.append((pos, stamp))
            lines.append(self._line(pos))
            pos = self._step(pos)
            room -= 1
        self._next = pos
        if pos > high:
            self._high = pos
        self.stats.lines_sent += len(lines)
        return lines

    def _advance(self, to: int, now: float) -> None:
        """Record that the board holds everything before `to`."""
        if to <= self.acked:
            return
        flight = self._flight
        stamp = None
        last = -1
        count = 0
        while flight and flight[0][0] < to:
            last, stamp = flight.popleft()
            count += 1
        if stamp is not None and self._step(last) == to:
            self.rtt.sample(now - stamp[0])
        else:
            stamp = None
        self.window.on_ack(count, now, stamp)
        self.acked = to
        self._next = max(self._next, to)
        self._timer_start = now
        self._stalled = 0
        self.rtt.reset_backoff()
        self._on_progress()

    def _on_progress(self) -> None:
        """Let subclasses react to progress (the acknowledged position moved)."""

    def _rewind(self, to: int, now: float) -> None:
        """Resend from `to`: everything in flight counts as lost."""
        self._stalled += 1
        if self._stalled > self.max_retries:
            raise TooManyRetriesError(self.file, self.acked, self.stats.rewinds)
        self.stats.rewinds += 1
        self._next = to
        self._flight.clear()  # all of it may go out again: no samples
        self._timer_start = now

    def _check_sent(self, pos: int, reply: Reply) -> None:
        if pos > self._high:
            raise ProtocolError(
                f"board acknowledged {self.file} beyond what was sent ({reply})"
            )

    def _check_ack(self, pos: int, reply: Reply) -> None:
        """Refuse an acknowledgement no honest board can send.

        Acknowledgements are cumulative and a link keeps their order, so one
        beyond what was sent, or below what the board already acknowledged,
        means a broken board or relay: waiting on would never end well.
        """
        self._check_sent(pos, reply)
        if pos < self.acked:
            raise ProtocolError(
                f"board acknowledged {self.file} at {pos} after {self.acked} ({reply})"
            )

    def _count_bad_data(self, reply: BadData) -> None:
        """Count a line the board could not decode; too many end the transfer.

        Our encoder never produces undecodable data: repeats mean the link
        corrupts lines.
        """
        self._bad_data += 1
        if self._bad_data > MAX_BAD_DATA:
            raise ProtocolError(
                f"board could not decode the data it was sent {self._bad_data}"
                f" times (last at {reply.offset})"
            )

    def _fail(self, reply: Reply) -> None:
        """Errors that end the transfer."""
        if isinstance(reply, (Ready, Hello)):
            # A repeated or late answer to the FILE, START or HELLO before
            # this transfer (a proxy may deliver a notification twice).
            self.stats.duplicates += 1
            return
        if isinstance(reply, CrcError):
            raise CrcMismatchError(self.file, reply.got, reply.expected)
        if isinstance(reply, Error):
            raise DeviceError(reply.code, reply.detail, "DATA")
        raise ProtocolError(f"unexpected reply during data transfer: {reply}")


class WindowSender(_Sender):
    """v2 data: `OTA:D:<offset>:<payload>` lines or binary frames.

    Cumulative ACK and go-back NAK, whatever the encoding.
    """

    def __init__(
        self,
        file: str,
        data: bytes,
        *,
        chunk: int,
        encoding: str,
        window: int,
        start: int = 0,
        rtt: RttEstimator | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        """Start is the resume offset the board gave in READY."""
        super().__init__(
            file,
            data,
            chunk=chunk,
            window=window,
            start=start,
            rtt=rtt,
            max_retries=max_retries,
        )
        self.encoding = encoding
        self._nak_at: int | None = None  # where the last NAK sent us, until progress
        self._grid = start  # lines start here and every `chunk` bytes after

    @property
    def acked_bytes(self) -> int:
        """Bytes the board holds."""
        return self.acked

    def _end_of(self, size: int) -> int:
        return size

    def _step(self, pos: int) -> int:
        return min(pos + self.chunk, self._end)

    def _line(self, pos: int) -> bytes:
        chunk = self._view[pos : self._step(pos)]
        if self.encoding == "bin":
            return data_frame(pos, chunk)
        return data_line_v2(pos, encode_payload(chunk, self.encoding))

    def _starts_frame(self, pos: int) -> bool:
        """Tell whether a line starts at `pos` (or it is the end of the file)."""
        return pos == self._end or not (pos - self._grid) % self.chunk

    def _on_progress(self) -> None:
        self._nak_at = None

    def on_reply(self, reply: Reply, now: float) -> None:
        """Account for one reply of the board."""
        if isinstance(reply, Ack):
            have = reply.have
            if not self.acked < have <= self._high:
                self._check_ack(have, reply)
                self.stats.duplicates += 1  # the same as the last one
                return
            if not self._starts_frame(have):
                # The board takes whole lines only: it cannot hold part of one.
                raise ProtocolError(
                    f"board acknowledged {self.file} inside a line it was sent"
                    f" ({reply})"
                )
            self._advance(have, now)
        elif isinstance(reply, Nak):
            self._check_ack(reply.have, reply)
            if reply.have == self._nak_at:
                self.stats.duplicates += 1  # repeated: already went back there
                return
            self._advance(reply.have, now)
            self._rewind(reply.have, now)
            self._nak_at = self._grid = reply.have
        elif isinstance(reply, BadData):
            # The board dropped that chunk; the next one brings a NAK (or the
            # timer fires when it was the last).
            self._count_bad_data(reply)
        else:
            self._fail(reply)


class SeqSender(_Sender):
    """v1 data: `OTA:DATA:<seq>:<hex>`, stop-and-wait or a small pipeline.

    The v1 board writes only the chunk it expects (E), re-ACKs E-1 and
    answers ERR:<seq> to anything else, so whatever arrives out of order is
    never written; an error means "go back to the first unacknowledged chunk".
    `ERR:<s>` for an `s` at or below what we know is acknowledged tells that
    the board is at least at s+2 (some ACKs were lost): we move forward.
    After a rewind, until progress (`_stalled`), errors answer lines sent
    before it: stale. A chunk counts file bytes; its line carries twice as
    many hex digits.
    """

    _FIXED_WINDOW = True  # a small pipeline within the v1 contract, never sized

    @property
    def acked_bytes(self) -> int:
        """Bytes the board holds."""
        return min(self.acked * self.chunk, len(self.data))

    def _end_of(self, size: int) -> int:
        return (size + self.chunk - 1) // self.chunk  # the last one may be short

    def _step(self, pos: int) -> int:
        return pos + 1

    def _line(self, pos: int) -> bytes:
        return data_line_v1(pos, self._view[pos * self.chunk : (pos + 1) * self.chunk])

    def on_reply(self, reply: Reply, now: float) -> None:
        """Account for one reply of the board."""
        if isinstance(reply, SeqAck):
            self._check_ack(reply.seq + 1, reply)
            if reply.seq + 1 == self.acked:
                self.stats.duplicates += 1  # the board repeats the last ACK
            self._advance(reply.seq + 1, now)
        elif isinstance(reply, BadData):
            # Our firmware refuses an undecodable chunk without writing it:
            # the same as a gap.
            self._count_bad_data(reply)
            if not self._stalled:
                self._rewind(self.acked, now)
        elif isinstance(reply, SeqError):
            self._check_sent(reply.seq + 1, reply)
            if reply.seq <= self.acked:
                # The board expects neither s nor s+1 and is past s: it holds s+1.
                self.stats.duplicates += 1
                self._advance(min(reply.seq + 2, self._high), now)
            elif not self._stalled:
                self._rewind(self.acked, now)
        else:
            self._fail(reply)
