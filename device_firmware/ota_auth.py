"""Nonces and HMAC-SHA256 for v2 FILE/APPLY (MicroPython has no hmac module).

The board hands out a fresh nonce with every HELLO and READY; the client
signs "<nonce>|FILE|..." or "<nonce>|APPLY|..." with the shared key. A nonce
is used once, so a recorded line never verifies twice.
"""

import binascii
import hashlib
import os


def nonce():
    """16 hex digits from the hardware RNG (os.urandom) when there is one."""
    try:
        return binascii.hexlify(os.urandom(8)).decode()
    except Exception:
        import random

        return "%08x%08x" % (random.getrandbits(32), random.getrandbits(32))


def hmac_sha256(key, msg):
    """RFC 2104 HMAC over SHA-256; key and msg are str or bytes."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(msg, str):
        msg = msg.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def check(key, msg, mac_hex):
    """True when mac_hex is HMAC-SHA256(key, msg) in hex; compares in constant time."""
    want = binascii.hexlify(hmac_sha256(key, msg)).decode()
    if len(mac_hex) != len(want):
        return False
    diff = 0
    for i in range(len(want)):
        diff |= ord(want[i]) ^ ord(mac_hex[i])
    return diff == 0
