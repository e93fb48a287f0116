"""Helpers shared by firmware scenarios (MicroPython-compatible)."""

import os
import sys


def use_builtin_binascii():
    """Give the firmware the C `binascii` an ESP32 has.

    The WebAssembly port ships micropython-lib's pure-Python binascii, which
    wants bytes where the C module (`ubinascii` here) also takes str, and
    allocates far more. No effect on CPython."""
    try:
        import ubinascii
    except ImportError:
        return False
    sys.modules["binascii"] = ubinascii
    return True


use_builtin_binascii()

import binascii  # noqa: E402


def crc32_hex(data):
    return "%08x" % (binascii.crc32(data) & 0xFFFFFFFF)


def sha256_hex(data):
    import hashlib

    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def read(name):
    with open(name, "rb") as f:
        return f.read()


def write(name, data):
    with open(name, "wb") as f:
        f.write(data)


def exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def listdir():
    return sorted(os.listdir("."))


class Recorder:
    """Records every line it is called with: as the OTA manager's reply_fn,
    the lines the firmware sends; as the NUS peripheral's application
    handler, the lines the application gets (answering `answer`)."""

    def __init__(self, answer=None):
        self.lines = []
        self.answer = answer

    def __call__(self, line):
        self.lines.append(line)
        return self.answer

    def take(self):
        lines = self.lines
        self.lines = []
        return lines

    def last(self):
        return self.lines[-1] if self.lines else None


def blob(n, seed=1):
    """n deterministic pseudo-random bytes (a linear congruential generator)."""
    out = bytearray(n)
    x = seed & 0x7FFFFFFF
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = x >> 16 & 0xFF
    return bytes(out)


class Chunks:
    """A pseudo-random file of `size` bytes, read `chunk` bytes at a time.

    For heap figures: MicroPython's collector is conservative, so a large
    bytes object of random data (blob) holds words that look like heap
    addresses and keeps garbage alive by chance, which moves the figures
    from one heap layout to the next. Between two reads this object holds
    two small ints, nothing on the heap."""

    def __init__(self, size, chunk, seed=1):
        self.size = size
        self.chunk = chunk
        self.seed = seed & 0x3FFFFFFF
        self.rewind()

    def rewind(self):
        self.x = self.seed
        self.off = 0

    def read(self):
        """The next chunk (b"" at the end)."""
        out = bytearray(min(self.chunk, self.size - self.off))
        x = self.x
        for i in range(len(out)):
            x = (x * 1103515245 + 12345) & 0x3FFFFFFF
            out[i] = x >> 16 & 0xFF
        self.x = x
        self.off += len(out)
        return bytes(out)

    def crc_hex(self):
        """CRC-32 of the whole file; leaves the file rewound."""
        self.rewind()
        crc = 0
        while self.off < self.size:
            crc = binascii.crc32(self.read(), crc)
        self.rewind()
        return "%08x" % (crc & 0xFFFFFFFF)


def hexs(data):
    return binascii.hexlify(data).decode()


def b64(data):
    return binascii.b2a_base64(data).decode().strip()


class PowerCut(BaseException):
    """The power went: not an Exception, so firmware handlers cannot catch it."""


def expect_reset(func, *args):
    """Call func(*args) and return True when it ended in machine.reset()."""
    import machine

    try:
        func(*args)
    except machine.Reset:
        return True
    return False


class Board:
    """One OTAManager on the current directory, with its replies recorded."""

    def __init__(self, **attrs):
        import ota_manager

        cls = ota_manager.OTAManager
        cls.RESET_DELAY_MS = 0
        for k, v in attrs.items():
            setattr(cls, k, v)
        self.cls = cls
        self.replies = Recorder()
        self.m = cls(self.replies)
        self.reset = False
        self.last = []

    def send(self, line):
        """Send one line; return the replies it produced (reset noted)."""
        import machine

        try:
            self.m.handle(line)
        except machine.Reset:
            self.reset = True
        self.last = self.replies.take()
        return self.last

    def one(self, line):
        r = self.send(line)
        assert len(r) == 1, (line, r)
        return r[0]

    def reboot(self):
        """A new manager on the same files, as after a reset."""
        m = self.m
        if m.t.f is not None:
            m.t.f.close()  # what was written reached flash; see fw_v2 for a lost tail
            m.t.f = None
        self.m = self.cls(self.replies)
        self.reset = False

    def hello(self):
        import json

        line = self.one("OTA:HELLO")
        assert line.startswith("OTA:HELLO:"), line
        return json.loads(line[10:])


