"""What SHA-256 costs the board: heap (as .mpy) and CPU per KB.

Read as in fw_memory.py and fw_perf_memory.py: the tests are generators and
at each `yield` the harness collects garbage, so gc.mem_alloc() right after
it is the live heap. No firmware module is imported at the top, so the
resident figure counts them all. The file is streamed from fwtest.Chunks
(no 64 KB of random words to confuse the conservative collector).

- resident: live heap after importing ota_manager and creating one
  OTAManager, minus the live heap before (hashing loads nothing until a
  FILE carries a SHA-256).
- stream peak growth, whole stack, with a key: as fw_perf_memory.py (a
  central writes a window of D lines, the peripheral's poll() takes them one
  at a time), but the FILE is signed and carries the SHA-256, so the board
  hashes every chunk. The hash object lives in `live`.
- retained after the session: live heap once the file is staged and the
  central disconnected, minus the live heap after READY.
- CPU: microseconds per KB on this port for SHA-256 of arriving data and for
  the re-hash of kept bytes when a transfer resumes after a reset, next to
  the CRC-32 the board computed before. The WebAssembly port's clock ticks
  in milliseconds, so each figure times 1 MB of work.
"""

import gc

import nus_central
from fwtest import Chunks, hexs
from nus_central import Central, b64

KEY = "board-secret"
RESIDENT_GOAL = 6 * 1024
PEAK_GOAL = 4 * 1024
MEASURED = hasattr(gc, "mem_alloc")


def _heap():
    return gc.mem_alloc() if MEASURED else 0


def _preload():
    import binascii  # noqa: F401 - C modules on a board
    import hashlib  # noqa: F401
    import json  # noqa: F401
    import os  # noqa: F401
    import time  # noqa: F401

    import bluetooth
    import machine  # noqa: F401
    import micropython  # noqa: F401

    bluetooth.BLE()


def _sha_hex(data):
    import hashlib

    data.rewind()
    h = hashlib.sha256()
    while data.off < data.size:
        h.update(data.read())
    data.rewind()
    return hexs(h.digest())


def _signed_file(nonce, name, data, sha):
    import ota_auth

    head = f"{name}:{data.size}:{data.crc_hex()}:9.0.0:b64:-:{sha}"
    message = nonce + "|FILE|" + head.replace(":", "|")
    return f"OTA:FILE:{head}:" + hexs(ota_auth.hmac_sha256(KEY, message))


def _forget(central):
    central.notes = []
    central.lines = []


def test_mpy_resident_with_a_key():
    _preload()
    yield
    before = _heap()
    import ota_manager

    ota_manager.OTAManager.AUTH_KEY = KEY
    m = ota_manager.OTAManager(print)
    yield
    resident = _heap() - before
    assert m.state == m.IDLE
    if not MEASURED:
        return None
    assert resident <= RESIDENT_GOAL, resident
    return {"resident_bytes": resident, "goal": RESIDENT_GOAL}


def test_mpy_signed_stream_peak_growth():
    _preload()
    import ota_manager

    ota_manager.OTAManager.AUTH_KEY = KEY
    import main

    p = main.start()
    c = Central(p, mtu=247)
    info = nus_central.hello(c)
    assert info["hash"] == "sha256"
    win = info["win"]
    size = 64 * 1024
    chunk = 171  # b64 in a 244-byte write, as the client sends at MTU 247
    data = Chunks(size, chunk, 13)
    got = c.ask(_signed_file(info["nonce"], "app.py", data, _sha_hex(data)))
    assert len(got) == 1, got
    assert got[0].startswith("OTA:READY:0:"), got
    _forget(c)
    yield
    base = _heap()
    peak = 0
    worst_live = 0
    worst_call = 0
    off = 0
    last = ""
    while off < size:
        sent = off
        for _ in range(win):
            if sent >= size:
                break
            c.write(f"OTA:D:{sent}:{b64(data.read())}\n")
            sent += chunk
        while True:
            yield
            live = _heap() - base
            a = _heap()
            took = p.poll()
            call = _heap() - a
            if not took:
                break
            peak = max(peak, live + call)
            worst_live = max(worst_live, live)
            worst_call = max(worst_call, call)
            if c.lines:
                last = c.lines[-1]
            _forget(c)
        assert last.startswith("OTA:A:"), last
        off = int(last.split(":")[2])
        assert off == min(sent, size), (off, sent)
    assert last == f"OTA:A:{size}", last
    c.disconnect()
    p.poll()
    yield
    after = _heap() - base
    if not MEASURED:
        return None
    assert peak <= PEAK_GOAL, peak
    return {
        "stream_peak_growth_bytes": peak,
        "max_live_growth_bytes": worst_live,
        "max_poll_alloc_bytes": worst_call,
        "retained_after_session_bytes": after,
        "goal": PEAK_GOAL,
    }


def _per_kb(t0, t1, size):
    import time

    return round(time.ticks_diff(t1, t0) / (size / 1024), 2)


def test_mpy_sha256_cpu_per_kb():
    import time

    if not hasattr(time, "ticks_us"):
        return None  # plain CPython without the shims: no figures
    _preload()
    import binascii
    import hashlib

    import ota_state
    from fwtest import blob, write

    size = 64 * 1024
    rounds = 16  # 1 MB per figure
    data = blob(size, 2)
    chunks = [data[i : i + 180] for i in range(0, size, 180)]
    t0 = time.ticks_us()
    for _ in range(rounds):
        h = hashlib.sha256()
        for c in chunks:
            h.update(c)
        h.digest()
    t1 = time.ticks_us()
    for _ in range(rounds):
        crc = 0
        for c in chunks:
            crc = binascii.crc32(c, crc)
    t2 = time.ticks_us()
    write("app.py.new", data)
    t3 = time.ticks_us()
    for _ in range(rounds):
        ota_state.file_crc("app.py.new", size)
    t4 = time.ticks_us()
    for _ in range(rounds):
        ota_state.file_crc("app.py.new", size, hashlib.sha256())
    t5 = time.ticks_us()
    total = size * rounds
    return {
        "sha256_us_per_kb": _per_kb(t0, t1, total),
        "crc32_us_per_kb": _per_kb(t1, t2, total),
        "resume_read_crc_us_per_kb": _per_kb(t3, t4, total),
        "resume_read_crc_sha256_us_per_kb": _per_kb(t4, t5, total),
    }
