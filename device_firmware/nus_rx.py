"""The RX queue of nus_peripheral: received writes in one preallocated ring.

The BLE IRQ puts each write in (`put`), poll() reads the oldest one where
it lies (`first`, then `at`, `size`, `gen`, `flag` of its slot, bytes in
`buf`) and frees it when done (`free`). No queued write keeps an object of
its own, and nothing here allocates after the ring is made.

Each side moves one index only: the IRQ `_tail`, poll() `_head`; both run
modulo 2 * window, so a full queue and an empty one look different.
"""

from micropython import const

_GAP = const(1)  # slot flag: writes were lost before this one


class RxRing:
    """Up to `window` writes in `cap` bytes, each in one piece."""

    def __init__(self, cap, window):
        self.cap = cap
        self.window = window
        self.buf = bytearray(cap)
        self.view = memoryview(self.buf)
        self.at = [0] * window  # where each queued write starts in buf
        self.size = [0] * window
        self.gen = bytearray(window)  # the connection it came on
        self.flag = bytearray(window)
        self.gap = False  # IRQ: the next queued write follows a loss
        self._end = 0  # IRQ: where the last queued write ends
        self._wrap = 2 * window
        self._head = 0  # advanced by poll() only
        self._tail = 0  # advanced by the IRQ only

    def put(self, chunk, gen):
        """IRQ: queue a write; False (a gap before the next) when it does not fit."""
        n = len(chunk)
        tail = self._tail
        at = self._room(n, tail)
        if at < 0:
            self.gap = True
            return False
        slot = tail % self.window
        self.view[at : at + n] = chunk
        self.at[slot] = at
        self.size[slot] = n
        self.gen[slot] = gen
        self.flag[slot] = _GAP if self.gap else 0
        self._end = at + n
        self.gap = False
        self._tail = (tail + 1) % self._wrap  # last: poll() may read it now
        return True

    def _room(self, n, tail):
        """IRQ: where a write of n bytes goes; -1 when it does not fit.

        It goes in one piece after the queued writes, else at the start of
        the ring if the first queued one leaves room there. poll() may free
        writes meanwhile: `head` read once errs on the safe side.
        """
        head = self._head
        queued = (tail - head) % self._wrap
        if queued >= self.window:
            return -1
        cap = self.cap
        if not queued:
            return 0 if n <= cap else -1
        first = self.at[head % self.window]
        end = self._end
        if end > first:  # the queued writes lie in one piece
            if n <= cap - end:
                return end
            return 0 if n <= first else -1
        return end if n <= first - end else -1

    def first(self):
        """poll(): the slot of the oldest queued write, -1 when none."""
        head = self._head
        return -1 if head == self._tail else head % self.window

    def free(self):
        """poll(): done with the oldest write; the IRQ may reuse its bytes."""
        self._head = (self._head + 1) % self._wrap

    def pending(self):
        """Writes queued."""
        return (self._tail - self._head) % self._wrap

    def queued_bytes(self):
        """Bytes of the queued writes."""
        n = 0
        i = self._head
        while i != self._tail:
            n += self.size[i % self.window]
            i = (i + 1) % self._wrap
        return n
