"""Errors shown to the user: translated, and saying what to do.

`translate` turns what the library or the Bluetooth stack raised during an
install into a `HomeAssistantError` whose translation key (strings.json,
"exceptions") tells the user what went wrong and what to do about it; the
same key is the `reason` of the install's history record and event.
"""

from __future__ import annotations

from bleak.exc import BleakError
from bleak_retry_connector import BleakNotFoundError, BleakOutOfConnectionSlotsError
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .nus_ota import errors as ota

# What a failed connection or conversation can raise besides OTAError.
LINK_ERRORS = (BleakError, OSError, TimeoutError)


def install_error(key: str, **placeholders: str) -> HomeAssistantError:
    """Build a translated install error."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


def invalid(key: str, **placeholders: str) -> ServiceValidationError:
    """Build a translated error about what the user asked for."""
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


def translate(
    err: Exception,
    *,
    name: str,
    files: list[str],
    version: str,
    heard_now: bool,
) -> HomeAssistantError:
    """Tell the user what went wrong installing `files` as `version` on `name`.

    `heard_now`: a connectable scanner hears the board at this moment.
    """
    if isinstance(err, ota.ContentRefusedError):
        return install_error("content_refused", name=name, file=err.file)
    if isinstance(err, ota.AnsweredLikeV1Error):
        return install_error("answered_like_v1", name=name)
    if isinstance(err, ota.ConnectFailedError) and err.applied:
        return install_error("not_back", name=name, error=str(err.cause))
    if isinstance(err, ota.ConnectFailedError) and err.cause is not None:
        err = err.cause if isinstance(err.cause, Exception) else err
    if isinstance(err, BleakOutOfConnectionSlotsError):
        # Home Assistant keeps the last advertisement of a board whose
        # proxy went away; habluetooth then reports no free slot. Only
        # a scanner that hears the board now makes it a slot problem.
        return install_error("out_of_slots" if heard_now else "not_found", name=name)
    if isinstance(err, BleakNotFoundError):
        return install_error("not_found", name=name)
    if isinstance(err, ota.RejectedError):
        return _rejected(err, name, ", ".join(files), version)
    if isinstance(err, ota.AuthRequiredError):
        return install_error("auth_required", name=name, scheme=err.scheme)
    if isinstance(err, (ota.CrcMismatchError, ota.SizeMismatchError)):
        return install_error("crc_mismatch", name=name, file=err.file)
    if isinstance(err, ota.RolledBackError):
        return install_error(
            "rolled_back",
            name=name,
            version=err.version or version,
            restored=err.restored or "the previous version",
            cause=err.cause or "it did not run 30 s without a crash or confirm",
        )
    if isinstance(err, ota.NotInstalledError):
        return install_error("not_installed", name=name, file=err.file, error=str(err))
    if isinstance(err, ota.LinkTooSmallError):
        return install_error("link_too_small", name=name, error=str(err))
    if isinstance(err, ota.DeviceError):
        return install_error("board_error", name=name, error=str(err))
    if isinstance(err, ota.ProtocolError):
        return install_error("invalid_reply", name=name, error=str(err))
    if isinstance(err, (BleakError, ota.ConnectFailedError)):
        return install_error("not_reachable", name=name, error=str(err))
    return install_error("link_lost", name=name, error=str(err))


def _rejected(
    err: ota.RejectedError, name: str, files: str, version: str
) -> HomeAssistantError:
    """Say why the board refused a command, in its words."""
    match err.reason:
        case "FORBIDDEN":
            return install_error("file_forbidden", name=name, file=files)
        case "NOSPACE":
            return install_error("no_space", name=name, file=files)
        case "AUTH":
            return install_error("auth_failed", name=name)
        case "VERSION":
            return install_error("downgrade_refused", name=name, version=version)
        case "BUSY":
            return install_error("board_busy", name=name)
    return install_error("bad_request", name=name, error=str(err))
