"""Security on the board: signed content, signed ABORT, idle connections.

A relay in the middle of the link (an ESPHome proxy, anyone on the unpaired
BLE link) sees and can change every byte. With a key, FILE's MAC covers a
SHA-256 of the content and the board hashes what arrives, so a swapped file
with the same size and a forged CRC-32 is refused and never staged; APPLY's
MAC covers the hashes of what it applies; ABORT of staged data needs the MAC.
"""

import binascii
import hashlib

import bluetooth
import nus_central
from crc_forge import forge_crc, swap_for
from fwtest import Board, blob, crc32_hex, exists, push, read, write
from nus_central import Central
from nus_peripheral import NUSPeripheral
from ota_manager import OTAManager


class Clock:
    """A clock the test moves by hand (NUSPeripheral.clock)."""

    def __init__(self):
        self.ms = 1000

    def __call__(self):
        return self.ms

    def advance(self, seconds):
        self.ms += int(seconds * 1000)


def _peripheral(app=None):
    OTAManager.RESET_DELAY_MS = 0
    p = NUSPeripheral(app=app)
    clock = Clock()
    p.clock = clock
    return p, clock


def test_silent_central_is_dropped_after_60_s():
    p, clock = _peripheral(app=lambda line: "PONG")
    ble = bluetooth.BLE()
    c = Central(p)
    p.poll()  # the connection's idle time starts
    clock.advance(59)
    assert c.ask("OTA:HELLO")[0].startswith("OTA:HELLO:")  # an OTA line: time resets
    clock.advance(59)
    p.poll()
    assert p.is_connected()
    assert c.ask("PING") == ["PONG"]  # application lines do not keep the link
    clock.advance(2)
    p.poll()
    assert not p.is_connected()
    assert ble.connected() == []
    assert ble.advertising is not None  # others can connect again
    assert p.idle_drops == 1
    c = Central(p, conn=2)  # the next central gets its own full minute
    p.poll()
    clock.advance(59)
    p.poll()
    assert p.is_connected()
    return {"idle_drops": p.idle_drops}


def test_longer_while_a_transfer_is_under_way_staged_data_kept():
    p, clock = _peripheral()
    c = Central(p)
    nus_central.hello(c)
    data = b"x = 1\n" * 100
    crc = nus_central.crc_hex(data)
    assert c.ask(f"OTA:FILE:app.py:{len(data)}:{crc}:2.0.0:b64:-:")[0].startswith(
        "OTA:READY:0:"
    )
    half = nus_central.b64(data[:150])
    assert c.ask(f"OTA:D:0:{half}") == ["OTA:A:150"]
    clock.advance(170)
    p.poll()
    assert p.is_connected()
    clock.advance(11)
    p.poll()
    assert not p.is_connected()
    p.poll()
    assert p.ota.state == OTAManager.IDLE
    c = Central(p, conn=2)
    assert nus_central.hello(c)["staged"]["app.py"]["have"] == 150


def test_idle_timeouts_from_config():
    import config

    config.IDLE_TIMEOUT_S = 5
    config.TRANSFER_IDLE_TIMEOUT_S = 20
    p, clock = _peripheral()
    assert (p.idle_ms, p.transfer_idle_ms) == (5000, 20000)
    Central(p)
    p.poll()
    clock.advance(6)
    p.poll()
    assert not p.is_connected()


# -- signed content (SHA-256) ---------------------------------------------------

KEY = "board-secret"


def _mac(message, key=KEY):
    import ota_auth

    return binascii.hexlify(ota_auth.hmac_sha256(key, message)).decode()