class FakeOs:
    """Stands in for the `os` module inside one firmware module.

    Forwards everything to the real `os`; `statvfs` reports `free` bytes
    (4 KB blocks) when `free` is set, and its calls are counted."""

    def __init__(self, free=None):
        self.free = free
        self.statvfs_calls = 0

    def statvfs(self, path):
        self.statvfs_calls += 1
        if self.free is None:
            return os.statvfs(path)
        blocks = self.free // 4096
        return (4096, 4096, 1000000, blocks, blocks, 0, 0, 0, 0, 255)

    def __getattr__(self, name):
        return getattr(os, name)


# -- v2 client steps -------------------------------------------------------------

FIRMWARE = (
    "ota_core",
    "ota_manager",
    "ota_setup",
    "ota_state",
    "ota_commit",
    "ota_hello",
    "ota_auth",
    "config",
)


def power_on():
    """Forget every firmware module, as a reset clears RAM; files stay."""
    import sys

    for name in FIRMWARE:
        if name in sys.modules:
            del sys.modules[name]


def encode(data, enc):
    return b64(data) if enc == "b64" else hexs(data)


def file_line(name, data, ver="1.1.0", enc="b64", flags="-", auth=""):  # noqa: PLR0917
    return f"OTA:FILE:{name}:{len(data)}:{crc32_hex(data)}:{ver}:{enc}:{flags}:{auth}"


def d_line(data, off, chunk=180, enc="b64"):
    return f"OTA:D:{off}:{encode(data[off : off + chunk], enc)}"


def push(board, data, start=0, chunk=180, enc="b64", win=8, stop=None):  # noqa: PLR0917
    """Send data from `start` in windows of `win` D lines; return all replies.

    Stops early (without sending more) once `stop` bytes have been sent.
    """
    replies = []
    off = start
    end = len(data) if stop is None else stop
    while off < end:
        for _ in range(win):
            if off >= end:
                break
            replies.extend(board.send(d_line(data, off, chunk, enc)))
            off += chunk
    return replies


def stage(board, name, data, ver="1.1.0", enc="b64", chunk=180):  # noqa: PLR0917
    """One complete v2 transfer; checks READY and the final A."""
    r = board.one(file_line(name, data, ver, enc))
    assert r.startswith("OTA:READY:0:"), r
    replies = push(board, data, 0, chunk, enc)
    if data:
        assert replies[-1] == f"OTA:A:{len(data)}", replies[-3:]


def install_v1(board, name, data, ver="1.0.1", chunk=100):
    """A whole v1 update: START, DATA..., COMMIT, reset; then a new board."""
    start = f"OTA:START:{name}:{len(data)}:{crc32_hex(data)}:{ver}:{chunk}"
    assert board.one(start) == "OTA:READY"
    for i in range(0, len(data), chunk):
        seq = i // chunk
        assert (
            board.one(f"OTA:DATA:{seq}:{hexs(data[i : i + chunk])}") == f"OTA:ACK:{seq}"
        )
    assert board.send("OTA:COMMIT") == ["OTA:OK"]
    assert board.reset


def clear_dir():
    for name in os.listdir("."):
        os.remove(name)


def state():
    import json

    return json.loads(read("ota_state.json"))


# -- power cuts --------------------------------------------------------------------


class Cut:
    """Counts filesystem steps; at step `at` (-1: never) the power goes, or,
    with `oserror`, that one step fails with OSError(EIO) and the rest work."""

    def __init__(self, at=-1, oserror=False):
        self.at = at
        self.oserror = oserror
        self.n = 0
        self.fired = False
        self.log = []

    def step(self, what):
        if self.fired:
            return False
        self.n += 1
        if self.n - 1 == self.at:
            if self.oserror:
                raise OSError(5)
            self.fired = True
            raise PowerCut(what)
        self.log.append(what)
        return True


