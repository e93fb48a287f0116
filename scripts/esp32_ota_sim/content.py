"""What the benchmark and the compression tests send: random bytes or real source.

`source_bytes` is the project's own Python, concatenated in a fixed order:
the firmware (device_firmware/*.py, what a board really receives) first,
then the client library and the integration. Real code, never text made up
to compress well; it changes as the project does, so compressed figures
move a little with it.
"""

from __future__ import annotations

import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (
    "device_firmware",
    "custom_components/esp32_ota/nus_ota",
    "custom_components/esp32_ota",
    "scripts/esp32_ota_sim",
)
CONTENTS = ("random", "source")


def random_bytes(size: int, seed: int) -> bytes:
    """`size` random bytes (incompressible), the same for the same seed."""
    return random.Random(seed).randbytes(size)


def source_bytes(size: int) -> bytes:
    """The first `size` bytes of the project's Python (repeated if it is shorter)."""
    corpus = b"".join(
        path.read_bytes()
        for folder in SOURCES
        for path in sorted((ROOT / folder).glob("*.py"))
    )
    return (corpus * (size // len(corpus) + 1))[:size]


def source_comments(size: int) -> bytes:
    """About `size` bytes of the project's Python as comments ("# " + line).

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
