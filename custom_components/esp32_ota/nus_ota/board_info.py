"""What a v2 board says about itself in its HELLO reply.

`parse_board_info` turns the JSON of `OTA:HELLO:<json>` into a `BoardInfo`
and refuses anything malformed or impossible (a window of a million lines,
a 1 MB line, a negative size...), so the rest of the client can trust it.

Version texts are the exception: a board reports whatever text it was given
(a hand-edited `config.VERSION`, a version another client sent), so one the
client cannot use (`usable_version`) counts as unknown, never as a broken
board: refusing the HELLO would lock every update out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from .errors import InvalidBoardInfoError

if TYPE_CHECKING:
    from collections.abc import Mapping

AUTH_SCHEMES: Final = frozenset({"none", "token", "hmac"})
KNOWN_ENCODINGS: Final = frozenset({"hex", "b64", "bin"})

# Bounds a real board stays well inside.
MAX_BOARD_WINDOW: Final = 256
MIN_LINE: Final = 32
MAX_LINE: Final = 4096
MAX_FILE_SIZE: Final = 16 * 1024 * 1024
MAX_FREE: Final = 1 << 48  # SD cards can be mounted; host disks in tests
MAX_FILES: Final = 64
MAX_TEXT: Final = 64
UNKNOWN: Final = "unknown"  # the firmware version of a board that reports none usable
MAX_BOOTS: Final = 1000
MAX_MESSAGE: Final = 200  # the firmware saves 160 characters
MAX_TRACEBACK: Final = 1024  # ... and 800
# HELLO `deflate` (device_firmware/docs/protocol.md): window bits and the most
# file bytes one deflated frame may expand to.
MIN_DEFLATE_WBITS: Final = 8
MAX_DEFLATE_WBITS: Final = 15
MAX_DEFLATE_BYTES: Final = 0xFFFF

_CRC_RE: Final = re.compile(r"[0-9a-f]{8}")
_NONCE_RE: Final = re.compile(r"[0-9a-f]{16}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_TYPE_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class InstalledFile:
    """A file installed on the board."""

    size: int
    crc: str
    version: str | None


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A file received (maybe partly) but not applied yet."""

    size: int
    crc: str
    version: str | None
    have: int

    @property
    def complete(self) -> bool:
        """True when every byte arrived and the CRC was verified."""
        return self.have == self.size


@dataclass(frozen=True, slots=True)
class Trial:
    """A new version runs but the application has not confirmed it yet."""

    version: str | None
    boots: int


@dataclass(frozen=True, slots=True)
class CrashReport:
    """The last failure of a rejected version, as the board saved it."""

    type: str  # exception class name, or "watchdog"
    message: str
    file: str | None
    line: int | None
    traceback: str

    def summary(self) -> str:
        """One line: "app.py line 12: NameError: name 'sensr' isn't defined"."""
        what = f"{self.type}: {self.message}" if self.message else self.type
        if self.file is None:
            return what
        if self.line is None:
            return f"{self.file}: {what}"
        return f"{self.file} line {self.line}: {what}"


@dataclass(frozen=True, slots=True)
class Rollback:
    """The boot guard rejected `version` and restored `restored`."""

    version: str | None
    restored: str | None
    error: CrashReport | None = None

    @property
    def cause(self) -> str | None:
        """The saved failure in one line, or None when the board has none."""
        return self.error.summary() if self.error is not None else None


@dataclass(frozen=True, slots=True)
class DeflateOffer:
    """HELLO `deflate`: the board decompresses raw deflate frames (0xFE)."""

    wbits: int  # the largest window the client may use: 2**wbits bytes
    max_bytes: int  # the most file bytes one frame may expand to


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """Capabilities and state of a v2 board."""

    proto: int
    firmware: str
    app_version: str | None
    window: int
    max_line: int
    encodings: frozenset[str]
    auth: str
    nonce: str
    # The board checks a SHA-256 of each file's content and signs it (HELLO
    # `hash`: "sha256"); boards before firmware 2.1.0 do not.
    sha256: bool
    free: int | None  # None when the board cannot tell
    files: Mapping[str, InstalledFile | None]
    staged: Mapping[str, StagedFile] = field(default_factory=dict)
    trial: Trial | None = None
    rollback: Rollback | None = None
    # Binary frames (HELLO `fwin`, `fmax`): how many may be in flight and the
    # longest one, when the board offers `bin` with its own window.
    frame_window: int | None = None
    frame_max: int | None = None
    # Deflated frames (HELLO `deflate`): None when the board cannot take them.
    deflate: DeflateOffer | None = None

    @property
    def allowed_files(self) -> frozenset[str]:
        """Names the board accepts (every key of its inventory)."""
        return frozenset(self.files)