class CutFile:
    def __init__(self, cut, f, name):
        self.cut = cut
        self.f = f
        self.name = name

    def write(self, data):
        self.cut.step("write " + self.name)
        return self.f.write(data)

    def read(self, *args):
        return self.f.read(*args)

    def readinto(self, buf):
        return self.f.readinto(buf)

    def close(self):
        if self.cut.step("close " + self.name) is False:
            self.f.close()  # what reached flash before the cut
            return
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CutOs:
    """The `os` of one firmware module, with its steps counted by `cut`."""

    def __init__(self, cut):
        self.cut = cut

    def _step(self, what):
        self.cut.step(what)

    def rename(self, a, b):
        self._step(f"rename {a} {b}")
        os.rename(a, b)

    def remove(self, a):
        self._step("remove " + a)
        os.remove(a)

    def stat(self, a):
        self._step("stat " + a)
        return os.stat(a)

    def __getattr__(self, name):
        return getattr(os, name)


def cut_power(cut, *modules):
    """Route the filesystem calls of `modules` through `cut`.

    ota_core's file helpers (remove, exists) serve every OTA module, so its
    calls are always cut too."""
    import builtins

    import ota_core

    modules = modules + (ota_core,)  # noqa: RUF005 - MicroPython has no (*a, b)

    def cut_open(name, mode="r"):
        cut.step(f"open {name} {mode}")
        return CutFile(cut, builtins.open(name, mode), name)

    for mod in modules:
        mod.os = CutOs(cut)
        mod.open = cut_open


# -- fuzzing ---------------------------------------------------------------------


class Rng:
    """A small seeded generator that behaves the same on both runtimes."""

    def __init__(self, seed):
        self.x = (seed & 0x7FFFFFFF) or 1

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n

    def choice(self, seq):
        return seq[self.below(len(seq))]


OURS = ("_ota_tmp", "ota_state.json", "ota_reserve.bin")


def check_board(board, allowed):
    """Invariants that hold after any line: replies, state and files."""
    for line in board.last:
        assert isinstance(line, str), line
        assert line.startswith("OTA:"), line
        assert "\n" not in line, line
    m = board.m
    assert m.state in (m.IDLE, m.ARMED, m.RECEIVING, m.COMMITTING), m.state
    for name in listdir():
        base = name
        for suffix in (".new", ".bak"):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
        assert base in allowed or name in OURS, name
    assert exists("_ota_tmp") == (m.t.mode == 1), (listdir(), m.t.mode)


