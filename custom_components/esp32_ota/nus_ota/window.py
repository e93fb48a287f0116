"""How many data lines to keep in flight: enough for the link, no more.

Lines in flight beyond what the link carries in one round trip only wait in
the proxy's queue: they make the round trip longer, and a lost write costs
every line sent after it (the board takes lines in order and answers the
gap with `N`, so those are sent again). Too few, and the link idles. So the
window is the link's bandwidth-delay product, measured from the board's
acknowledgements in the manner of TCP BBR:

- delivery rate: when a line goes out, the sender notes how many lines were
  acknowledged so far and when the last acknowledgement came; when that
  line is acknowledged, the lines acknowledged in between over the time
  since that earlier acknowledgement is one rate sample (never shorter than
  a round trip, nor than the time over which those lines were sent, so a
  burst of acknowledgements does not fake a fast link).
  The window keeps the highest sample of the last `RATE_ROUNDS` round trips;
- round trip: the shortest sample of the transfer (queueing only adds);
- while the rate still grows (by `FULL_GROWTH` from one round trip to the
  next, TCP BBR's start-up), window = `STARTUP_GAIN` x rate x round trip,
  so a long link fills in a few round trips; once it stops growing, the
  link is full and window = rate x round trip + `PROBE_LINES`: the line
  more keeps probing (each sample is window / round trip while the window
  limits the rate), and no more than that waits in the proxy. BLE moves
  packets in connection events, so the shortest round trip seen under load
  already includes the wait for an event: a gain above 1 in the steady
  state overshoots (1.5 kept 16-18 lines in flight where 13 fill `proxy`,
  and lost more to every lost write on `wifi-proxy` and `lossy-proxy`).

Bounds: at most the board's window (what its RAM holds, from HELLO) and
`PROXY_QUEUE` (an ESPHome proxy drops writes without response silently
when its queue is full). It starts at `BASE_WINDOW` lines and never goes
below (unless the board's window is smaller): 12 lines cover an ESPHome
proxy's round trip (scripts/bench `proxy`: 11 reach 85 % of the link, 12
and more 86 %). A bigger first burst would queue in the proxy from the
start, and the shortest round trip would then include that queue and size
every later window too big. Below it the estimate undershoots after a
latency spike or a lucky shortest round trip (Wi-Fi jitter): on one
`wifi-proxy` seed of scripts/bench the window fell to 2 and the transfer
reached 57.9 % of the link instead of 67.3 %. Losses change nothing but
the samples: the window stays within its bounds, and resent lines give no
sample (their acknowledgement may answer either copy).

Sans-I/O: times come from the caller, in seconds.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

# The simulator's proxy queue (scripts/esp32_ota_sim/link.py, 32 writes):
# more in flight could overflow it however fast the board acknowledges.
PROXY_QUEUE: Final = 32
BASE_WINDOW: Final = 12
STARTUP_GAIN: Final = 1.5
FULL_GROWTH: Final = 1.25
FULL_ROUNDS: Final = 1
PROBE_LINES: Final = 1
RATE_ROUNDS: Final = 10
_ROUNDING: Final = 1e-9  # 12.000000001 lines is 12

type Stamp = tuple[float, int, float, float]
"""A line's: (sent at, lines acknowledged then, when the last acknowledgement
came then, when the line it acknowledged had been sent)."""


class LinkWindow:
    """The number of lines to keep in flight (`size`), from rate and round trip."""

    __slots__ = (
        "_flat_rounds",
        "_full_rate",
        "_rates",
        "_round_end",
        "cap",
        "delivered",
        "delivered_at",
        "filled",
        "fixed",
        "min_rtt",
        "sent_at",
        "size",
    )

    def __init__(self, board_window: int, *, fixed: bool = False) -> None:
        """Board_window: lines the board holds (HELLO `win` or `fwin`).

        A `fixed` window stays at its bounds and counts nothing (v1 boards:
        a small pipeline within the v1 contract, see transfer.SeqSender).
        """
        if board_window < 1:
            raise ValueError("window must be at least 1")
        self.cap = min(board_window, PROXY_QUEUE)
        self.size = self.cap if fixed else min(self.cap, BASE_WINDOW)
        # A board window at or below the base leaves nothing to size: no
        # rate or round-trip bookkeeping per acknowledgement then.
        self.fixed = fixed or self.cap <= BASE_WINDOW
        self.delivered = 0  # lines acknowledged so far
        self.delivered_at = 0.0  # when the last of them was (see `start`)
        self.sent_at = 0.0  # when the newest line acknowledged went out
        self.min_rtt = math.inf
        # Rate samples (time, lines/s) that may still be the highest of the
        # horizon: each one higher than every later one (a sliding maximum).
        self._rates: deque[tuple[float, float]] = deque()
        # Until the rate stops growing by FULL_GROWTH for FULL_ROUNDS round
        # trips the window doubles the product (see the module's text).
        self.filled = False
        self._full_rate = 0.0
        self._flat_rounds = 0
        self._round_end = 0  # lines acknowledged when the round trip ends

    def start(self, now: float) -> None:
        """Count rates from now, when the first line goes out."""
        self.delivered_at = self.sent_at = now

    def stamp(self, now: float) -> Stamp:
        """Return what to remember of a line sent for the first time at `now`."""
        return (now, self.delivered, self.delivered_at, self.sent_at)

    def on_ack(self, lines: int, now: float, sample: Stamp | None) -> None:
        """`lines` more are acknowledged; `sample` is the newest one's stamp, if any.

        A sample only for a line sent once whose acknowledgement ends exactly
        at it (Karn's rule, as for the round-trip estimate).
        """
        if self.fixed:
            return
        self.delivered += lines
        self.delivered_at = now
        if sample is None:
            return
        sent, delivered, acked_at, acked_sent_at = sample
        self.sent_at = sent
        self.min_rtt = min(self.min_rtt, now - sent)
        # The lines acknowledged since that line went out arrived over
        # `now - acked_at` and were sent over `sent - acked_sent_at`: the
        # longer of the two, so acknowledgements bunched by a delay on the
        # way back count at the pace the lines were sent (TCP BBR's rule).
        interval = max(now - acked_at, sent - acked_sent_at)
        if interval <= 0 or self.min_rtt <= 0:
            return
        rate = (self.delivered - delivered) / interval
        rates = self._rates
        while rates and rates[-1][1] <= rate:
            rates.pop()
        rates.append((now, rate))
        horizon = now - RATE_ROUNDS * self.min_rtt
        while rates[0][0] < horizon:
            rates.popleft()
        best = rates[0][1]
        if not self.filled and delivered >= self._round_end:
            self._next_round(best)
        product = best * self.min_rtt
        if self.filled:
            target = math.ceil(product - _ROUNDING) + PROBE_LINES
        else:
            target = math.ceil(STARTUP_GAIN * product - _ROUNDING)
        self.size = min(self.cap, max(BASE_WINDOW, target))

    def _next_round(self, rate: float) -> None:
        """End a round trip (TCP BBR's count): tell whether the link is full."""
        self._round_end = self.delivered
        if rate >= self._full_rate * FULL_GROWTH:
            self._full_rate = rate
            self._flat_rounds = 0
        else:
            self._flat_rounds += 1
            self.filled = self._flat_rounds >= FULL_ROUNDS
