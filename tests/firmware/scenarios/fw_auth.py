"""Authentication: HMAC-SHA256 with single-use nonces, the v1 token, refusals."""

import binascii
import hashlib

from fwtest import Board, blob, crc32_hex, file_line, listdir, push, read, write

KEY = "board-secret"


def _mac(key, message):
    import ota_auth

    return binascii.hexlify(ota_auth.hmac_sha256(key, message)).decode()


def _sha(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def _signed_file(nonce, name, data, ver="1.1.0", enc="b64", flags="-", key=KEY):  # noqa: PLR0917
    """FILE with the content's SHA-256, which the MAC covers (a board with a key)."""
    sha = _sha(data)
    fields = f"{name}|{len(data)}|{crc32_hex(data)}|{ver}|{enc}|{flags}|{sha}"
    mac = _mac(key, nonce + "|FILE|" + fields)
    return file_line(name, data, ver, enc, flags, sha + ":" + mac)


def _signed_apply(nonce, names, *contents):
    """APPLY signing the SHA-256 of each file's content ("-" for None)."""
    hashes = ",".join("-" if c is None else _sha(c) for c in contents)
    return "OTA:APPLY:{}:{}".format(
        names, _mac(KEY, nonce + "|APPLY|" + names + "|" + hashes)
    )


def _ready_nonce(reply):
    assert reply.startswith("OTA:READY:"), reply
    return reply.split(":")[3]


def test_hmac_sha256_rfc4231_vectors():
    import ota_auth

    cases = (
        (
            b"\x0b" * 20,
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            b"\xaa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    )
    for key, msg, want in cases:
        assert binascii.hexlify(ota_auth.hmac_sha256(key, msg)).decode() == want
    assert ota_auth.check("Jefe", "what do ya want for nothing?", cases[1][2])
    assert not ota_auth.check("Jefe", "what do ya want for nothing!", cases[1][2])
    assert not ota_auth.check("Jefe", "what do ya want for nothing?", cases[1][2][:-1])
    assert not ota_auth.check("Jefe", "what do ya want for nothing?", "")


def test_nonces_are_fresh():
    import ota_auth

    seen = set()
    for _ in range(50):
        n = ota_auth.nonce()
        assert len(n) == 16
        assert not n.strip("0123456789abcdef")
        seen.add(n)
    assert len(seen) == 50


def test_hmac_update_end_to_end():
    write("main.py", b"old")
    b = Board(AUTH_KEY=KEY)
    h = b.hello()
    assert h["auth"] == "hmac"
    data = blob(1000, 4)
    nonce = _ready_nonce(b.one(_signed_file(h["nonce"], "main.py", data)))
    assert nonce != h["nonce"]
    assert push(b, data)[-1] == "OTA:A:1000"
    assert b.send(_signed_apply(nonce, "main.py", data)) == ["OTA:OK"]
    assert b.reset
    assert read("main.py") == data


def test_wrong_mac_or_key_refused_and_nonce_consumed():
    b = Board(AUTH_KEY=KEY)
    data = blob(100)
    n1 = b.hello()["nonce"]
    assert b.one(_signed_file(n1, "main.py", data, key="other")) == "OTA:REJECT:AUTH"
    # the nonce is gone even though the line was refused
    assert b.one(_signed_file(n1, "main.py", data)) == "OTA:REJECT:AUTH"
    n2 = b.hello()["nonce"]
    signed = _signed_file(n2, "main.py", data)
    tampered = signed.replace(":1.1.0:", ":9.9.9:")
    assert b.one(tampered) == "OTA:REJECT:AUTH"
    n3 = b.hello()["nonce"]
    signed = _signed_file(n3, "main.py", data)
    cut = signed.rindex(":") + 1
    assert (
        b.one(signed[:cut] + signed[cut:].upper()) == "OTA:REJECT:AUTH"
    )  # lower-case hex only
    assert b.one(file_line("main.py", data)) == "OTA:REJECT:AUTH"
    assert listdir() == []


def test_no_hello_no_nonce():
    b = Board(AUTH_KEY=KEY)
    data = blob(100)
    assert b.one(_signed_file("", "main.py", data)) == "OTA:REJECT:AUTH"
    assert b.one(_signed_file("None", "main.py", data)) == "OTA:REJECT:AUTH"
    n = b.hello()["nonce"]
    b.m.abort()  # a new connection must ask for a new nonce
    assert b.one(_signed_file(n, "main.py", data)) == "OTA:REJECT:AUTH"


def test_replayed_file_refused():
    b = Board(AUTH_KEY=KEY)
    data = blob(500)
    line = _signed_file(b.hello()["nonce"], "main.py", data)
    assert b.one(line).startswith("OTA:READY:0:")
    b.m.abort()
    assert b.one(line) == "OTA:REJECT:AUTH"
    b.hello()
    assert b.one(line) == "OTA:REJECT:AUTH"


def test_replayed_apply_refused():
    b = Board(AUTH_KEY=KEY)
    data = blob(300)
    nonce = _ready_nonce(b.one(_signed_file(b.hello()["nonce"], "main.py", data)))
    push(b, data, stop=180)
    b.m.abort()
    n = b.hello()["nonce"]
    apply_line = _signed_apply(n, "main.py", data)
    assert b.one(apply_line) == "OTA:ERR:INCOMPLETE:main.py"
    nonce = _ready_nonce(b.one(_signed_file(b.hello()["nonce"], "main.py", data)))
    assert push(b, data, start=180)[-1] == "OTA:A:300"
    assert b.one(apply_line) == "OTA:REJECT:AUTH"  # the recorded APPLY
    # that refused line used up the nonce READY gave
    assert b.one(_signed_apply(nonce, "main.py", data)) == "OTA:REJECT:AUTH"
    nonce = b.hello()["nonce"]
    both = _signed_apply(nonce, "main.py,app.py", data, None)
    assert b.one(both) == "OTA:ERR:INCOMPLETE:app.py"
    assert b.one(_signed_apply(nonce, "main.py", data)) == "OTA:REJECT:AUTH"
    assert b.send(_signed_apply(b.hello()["nonce"], "main.py", data)) == ["OTA:OK"]
    assert read("main.py") == data


def test_auth_checked_before_forbidden():
    b = Board(AUTH_KEY=KEY)
    data = blob(10)
    assert b.one(file_line("boot.py", data, auth="0" * 64)) == "OTA:REJECT:AUTH"
    assert (
        b.one(_signed_file(b.hello()["nonce"], "boot.py", data))
        == "OTA:REJECT:FORBIDDEN"
    )
    assert b.one("OTA:APPLY:boot.py:" + "0" * 64) == "OTA:REJECT:AUTH"
    boot = _signed_apply(b.hello()["nonce"], "boot.py", None)
    assert b.one(boot) == "OTA:REJECT:FORBIDDEN"


def test_key_set_refuses_v1_start():
    b = Board(AUTH_KEY=KEY)
    data = blob(10)
    start = f"OTA:START:main.py:10:{crc32_hex(data)}:1.0.1:64"
    assert b.one(start) == "OTA:REJECT:AUTH"
    assert b.one(start + ":" + KEY) == "OTA:REJECT:AUTH"
    assert listdir() == []


def test_key_and_token_v1_uses_token_v2_uses_hmac():
    b = Board(AUTH_KEY=KEY, AUTH_TOKEN="tok")
    data = blob(10)
    start = f"OTA:START:main.py:10:{crc32_hex(data)}:1.0.1:64"
    assert b.one(start + ":tok") == "OTA:READY"
    assert b.one("OTA:ABORT") == "OTA:ABORTED"
    assert b.hello()["auth"] == "hmac"
    assert b.one(file_line("main.py", data, auth="tok")) == "OTA:REJECT:AUTH"


def test_token_mode_v2():
    b = Board(AUTH_TOKEN="tok")
    assert b.hello()["auth"] == "token"
    data = blob(400)
    assert b.one(file_line("main.py", data, auth="nope")) == "OTA:REJECT:AUTH"
    assert b.one(file_line("main.py", data)) == "OTA:REJECT:AUTH"
    assert b.one(file_line("main.py", data, auth="tok")).startswith("OTA:READY:0:")
    assert push(b, data)[-1] == "OTA:A:400"
    assert b.one("OTA:APPLY:main.py:nope") == "OTA:REJECT:AUTH"
    assert b.send("OTA:APPLY:main.py:tok") == ["OTA:OK"]
    assert read("main.py") == data


def test_no_auth_ignores_the_field():
    b = Board()
    assert b.hello()["auth"] == "none"
    data = blob(10)
    assert b.one(file_line("main.py", data, auth="anything")).startswith("OTA:READY:0:")
