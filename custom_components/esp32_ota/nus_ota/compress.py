"""Deflated data frames (0xFE): the client's side of compression.

A board that offers HELLO `deflate` decompresses frames that each hold one
raw deflate stream of their own (RFC 1951, no header). Every frame stands
alone, so acknowledgements, the window, go-back and resume work at any
frame boundary exactly as for plain 0xFF frames.

`deflate_frames()` decides per file whether compression pays, on a sample
of a few frame-sized pieces: a file that does not compress (a `.mpy`, an
image, random bytes) goes as plain frames and costs no more compression
than the sample. When it pays, `DeflateFrames` builds each frame when it is
first sent: it guesses the input that fills most of one write from a
running ratio, compresses, and keeps the stream when it fills the write
well enough; otherwise it corrects the guess (smaller when the stream
overflowed the write, bigger when it left much room). A frame that would
carry no more file bytes than a plain frame goes plain, which also costs
the board less. Frames are kept by offset until acknowledged, so a resend
after a NAK or a timeout repeats the same bytes at the same offsets.

A board that answers BAD_DATA to a deflated frame cannot decode our streams
(a `deflate` module that differs from the one we tested against): from that
frame on, the file goes as plain frames, which the board takes in the same
transfer, and `refused` tells the client to send the session's other files
plain too. An install then costs one refused frame, never the board.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .lines import DEFLATE_HEAD, DEFLATE_MARK, FRAME_HEAD, data_frame, deflate_frame
from .replies import BadData
from .transfer import DEFAULT_MAX_RETRIES, RttEstimator, WindowSender

if TYPE_CHECKING:
    from .board_info import DeflateOffer
    from .replies import Reply

# The most window bits the client deflates with, whatever the board offers:
# a frame's input is a few hundred bytes to the board's `max` (1 KB by
# default), and zlib reaches back at most 2**wbits - 262 bytes (762 at 10),
# which finds nearly every match such a short input has.
CLIENT_WBITS: Final = 10
# zlib refuses an 8-bit window for raw deflate, but never matches further
# back than 2**wbits - 262 bytes (MAX_DIST in deflate.c): with 9 bits every
# distance stays within the 256 bytes of a board that offers 8.
_ZLIB_MIN_WBITS: Final = 9
_LEVEL: Final = 9  # inputs of a few hundred bytes: the best level costs little
_MEM_LEVEL: Final = 4  # a 2**11-entry hash table is plenty for 1 KB of input
_SAMPLES: Final = 3  # pieces of the file compressed to decide whether it pays
# Compress only when a frame would carry at least this much more file data
# than a plain frame: the board pays for decompressing every deflated frame.
_PAYS: Final = 1.15
# Sizing a frame. A compression (~15 us for a frame of source) costs about
# as much as all the rest of the client's work on that frame, and the
# running ratio predicts a frame's best input only to about 15 % (frames of
# source differ that much), so aiming close to a full write means a second
# try for most frames. The first guess aims at 94 % of the write and a
# stream that fills at least `_ENOUGH` of it is kept; a correction, from
# the measured stream, aims at 96 %. The newest frame weighs a quarter in
# the running ratio. On the project's own source (scripts/bench `--content
# source`, 64 KB to 190 KB) this averages 1.6 compressions per frame where
# aiming at 98 % and correcting below 92 % took 1.9, for 2-3 % fewer file
# bytes per write.
_FIRST_AIM: Final = 0.94
_AIM: Final = 0.96
_ENOUGH: Final = 0.86
_SMOOTH: Final = 0.25
_TRIES: Final = 3  # compressions of one frame at most: a guess and two corrections
# Input bytes per stream byte at the margin, as a multiple of the frame's
# ratio (the first correction's slope), and bounds for the secant's.
_MARGINAL: Final = 1.3
_MAX_SLOPE: Final = 8.0


def zlib_wbits(offered: int) -> int:
    """Window bits to compress with for a board that offers `offered` bits."""
    return max(_ZLIB_MIN_WBITS, min(offered, CLIENT_WBITS))


def _deflate(data: memoryview, wbits: int) -> bytes:
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, -wbits, _MEM_LEVEL)
    return packer.compress(data) + packer.flush()


@dataclass(slots=True)
class DeflateStats:
    """What compressing a file cost and gave."""

    compressions: int = 0  # zlib streams made, the sample's included
    deflated: int = 0  # 0xFE frames built
    plain: int = 0  # 0xFF frames built


class DeflateFrames:
    """The frames of one file from a start offset: deflated where it pays.

    `end(pos)` is the offset after the frame that starts at `pos` and
    `frame(pos)` its bytes on the wire; the first call for an offset builds
    the frame, later calls return the same one until `release()`.
    """

    def __init__(
        self,
        data: bytes,
        *,
        limit: int,
        offer: DeflateOffer,
        ratio: float,
        stats: DeflateStats | None = None,
    ) -> None:
        """Limit: the longest frame; ratio: the file bytes per stream byte to expect."""
        self.data = data
        self.plain_chunk = limit - FRAME_HEAD
        self.stats = stats or DeflateStats()
        self.wbits = zlib_wbits(offer.wbits)
        self._view = memoryview(data)
        self._end = len(data)
        self._room = limit - DEFLATE_HEAD
        self._most = offer.max_bytes
        self._ratio = ratio
        self._built: dict[int, tuple[bytes, int]] = {}
        self._order: deque[int] = deque()  # offsets of `_built`, as built
        self._last_end = -1  # where the frame built last ends
        self.refused = False  # the board could not decode a stream: plain from then

    def end(self, pos: int) -> int:
        """Offset after the frame that starts at `pos`."""
        return self._get(pos)[1]

    def frame(self, pos: int) -> bytes:
        """Return the frame that starts at `pos`, as it goes on the wire."""
        return self._get(pos)[0]

    def starts_frame(self, pos: int) -> bool:
        """Tell whether a kept frame starts at `pos`, or the newest one ends there."""
        return pos == self._last_end or pos in self._built

    def deflated_at(self, pos: int) -> bool:
        """Tell whether the kept frame at `pos` is a deflated one."""
        built = self._built.get(pos)
        return built is not None and built[0][0] == DEFLATE_MARK

    def go_plain(self, pos: int) -> None:
        """Build only plain frames from now on; forget those built from `pos` on."""
        self.refused = True
        order = self._order
        while order and order[-1] >= pos:
            del self._built[order.pop()]
        self._last_end = pos

    def release(self, below: int) -> None:
        """Forget the frames before `below`: the board holds them."""
        order = self._order
        built = self._built
        while order and order[0] < below:
            del built[order.popleft()]

    def _get(self, pos: int) -> tuple[bytes, int]:
        built = self._built.get(pos)
        if built is None:
            built = self._built[pos] = self._build(pos)
            self._order.append(pos)
            self._last_end = built[1]
        return built

    def _compress(self, pos: int, count: int) -> bytes:
        self.stats.compressions += 1
        return _deflate(self._view[pos : pos + count], self.wbits)

    def _build(self, pos: int) -> tuple[bytes, int]:
        plain = self.plain_chunk
        cap = min(self._end - pos, self._most)
        fit = self._fit(pos, cap) if cap > plain and not self.refused else None
        if fit is None:
            count = min(self._end - pos, plain)
            self.stats.plain += 1
            return data_frame(pos, self._view[pos : pos + count]), pos + count
        count, stream = fit
        self._ratio += (count / len(stream) - self._ratio) * _SMOOTH
        self.stats.deflated += 1
        return deflate_frame(pos, count, stream), pos + count

    def _fit(self, pos: int, cap: int) -> tuple[int, bytes] | None:
        """Find the most input from `pos` (at most `cap`) whose stream fills a write.

        None when no input longer than a plain frame's fits. Deflate's code
        tables cost about the same whatever the input, so a byte of input
        more or less moves the stream by less than the average ratio says;
        after two tries the secant between them gives the slope.
        """
        plain = self.plain_chunk
        room = self._room
        goal = room * _AIM
        count = min(cap, max(plain + 1, int(room * _FIRST_AIM * self._ratio)))
        best: tuple[int, bytes] | None = None
        tried: tuple[int, int] | None = None
        for _ in range(_TRIES):
            stream = self._compress(pos, count)
            size = len(stream)
            if size <= room:  # fits: more input than any earlier try that fit
                best = (count, stream)
                if size >= room * _ENOUGH or count == cap:
                    break
            if tried is None or tried[1] == size:
                slope = _MARGINAL * count / size
            else:
                slope = (tried[0] - count) / (tried[1] - size)
            slope = min(_MAX_SLOPE, max(1.0, slope))
            least = plain + 1 if best is None else best[0] + 1
            guess = count + int((goal - size) * slope)
            if (
                best is None
                and guess < least < count
                and size - (count - least) / slope <= room
            ):
                # Nothing fit yet: try the least input that beats a plain
                # frame when, by the slope, its stream may fit the write.
                guess = least
            tried = (count, size)
            count = min(cap, guess)
            if count < least:
                break
        return best


def deflate_frames(
    data: bytes, *, start: int, limit: int, offer: DeflateOffer | None
) -> DeflateFrames | None:
    """Frames of `data` from `start` when compressing pays, else None (plain frames).

    The sample: `_SAMPLES` pieces of a frame's likely input, spread over
    what is left to send, each deflated on its own as frames are.
    """
    room = limit - DEFLATE_HEAD
    plain = limit - FRAME_HEAD
    rest = len(data) - start
    if offer is None or min(rest, offer.max_bytes) <= plain:
        return None  # no frame could carry more than a plain one
    stats = DeflateStats()
    wbits = zlib_wbits(offer.wbits)
    piece = min(rest, offer.max_bytes, 2 * room)
    view = memoryview(data)
    taken = packed = 0
    for i in range(_SAMPLES):
        at = start + i * (rest - piece) // (_SAMPLES - 1)
        packed += len(_deflate(view[at : at + piece], wbits))
        taken += piece
        stats.compressions += 1
    ratio = taken / packed
    if min(offer.max_bytes, room * ratio) < plain * _PAYS:
        return None
    return DeflateFrames(data, limit=limit, offer=offer, ratio=ratio, stats=stats)


class DeflateSender(WindowSender):
    """A WindowSender of `DeflateFrames`: positions follow the frames' boundaries."""

    def __init__(
        self,
        file: str,
        frames: DeflateFrames,
        *,
        window: int,
        start: int,
        rtt: RttEstimator | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        """Start is the resume offset the board gave in READY."""
        super().__init__(
            file,
            frames.data,
            chunk=frames.plain_chunk,
            encoding="bin",
            window=window,
            start=start,
            rtt=rtt,
            max_retries=max_retries,
        )
        self.frames = frames

    def _step(self, pos: int) -> int:
        return self.frames.end(pos)

    def _line(self, pos: int) -> bytes:
        return self.frames.frame(pos)

    def _starts_frame(self, pos: int) -> bool:
        return self.frames.starts_frame(pos)

    def _on_progress(self) -> None:
        super()._on_progress()
        self.frames.release(self.acked)

    def on_reply(self, reply: Reply, now: float) -> None:
        """As WindowSender's; a deflated frame the board cannot decode ends deflating.

        The board dropped it and NAKs what follows, so the resend from there
        is plain frames.
        """
        if isinstance(reply, BadData) and self.frames.deflated_at(reply.offset):
            self.frames.go_plain(reply.offset)
        super().on_reply(reply, now)
