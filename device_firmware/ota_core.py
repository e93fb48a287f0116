"""What every OTA module shares: names, file names, parsing, the transfer.

Imports no other OTA module, so ota_manager, ota_setup, ota_hello and
ota_commit all build on this one instead of on each other. It stays in RAM
with ota_manager: keep it small.
"""

import os

try:
    from micropython import const
except ImportError:  # plain CPython (a v1 user's desktop tests)

    def const(x):
        return x


FW_VERSION = "2.2.0"

# OTAManager.state
IDLE = const(0)  # no transfer
ARMED = const(1)  # after READY, no data yet
RECEIVING = const(2)  # data arriving
COMMITTING = const(3)  # installing; the board resets next

# Transfer.mode
NONE = const(0)
V1 = const(1)  # START / DATA / COMMIT
V2 = const(2)  # FILE / D, then APPLY

# Files on the board (docs/protocol.md, "Files on the board")
TMP = "_ota_tmp"  # the v1 transfer; never survives a reset
STATE = "ota_state.json"
JOURNAL = "ota_journal.json"
# Set aside by a commit, freed by the boot guard when a full flash would stop
# it counting trial boots, removed when the trial ends.
RESERVE = "ota_reserve.bin"
RESERVE_BYTES = const(8192)
# Written first and renamed into place: one left over was never used.
TEMPS = (TMP, STATE + ".tmp", JOURNAL + ".tmp")

# A binary data frame (docs/protocol.md): 0xFF, payload length (u16 LE),
# offset (u32 LE), payload. No UTF-8 text holds the byte 0xFF.
FRAME = const(0xFF)
FRAME_HEAD = const(7)
# A deflated frame (HELLO `deflate`): 0xFE, payload length (u16 LE), offset
# (u32 LE), count of file bytes it expands to (u16 LE), raw deflate stream.
ZFRAME = const(0xFE)
ZFRAME_HEAD = const(9)

BIG = const(0x3FFFFFFF)  # what num() makes of a number too large to matter


def num(s, a, b):
    """Decimal digits s[a:b] as an int, -1 if not a number, 0x3FFFFFFF if huge.

    Reads characters by index, so parsing a data line allocates nothing.
    """
    if a >= b:
        return -1
    n = 0
    for i in range(a, b):
        c = ord(s[i]) - 48
        if c < 0 or c > 9:
            return -1
        n = n * 10 + c if n < 100000000 else BIG
    return n


def reason(e):
    """An exception as a reply field (no ':' or newline)."""
    r = str(e) or type(e).__name__
    return r.replace(":", " ").replace("\n", " ")[:48]


def remove(name):
    try:
        os.remove(name)
    except OSError:
        pass


def leftovers():
    """True when a reset left a journal or a temp file: recovery has work."""
    for name in (JOURNAL,) + TEMPS:
        try:
            os.stat(name)
            return True
        except OSError:
            pass
    return False


class Transfer:
    """The file being received: what START or FILE set up, what D/DATA add.

    OTAManager owns one (`m.t`). ota_setup starts a transfer (ota_setup.begin)
    and ends it; the data path in ota_manager adds to crc, have and seq;
    drop() forgets it, whoever ends it early.
    """

    def __init__(self):
        self.state = IDLE
        self.mode = NONE
        self.f = None  # the open file the data goes to
        self.name = None  # target file
        self.ver = None  # version the client announced (v1)
        self.size = 0
        self.exp = 0  # expected CRC
        self.crc = 0  # running CRC of what was received
        self.have = 0  # bytes received
        self.seq = 0  # v1: next expected seq
        self.b64 = False  # v2: payload encoding
        self.nak = False  # v2: N already sent for the current gap
        self.sync = 0  # v2: flush the staged file when `have` reaches this
        self.done = -1  # v2: size of the file just completed (re-ACKs)
        self.sha = None  # v2: SHA-256 of what arrived, when FILE carried one
        self.want = None  # v2: the SHA-256 FILE announced (hex)
        self.z = None  # v2 `bin`: ota_inflate's buffers (ota_inflate.prepare)

    def drop(self):
        """Forget the transfer (IDLE); v2 staged data stays on flash."""
        try:
            f = self.f
            self.f = None
            if f is not None:
                try:
                    f.close()
                except Exception:
                    pass
            if self.mode == V1:
                remove(TMP)
        finally:
            self.mode = NONE
            self.nak = False
            self.sha = None
            self.z = None
            self.state = IDLE
