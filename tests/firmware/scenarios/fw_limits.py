"""Exact limits: the longest data line and the first refused, numbers and
base64 with stray characters, a MAC one character off.

Lines reach OTAManager.handle() from the NUS peripheral (which already drops
lines over LINE_MAX) or straight from an application's own UART code, so the
manager enforces the limits itself.
"""

from fwtest import Board, b64, blob, file_line, hexs, read


def _ready(b, data, enc):
    r = b.one(file_line("main.py", data, enc=enc))
    assert r.startswith("OTA:READY:0:"), r


def test_longest_data_line_is_line_max_minus_the_newline():
    b = Board()
    limit = b.cls.LINE_MAX - 1  # LINE_MAX counts the "\n"
    data = blob(600, 7)
    _ready(b, data, "hex")
    prefix = "OTA:D:0:"
    # one byte of hex too many: LINE_MAX characters without the newline
    n = (limit + 1 - len(prefix)) // 2
    line = prefix + hexs(data[:n])
    assert len(line) == limit + 1
    assert b.one(line) == "OTA:ERR:BAD_DATA:0"
    assert b.one("OTA:D:0:" + hexs(data[:10])) == "OTA:A:10"
    prefix = "OTA:D:10:"
    n = (limit - len(prefix)) // 2
    line = prefix + hexs(data[10 : 10 + n])
    assert len(line) == limit  # exactly the longest line: taken
    assert b.one(line) == f"OTA:A:{10 + n}"
    b.reboot()  # closes the staged file
    assert read("main.py.new") == data[: 10 + n]


def test_base64_with_a_stray_character_is_refused():
    b = Board()
    data = blob(300, 9)
    _ready(b, data, "b64")
    good = b64(data[:120])
    # the decoder would skip the stray character and return the right bytes;
    # a line the client did not send is refused all the same
    for payload in (good + "!", good[:80] + "!" + good[80:]):
        assert b.one("OTA:D:0:" + payload) == "OTA:ERR:BAD_DATA:0", payload
    assert b.one("OTA:D:0:" + good) == "OTA:A:120"


def test_numbers_are_digits_only():
    b = Board()
    data = blob(100, 3)
    _ready(b, data, "b64")
    # characters below '0' ('+', '-', '.', '/', ' ') inside a number
    for off in ("1.5", "1-1", "0+0", "1/0", "2 0"):
        assert b.one(f"OTA:D:{off}:AAAA") == "OTA:ERR:BAD_SEQ", off
    b = Board()  # the size of a v1 START too
    assert b.one("OTA:START:main.py:1.0:00000000") == "OTA:REJECT:BAD_ARGS"


def _flip(hex_digit):
    return "0" if hex_digit != "0" else "1"


def test_a_mac_must_match_exactly():
    import ota_auth

    key, message = "board-secret", "0123456789abcdef|APPLY|main.py"
    mac = hexs(ota_auth.hmac_sha256(key, message))
    assert ota_auth.check(key, message, mac)
    # longer, shorter, or one hex digit wrong anywhere: refused
    refused = [mac + "0", mac + mac, mac[:-1], ""]
    refused += [mac[:i] + _flip(mac[i]) + mac[i + 1 :] for i in range(len(mac))]
    for bad in refused:
        assert not ota_auth.check(key, message, bad), bad