class Fuzzer:
    """Makes lines for OTAManager.handle: plausible commands with odd
    fields, mutations of valid lines, and raw garbage."""

    NAMES = (
        "main.py",
        "app.py",
        "../main.py",
        "boot.py",
        "",
        "main.py/x",
        "ota_state.json",
        "_ota_tmp",
        "main.py.new",
    )
    SIZES = ("0", "1", "100", "-1", "x", "99999999999", "", "4294967296", "007", " 5")
    CRCS = ("zzzzzzzz", "", "00000000", "ffffffff", "1234", "0x123456")
    VERS = (
        "",
        "1.0.0",
        "0.1",
        "9.9.9",
        "a.b",
        "1..2",
        "1.0.0-rc",
        "99999999999999999999",
    )
    ENCS = ("hex", "b64", "", "B64", "base64")
    FLAGS = ("-", "f", "", "x", "ff", "-f")
    CHARS = ":\n\r\x00\xff=+/ OTA9aZ\u00e9\u4e2d"

    def __init__(self, seed, allowed, token=None, key=None):
        self.token = token
        self.key = key
        self.nonce = ""
        self.r = Rng(seed)
        self.allowed = sorted(allowed)
        self.files = [blob(n, seed + n) for n in (0, 1, 120, 700)]
        self.cur = self.files[2]
        self.enc = "b64"
        self.seq = 0
        self.sha = {}  # with a key: the SHA-256 each file was last announced with

    def _pick(self, seq):
        return self.r.choice(seq)

    def observe(self, replies):
        """Keep the latest nonce, as a client does."""
        for line in replies:
            if line.startswith("OTA:READY:"):
                self.nonce = line[line.rfind(":") + 1 :]
            elif line.startswith("OTA:HELLO:"):
                i = line.find('"nonce":"')
                self.nonce = line[i + 9 : i + 25]

    def _auth(self, message):
        if self.r.below(10) == 0:
            return "x"
        if self.key is not None:
            import ota_auth

            return hexs(ota_auth.hmac_sha256(self.key, self.nonce + message))
        return self.token or ""

    def valid(self):
        r = self.r
        k = r.below(12)
        if k == 0:
            self.cur = self._pick(self.files)
            self.enc = self._pick(("hex", "b64"))
            name = self._pick(self.allowed)
            ver = self._pick(self.VERS)
            flags = self._pick(("-", "f"))
            fields = (
                f"{name}|{len(self.cur)}|{crc32_hex(self.cur)}|{ver}|{self.enc}|{flags}"
            )
            if self.key is None:
                auth = self._auth("|FILE|" + fields)
            else:  # the MAC covers the content's SHA-256, which FILE carries
                sha = sha256_hex(self.cur)
                self.sha[name] = sha
                auth = sha + ":" + self._auth("|FILE|" + fields + "|" + sha)
            return file_line(name, self.cur, ver, self.enc, flags, auth)
        if k <= 4:
            size = len(self.cur)
            off = r.below(size // 60 + 2) * 60
            if off >= size:
                off = max(0, size - 60)
            return d_line(self.cur, off, 60, self.enc)
        if k == 5:
            self.cur = self._pick(self.files)
            self.seq = 0
            name = self._pick(self.allowed)
            ver = self._pick(self.VERS)
            line = f"OTA:START:{name}:{len(self.cur)}:{crc32_hex(self.cur)}:{ver}:60"
            return line + ":" + self.token if self.token else line
        if k == 6:
            seq = self.seq if r.below(4) else r.below(20)
            self.seq = seq + 1
            return f"OTA:DATA:{seq}:{hexs(self.cur[seq * 60 : seq * 60 + 60])}"
        if k == 7:
            picked = self.allowed[: 1 + r.below(len(self.allowed))]
            names = ",".join(picked)
            message = "|APPLY|" + names
            if self.key is not None:
                message += "|" + ",".join(self.sha.get(n, "-") for n in picked)
            return f"OTA:APPLY:{names}:{self._auth(message)}"
        return self._pick(
            ("OTA:COMMIT", "OTA:ABORT", "OTA:HELLO", "OTA:APPLY:main.py:", "OTA:FILE")
        )

    def _fields(self, *choices):
        """One pick from each of `choices`, joined with ':'."""
        return ":".join(self._pick(c) for c in choices)

    def odd(self):
        p = self._pick
        k = self.r.below(6)
        if k == 0:
            fields = (self.NAMES, self.SIZES, self.CRCS, self.VERS, self.SIZES)
            return "OTA:START:" + self._fields(*fields, ("", "tok"))
        if k == 1:
            fields = (self.NAMES, self.SIZES, self.CRCS, self.VERS, self.ENCS)
            return "OTA:FILE:" + self._fields(*fields, self.FLAGS, ("", "x" * 64))
        if k == 2:
            payloads = ("", "AAAA", "zz", "====", "QUJD\u00e9", b64(blob(400)))
            return "OTA:D:" + self._fields(self.SIZES, payloads)
        if k == 3:
            payloads = ("", "00", "zz", "0", hexs(blob(300)))
            return "OTA:DATA:" + self._fields(self.SIZES, payloads)
        if k == 4:
            return "OTA:APPLY:{}:{}".format(
                ",".join(p(self.NAMES) for _ in range(1 + self.r.below(3))),
                p(("", "x")),
            )
        return "OTA:" + "".join(p(self.CHARS) for _ in range(self.r.below(30)))

    def mutate(self, line):
        r = self.r
        for _ in range(1 + r.below(3)):
            i = r.below(len(line) + 1)
            k = r.below(4)
            if k == 0:
                line = line[:i] + line[i + 1 :]
            elif k == 1:
                line = line[:i] + self._pick(self.CHARS) + line[i:]
            elif k == 2:
                line = line[:i]
            else:
                line = line[:i] + line[i:] + line[i:]
        return line

    def garbage(self):
        n = self.r.below(80)
        return bytes(self.r.below(256) for _ in range(n))

    def line(self):
        k = self.r.below(10)
        if k < 5:
            return self.valid()
        if k < 7:
            return self.odd()
        if k < 9:
            return self.mutate(self.valid())
        return self.garbage()