def _sha(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def _file(nonce, name, data, sha=None, key=KEY):
    """FILE signed the new way: <flags>:<sha256>:<auth>, the MAC covers the hash."""
    sha = sha or _sha(data)
    head = f"{name}:{len(data)}:{crc32_hex(data)}:1.1.0:b64:-:{sha}"
    mac = _mac(nonce + "|FILE|" + head.replace(":", "|"), key)
    return f"OTA:FILE:{head}:{mac}"


def _apply(nonce, names, hashes):
    files = ",".join(names)
    return f"OTA:APPLY:{files}:" + _mac(f"{nonce}|APPLY|{files}|" + ",".join(hashes))


def _plain_file(name, data, sha=""):
    """FILE without a key: no MAC; with `sha`, the optional hash field."""
    head = f"OTA:FILE:{name}:{len(data)}:{crc32_hex(data)}:1.1.0:b64:-:"
    return head + (sha + ":" if sha else "")


def _plain_ready(b, name, data, sha=""):
    reply = b.one(_plain_file(name, data, sha))
    assert reply.startswith("OTA:READY:0:"), reply


def _nonce(reply):
    assert reply.startswith("OTA:READY:"), reply
    return reply.split(":")[3]


def _staged(b):
    return b.hello()["staged"]


def _nothing_staged(b, *names):
    """No staged data left: neither the `.new` files of `names` nor in HELLO."""
    for name in names:
        assert not exists(name + ".new"), name
    assert _staged(b) == {}


def test_hello_offers_sha256():
    caps = Board(AUTH_KEY=KEY).hello()
    assert caps["hash"] == "sha256"
    assert caps["fw"] == "2.2.0"


def test_swapped_data_with_forged_crc_is_refused_and_not_staged():
    write("main.py", b"old")
    b = Board(AUTH_KEY=KEY)
    data = blob(2000, 5)
    evil = swap_for(b"import os\nos.remove('main.py')", len(data), crc32_hex(data))
    assert len(evil) == len(data)
    assert crc32_hex(evil) == crc32_hex(data)  # the CRC cannot tell them apart
    nonce = _nonce(b.one(_file(b.hello()["nonce"], "main.py", data)))
    replies = push(b, evil)  # the relay rewrote every D payload
    assert replies[-1] == "OTA:ERR:HASH:main.py", replies[-3:]
    _nothing_staged(b, "main.py")
    assert b.one(_apply(nonce, ["main.py"], [_sha(data)])) == "OTA:REJECT:AUTH"
    # nothing staged: the board signs "-" for main.py, so the MAC cannot match
    n = b.hello()["nonce"]
    assert b.one(_apply(n, ["main.py"], [_sha(data)])) == "OTA:REJECT:AUTH"
    assert b.one(_apply(b.hello()["nonce"], ["main.py"], ["-"])) == (
        "OTA:ERR:INCOMPLETE:main.py"
    )
    assert read("main.py") == b"old"
    # the genuine data still goes through afterwards
    nonce = _nonce(b.one(_file(b.hello()["nonce"], "main.py", data)))
    assert push(b, data)[-1] == "OTA:A:2000"
    assert b.send(_apply(nonce, ["main.py"], [_sha(data)])) == ["OTA:OK"]
    assert read("main.py") == data


def test_with_a_key_file_must_carry_the_hash():
    b = Board(AUTH_KEY=KEY)
    data = blob(300)
    nonce = b.hello()["nonce"]
    old_style = _plain_file("main.py", data)
    old_style += _mac(nonce + "|FILE|" + old_style[9:-1].replace(":", "|"))
    assert b.one(old_style) == "OTA:REJECT:AUTH"  # a MAC that covers no content
    # a hash the MAC does not cover, or a malformed one
    signed = _file(b.hello()["nonce"], "main.py", data)
    other = _sha(b"something else")
    assert b.one(signed.replace(_sha(data), other)) == "OTA:REJECT:AUTH"
    bad = _file(b.hello()["nonce"], "main.py", data, sha="ab" * 31)
    assert b.one(bad) == "OTA:REJECT:BAD_ARGS"
    assert _staged(b) == {}


def test_apply_mac_covers_the_hashes():
    b = Board(AUTH_KEY=KEY)
    one, two = blob(500, 1), blob(700, 2)
    nonce = _nonce(b.one(_file(b.hello()["nonce"], "main.py", one)))
    assert push(b, one)[-1] == "OTA:A:500"
    nonce = _nonce(b.one(_file(nonce, "app.py", two)))
    assert push(b, two)[-1] == "OTA:A:700"
    names = ["main.py", "app.py"]
    legacy = "OTA:APPLY:main.py,app.py:" + _mac(nonce + "|APPLY|main.py,app.py")
    assert b.one(legacy) == "OTA:REJECT:AUTH"
    swapped = _apply(b.hello()["nonce"], names, [_sha(two), _sha(one)])
    assert b.one(swapped) == "OTA:REJECT:AUTH"
    assert b.send(_apply(b.hello()["nonce"], names, [_sha(one), _sha(two)])) == [
        "OTA:OK"
    ]
    assert read("main.py") == one
    assert read("app.py") == two


def _sent_in_part_then_reset(data, stop):
    """A keyed board that got `stop` bytes of app.py `data`, then reset."""
    b = Board(AUTH_KEY=KEY)
    b.one(_file(b.hello()["nonce"], "app.py", data))
    push(b, data, stop=stop)
    b.reboot()
    return b


def test_resume_after_reboot_rehashes_what_was_kept():
    data = blob(9000, 3)
    b = _sent_in_part_then_reset(data, 5400)
    reply = b.one(_file(b.hello()["nonce"], "app.py", data))
    have = int(reply.split(":")[2])
    assert 0 < have <= 5400, reply
    nonce = _nonce(reply)
    assert push(b, data, start=have)[-1] == "OTA:A:9000"
    assert b.send(_apply(nonce, ["app.py"], [_sha(data)])) == ["OTA:OK"]
    assert read("app.py") == data


def test_resume_on_tampered_staged_bytes_is_refused_at_the_end():
    data = blob(3000, 4)
    b = _sent_in_part_then_reset(data, 1800)
    kept = read("app.py.new")
    # bytes a relay swapped before the reset, with the CRC of what was sent
    swapped = bytearray(kept)
    swapped[10] ^= 0xFF
    write("app.py.new", forge_crc(bytes(swapped), int(crc32_hex(kept), 16), 20))
    reply = b.one(_file(b.hello()["nonce"], "app.py", data))
    assert reply.startswith("OTA:READY:1800:"), reply
    replies = push(b, data, start=1800)
    assert replies[-1] == "OTA:ERR:HASH:app.py", replies[-2:]
    _nothing_staged(b, "app.py")


def test_keyless_sessions_keep_the_crc_and_may_send_a_hash():
    b = Board()
    data = blob(400)
    _plain_ready(b, "main.py", data)
    assert push(b, data)[-1] == "OTA:A:400"
    evil = swap_for(b"x = 1", 400, crc32_hex(data))
    _plain_ready(b, "app.py", data, _sha(data))
    assert push(b, evil)[-1] == "OTA:ERR:HASH:app.py"
    assert not exists("app.py.new")


# -- ABORT ----------------------------------------------------------------------


def test_abort_of_staged_data_needs_the_mac():
    b = Board(AUTH_KEY=KEY)
    data = blob(600)
    b.one(_file(b.hello()["nonce"], "main.py", data))
    assert push(b, data)[-1] == "OTA:A:600"
    b.one(_file(b.hello()["nonce"], "app.py", data))
    push(b, data, stop=360)  # a transfer under way
    assert b.one("OTA:ABORT") == "OTA:REJECT:AUTH"
    assert b.m.state == 0  # the transfer under way stopped, as on a disconnect
    staged = _staged(b)
    assert staged["main.py"]["have"] == 600
    assert staged["app.py"]["have"] == 360
    assert b.one("OTA:ABORT:" + "0" * 64) == "OTA:REJECT:AUTH"
    nonce = b.hello()["nonce"]
    assert b.one("OTA:ABORT:" + _mac(nonce + "|ABORT", "wrong")) == "OTA:REJECT:AUTH"
    assert b.one("OTA:ABORT:" + _mac(nonce + "|ABORT")) == "OTA:REJECT:AUTH"  # used
    assert exists("main.py.new")
    nonce = b.hello()["nonce"]
    assert b.one("OTA:ABORT:" + _mac(nonce + "|ABORT")) == "OTA:ABORTED"
    _nothing_staged(b, "main.py", "app.py")


def test_abort_without_a_key_is_unchanged():
    b = Board()
    data = blob(600)
    _plain_ready(b, "main.py", data)
    push(b, data)
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert not exists("main.py.new")
