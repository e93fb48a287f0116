"""Sample data shared by the OTA client tests."""

from __future__ import annotations

from typing import Any

# A well-formed v2 HELLO payload: every field present, one of each file state.
GOOD_HELLO: dict[str, Any] = {
    "proto": 2,
    "fw": "2.0.0",
    "app": "1.0.0",
    "win": 8,
    "line": 512,
    "enc": ["hex", "b64"],
    "auth": "hmac",
    "nonce": "0123456789abcdef",
    "free": 1_000_000,
    "files": {
        "main.py": {"size": 900, "crc": "0badf00d", "ver": "1.0.0"},
        "app.py": None,
    },
    "staged": {"app.py": {"size": 100, "crc": "deadbeef", "ver": "1.1.0", "have": 40}},
    "trial": {"ver": "1.1.0", "boots": 1},
    "rollback": {"ver": "1.2.0", "restored": "1.1.0"},
}
