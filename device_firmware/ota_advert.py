"""The OTA state a board advertises, so a client knows it without connecting.

One AD structure, service data under the 16-bit UUID 0xFB55 (no Home
Assistant integration matches it), 10 bytes on the air:

    09 16 55 FB <proto> <flags> <bundle: 4 bytes, big-endian>

- proto: the OTA protocol version the firmware speaks (2).
- flags: 1 on trial, 2 rolled back (HELLO has a `rollback` record),
  4 staged data present.
- bundle: CRC-32 of one line per installed file, in name order,
  "<name>:<size>:<crc 8 hex>:<version or empty>\\n" - the files, sizes, CRCs
  and versions HELLO reports. It changes when any file changes.

See docs/protocol.md, "What the board advertises". The NUS peripheral calls
state() when it builds its advertisement: at boot, and when the state may
have changed (a confirmation, a central gone). state() lets this module and
ota_hello go again, so they cost no RAM in between.
"""

import binascii
import sys

import ota_state

UUID16 = 0xFB55
PROTO = 2
ON_TRIAL = 1
ROLLED_BACK = 2
STAGED = 4


def bundle_hash(files):
    """The 32-bit bundle hash of {name: ota_hello.installed(...) or None}."""
    h = 0
    for name in sorted(files):
        f = files[name]
        if f is None:
            continue
        ver = f["ver"]
        line = "%s:%d:%s:%s\n" % (name, f["size"], f["crc"], "" if ver is None else ver)
        h = binascii.crc32(line.encode(), h)
    return h & 0xFFFFFFFF


def state(ota, adv=None):
    """The AD structure of the board's OTA state; OTAManager `ota`.

    The bundle hash reads every allowed file, so it is taken once per boot
    and then kept from `adv`, the advertising payload built before (files
    change only through a commit or a rollback, and both reset the board).
    Never raises: without a readable state the board advertises no OTA
    state (b"").
    """
    hello_loaded = "ota_hello" in sys.modules  # by ota_setup: it stays
    bundle = None
    if adv and adv[4:7] == b"\x16\x55\xfb":
        bundle = int.from_bytes(adv[9:13], "big")
    try:
        st = ota_state.load()
        if bundle is None:
            import ota_hello

            recs = st["files"]
            files = getattr(ota, "ALLOWED_FILES", ())
            bundle = bundle_hash(
                {n: ota_hello.installed(n, recs.get(n)) for n in files}
            )
        return service_data(bundle, flags(st))
    except Exception as e:
        print("ota_advert:", repr(e))
        return b""
    finally:
        sys.modules.pop("ota_advert", None)
        if not hello_loaded:
            sys.modules.pop("ota_hello", None)


def flags(st):
    """The flags byte for the state st (ota_state.load())."""
    f = 0
    if st["trial"] is not None:
        f |= ON_TRIAL
    if st["rollback"] is not None:
        f |= ROLLED_BACK
    if st["staged"]:
        f |= STAGED
    return f


def service_data(bundle, fl):
    """The AD structure (10 bytes) for a bundle hash and a flags byte."""
    return bytes(
        (
            9,
            0x16,
            UUID16 & 0xFF,
            UUID16 >> 8,
            PROTO,
            fl & 0xFF,
            (bundle >> 24) & 0xFF,
            (bundle >> 16) & 0xFF,
            (bundle >> 8) & 0xFF,
            bundle & 0xFF,
        )
    )