def parse_board_info(text: str) -> BoardInfo:
    """Parse and validate the JSON of a HELLO reply."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise InvalidBoardInfoError("HELLO is not valid JSON", text) from err
    obj = _object(raw, "HELLO")
    proto = _int(obj, "proto", 2, 255)
    window = _int(obj, "win", 1, MAX_BOARD_WINDOW)
    max_line = _int(obj, "line", MIN_LINE, MAX_LINE)
    free = None if obj.get("free") is None else _int(obj, "free", 0, MAX_FREE)
    auth = obj.get("auth")
    if auth not in AUTH_SCHEMES:
        raise InvalidBoardInfoError(f"unknown auth scheme {auth!r}")
    nonce = obj.get("nonce")
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise InvalidBoardInfoError(f"bad nonce {nonce!r}")
    enc_list = obj.get("enc")
    if not isinstance(enc_list, list) or not all(isinstance(e, str) for e in enc_list):
        raise InvalidBoardInfoError("enc must be a list of strings")
    encodings = frozenset(enc_list) & KNOWN_ENCODINGS
    if not encodings:
        raise InvalidBoardInfoError(f"no known data encoding in {enc_list!r}")
    firmware = usable_version(obj.get("fw")) or UNKNOWN
    files_obj = _object(obj.get("files"), "files")
    if not files_obj or len(files_obj) > MAX_FILES:
        raise InvalidBoardInfoError(f"files must list 1 to {MAX_FILES} allowed files")
    files: dict[str, InstalledFile | None] = {}
    for name, value in files_obj.items():
        _name(name)
        if value is None:
            files[name] = None
            continue
        entry = _object(value, name)
        files[name] = InstalledFile(
            size=_int(entry, "size", 0, MAX_FILE_SIZE),
            crc=_crc(entry.get("crc")),
            version=usable_version(entry.get("ver")),
        )
    staged: dict[str, StagedFile] = {}
    staged_raw = obj.get("staged")
    staged_obj = {} if staged_raw is None else _object(staged_raw, "staged")
    if len(staged_obj) > MAX_FILES:
        raise InvalidBoardInfoError("too many staged files")
    for name, value in staged_obj.items():
        _name(name)
        entry = _object(value, name)
        size = _int(entry, "size", 0, MAX_FILE_SIZE)
        staged[name] = StagedFile(
            size=size,
            crc=_crc(entry.get("crc")),
            version=usable_version(entry.get("ver")),
            have=_int(entry, "have", 0, size),
        )
    trial = None
    if obj.get("trial") is not None:
        trial_obj = _object(obj["trial"], "trial")
        trial = Trial(
            usable_version(trial_obj.get("ver")), _int(trial_obj, "boots", 0, MAX_BOOTS)
        )
    rollback = None
    if obj.get("rollback") is not None:
        rb_obj = _object(obj["rollback"], "rollback")
        rollback = Rollback(
            usable_version(rb_obj.get("ver")),
            usable_version(rb_obj.get("restored")),
            _crash_report(rb_obj.get("error")),
        )
    frame_window = frame_max = None
    if "fwin" in obj or "fmax" in obj:  # both, or neither
        frame_window = _int(obj, "fwin", 1, MAX_BOARD_WINDOW)
        frame_max = _int(obj, "fmax", MIN_LINE, MAX_LINE)
    return BoardInfo(
        proto=proto,
        firmware=firmware,
        app_version=usable_version(obj.get("app")),
        window=window,
        max_line=max_line,
        encodings=encodings,
        auth=auth,
        nonce=nonce,
        sha256=obj.get("hash") == "sha256",
        free=free,
        files=files,
        staged=staged,
        trial=trial,
        rollback=rollback,
        frame_window=frame_window,
        frame_max=frame_max,
        deflate=_deflate_offer(obj.get("deflate")) if "bin" in encodings else None,
    )


def _deflate_offer(value: Any) -> DeflateOffer | None:
    """Read HELLO `deflate`; None when absent or unusable (plain frames then).

    Only an offer: a malformed one costs speed, not a reason to refuse the
    board.
    """
    if not isinstance(value, dict):
        return None
    wbits = value.get("wbits")
    most = value.get("max")
    if not _in_range(wbits, MIN_DEFLATE_WBITS, MAX_DEFLATE_WBITS) or not _in_range(
        most, 1, MAX_DEFLATE_BYTES
    ):
        return None
    return DeflateOffer(wbits, most)


def _crash_report(value: Any) -> CrashReport | None:
    """Read the board's saved exception, cut to size; None when absent or unusable.

    Only an explanation: a malformed one is dropped, not a reason to refuse
    the board.
    """
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if not isinstance(kind, str) or not _TYPE_RE.fullmatch(kind):
        return None
    file = value.get("file")
    line = value.get("line")
    return CrashReport(
        type=kind,
        message=_printable(value.get("msg"), MAX_MESSAGE),
        file=file if isinstance(file, str) and _NAME_RE.fullmatch(file) else None,
        line=line if _in_range(line, 1, 10**6 - 1) else None,
        traceback=_printable(value.get("tb"), MAX_TRACEBACK, keep="\n"),
    )


def _printable(value: Any, limit: int, keep: str = "") -> str:
    if not isinstance(value, str):
        return ""
    text = "".join(c if c.isprintable() or c in keep else " " for c in value[:limit])
    return text.strip()


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidBoardInfoError(f"{what} must be a JSON object")
    return value


def _in_range(value: object, low: int, high: int) -> TypeGuard[int]:
    """Tell a JSON integer (not a boolean) in low..high."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    )


def _int(obj: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if not _in_range(value, low, high):
        raise InvalidBoardInfoError(
            f"{key} must be an integer in {low}..{high}, got {value!r}"
        )
    return value


def usable_version(value: object) -> str | None:
    """Return a version text the client can show and send back, else None (unknown).

    Usable: a string of 1 to MAX_TEXT printable ASCII characters without
    the separators of the protocol and its signed messages (`:` `,` `|`).
    """
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_TEXT
        or not (value.isascii() and value.isprintable())
        or any(c in value for c in ":,|")
    ):
        return None
    return value


def _crc(value: Any) -> str:
    if not isinstance(value, str) or not _CRC_RE.fullmatch(value):
        raise InvalidBoardInfoError(f"bad crc {value!r}")
    return value


def _name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or name in {".", ".."}:
        raise InvalidBoardInfoError(f"bad file name {name!r}")
