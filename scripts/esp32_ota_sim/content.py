"""What the benchmark and the tests send: random bytes or real source.

`source_bytes` is real Python, never text made up to compress well: a frozen
snapshot of this project's own code (`frozen_source.txt`, 128 KB: the
firmware, device_firmware/*.py in name order, then the start of the client
library, as they stood at commit 33b629e). Frozen, so that compressed figures
and the tests that lose writes by a seeded pattern do not move whenever the
project's code changes.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

FROZEN_SOURCE = Path(__file__).with_name("frozen_source.txt")
CONTENTS = ("random", "source")


def random_bytes(size: int, seed: int) -> bytes:
    """`size` random bytes (incompressible), the same for the same seed."""
    return random.Random(seed).randbytes(size)


@cache
def _frozen_source() -> bytes:
    return FROZEN_SOURCE.read_bytes()


def source_bytes(size: int) -> bytes:
    """The first `size` bytes of the frozen source (repeated if it is shorter)."""
    corpus = _frozen_source()
    return (corpus * (size // len(corpus) + 1))[:size]


def source_comments(size: int) -> bytes:
    """About `size` bytes of the frozen source as comments ("# " + line).

    Appended to a working app.py, real code that still boots.
    """
    return b"".join(b"# " + line + b"\n" for line in source_bytes(size).splitlines())


def file_content(kind: str, size: int, seed: int) -> bytes:
    """`size` bytes of `kind` ("random" or "source")."""
    if kind == "random":
        return random_bytes(size, seed)
    if kind == "source":
        return source_bytes(size)
    raise ValueError(f"unknown content {kind!r}; known: {', '.join(CONTENTS)}")
