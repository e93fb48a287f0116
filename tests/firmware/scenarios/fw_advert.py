"""The OTA state in the advertisement: its format, and when it changes.

Every scenario boots the real boot.py and main.py (boots.power_on) and talks
to the real peripheral; the advertisement is what the `bluetooth` stand-in
was last given. VECTOR/VECTOR_AD is the known answer the client library's
decoder is tested against too (tests/client/test_advert.py).
"""

import boots
import nus_central
from nus_central import Central

APP_V1 = 'VERSION = "1.0.0"\n\n\ndef handle(line):\n    return "PONG v1"\n'
APP_V2 = 'VERSION = "2.0.0"\n\n\ndef handle(line):\n    return "PONG v2"\n'
APP_CRASH = 'raise RuntimeError("version 2.0.0 is broken")\n'

VECTOR = {
    "app.py": {"size": 1234, "crc": "0a1b2c3d", "ver": "1.2.0"},
    "main.py": {"size": 99, "crc": "ffffffff", "ver": None},
    "lib.py": None,
}
VECTOR_AD = "091655fb020589152683"  # flags 5: on trial, staged data present


def ad_structures(payload):
    out = {}
    i = 0
    while i < len(payload):
        n = payload[i]
        out[payload[i + 1]] = payload[i + 2 : i + 1 + n]
        i += 1 + n
    return out


def advertised(p):
    """(proto, flags, bundle) of the OTA state p advertises now."""
    adv = p._ble.advertising
    assert len(adv) <= 31, adv
    data = ad_structures(adv)[0x16]
    assert data[:2] == b"\x55\xfb", data
    return data[2], data[3], int.from_bytes(data[4:8], "big")


def update(p, text, ver="2.0.0", apply=True):
    from ota_manager import OTAManager

    OTAManager.RESET_DELAY_MS = 0
    c = Central(p)
    nus_central.v2_send_file(c, "app.py", text.encode(), ver=ver)
    if apply:
        return nus_central.v2_apply(c, ["app.py"])
    c.disconnect()
    p.poll()
    return False


def _on_a_board(test):
    """Decorator: the test runs on the board's files, app.py at 1.0.0."""

    @boots.on_board_files
    def run():
        boots.write("app.py", APP_V1)
        return test()

    return run


def test_known_answer():
    import ota_advert

    got = ota_advert.service_data(ota_advert.bundle_hash(VECTOR), 5)
    assert got.hex() == VECTOR_AD, got.hex()
    assert ota_advert.bundle_hash({"lib.py": None}) == 0


@_on_a_board
def test_state_beside_the_name_and_the_bundle_of_hello():
    status, p = boots.power_on()
    assert status == "normal"
    adv = p._ble.advertising
    assert ad_structures(adv)[0x09] == p.name.encode()
    proto, flags, bundle = advertised(p)
    assert (proto, flags) == (2, 0)
    import ota_advert

    assert bundle == ota_advert.bundle_hash(nus_central.hello_and_leave(p)["files"])
    assert advertised(p) == (2, 0, bundle)  # a HELLO changes nothing
    return {"adv_bytes": len(adv)}


@_on_a_board
def test_changes_after_commit_confirmation_and_rollback():
    _, p = boots.power_on()
    first = advertised(p)[2]
    assert update(p, APP_V2)
    # The commit resets the board: the new boot advertises the new bundle
    # on trial; once it has run 30 s the next poll confirms it.
    status, p = boots.power_on()
    assert status == "trial"
    _, flags, second = advertised(p)
    assert flags == 1
    assert second != first
    boots.clock().advance(30000)
    p.poll()
    assert advertised(p) == (2, 0, second)
    # A version that crashes twice is rolled back at boot.
    assert update(p, APP_CRASH)
    for _ in range(3):
        status, p = boots.power_on()
        if status == "rolled-back":
            break
    assert status == "rolled-back", status
    assert advertised(p) == (2, 2, second)


@_on_a_board
def test_staged_data_shows_after_the_central_leaves():
    _, p = boots.power_on()
    bundle = advertised(p)[2]
    update(p, APP_V2, apply=False)
    assert advertised(p) == (2, 4, bundle)
    c = Central(p)
    assert c.ask("OTA:ABORT") == ["OTA:ABORTED"]
    c.disconnect()
    p.poll()
    assert advertised(p) == (2, 0, bundle)


def test_hello_is_signed_over_a_challenge_with_a_key():
    import binascii
    import json

    import ota_auth
    from fwtest import Board

    challenge = "00112233445566778899aabbccddeeff"
    b = Board(AUTH_KEY="k3y")
    line = b.one("OTA:HELLO:" + challenge)
    text = line[len("OTA:HELLO:") :]
    caps = json.loads(text)
    cut = text.rindex(',"sig":')
    unsigned = text[:cut] + "}"
    mac = ota_auth.hmac_sha256("k3y", challenge + "|HELLO|" + unsigned)
    assert caps["sig"] == binascii.hexlify(mac).decode()
    for other in ("OTA:HELLO", "OTA:HELLO:abc", "OTA:HELLO:" + "G" * 16):
        assert "sig" not in json.loads(b.one(other)[len("OTA:HELLO:") :])
    b = Board(AUTH_KEY=None)
    assert "sig" not in json.loads(b.one("OTA:HELLO:" + challenge)[10:])
