r"""`python -m nus_ota`: update a board from a laptop, with bleak and nothing else.

    PYTHONPATH=custom_components/esp32_ota python -m nus_ota scan
    PYTHONPATH=custom_components/esp32_ota python -m nus_ota info --address ADDR
    PYTHONPATH=custom_components/esp32_ota python -m nus_ota push main.py app.py \
        --address ADDR [--version 1.2.0] [--key KEY | --token TOKEN] [--force] \
        [--no-compress]

`push` detects the protocol (v2 windowed transfer, or the v1 START/DATA/COMMIT
of boards already in the field), sends only the files that changed (v2),
resumes a transfer a dropped link or an earlier run left half done (v2),
deflates the files that compress for a board that offers it (v2 binary
frames), and checks the installed CRCs after the board restarted. Secrets can come from
the environment (NUS_OTA_KEY, NUS_OTA_TOKEN) instead of the command line,
where other users of the machine could see them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from .client import OTAClient
from .errors import OTAError
from .install import InstallOptions, install
from .transport import NUS_SERVICE_UUID, BleakTransport

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from .board_info import BoardInfo
    from .install import InstallResult

    type Discover = Callable[
        [float], Awaitable[dict[str, tuple[BLEDevice, AdvertisementData]]]
    ]

NAME_PREFIX: Final = "ESP32-OTA-"  # what the project's firmware advertises
CONNECT_TIMEOUT: Final = 20.0


async def _discover(
    seconds: float,
) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
    return await BleakScanner.discover(timeout=seconds, return_adv=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nus_ota",
        description="Update MicroPython ESP32 boards over Bluetooth (NUS OTA v1/v2).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser("scan", help="list boards in range")
    scan.add_argument("--timeout", type=float, default=5.0, help="seconds")
    scan.add_argument("--all", action="store_true", help="every device, not boards")
    for name, text in (
        ("info", "what a board runs and accepts"),
        ("push", "install files on a board"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--address", required=True, help="Bluetooth address")
        sub.add_argument(
            "--key", default=os.environ.get("NUS_OTA_KEY"), help="v2 HMAC key"
        )
        sub.add_argument(
            "--token", default=os.environ.get("NUS_OTA_TOKEN"), help="v1 token"
        )
        if name == "push":
            sub.add_argument("files", nargs="+", type=Path, metavar="FILE")
            sub.add_argument("--version", default="", help="version to record")
            sub.add_argument(
                "--force", action="store_true", help="resend all, allow downgrades"
            )
            sub.add_argument("--protocol", type=int, choices=(1, 2))
            sub.add_argument(
                "--no-verify", action="store_true", help="skip the check after reset"
            )
            sub.add_argument(
                "--no-compress",
                action="store_true",
                help="plain frames even to a board that offers deflate",
            )
    return parser


def _connector(address: str, backend: type[Any] | None) -> Callable[[], Any]:
    async def connect() -> BleakTransport:
        async def open_client(
            on_disconnect: Callable[[BleakClient], None],
        ) -> BleakClient:
            client = BleakClient(
                address,
                disconnected_callback=on_disconnect,
                timeout=CONNECT_TIMEOUT,
                backend=backend,
            )
            await client.connect()
            return client

        return await BleakTransport.open(open_client)

    return connect


async def _scan(args: argparse.Namespace, out: TextIO, discover: Discover) -> int:
    found = await discover(args.timeout)
    rows = []
    for device, adv in found.values():
        name = adv.local_name or device.name or ""
        nus = NUS_SERVICE_UUID in {u.lower() for u in adv.service_uuids}
        if args.all or nus or name.startswith(NAME_PREFIX):
            rows.append((adv.rssi, device.address, name))
    for rssi, address, name in sorted(rows, reverse=True):
        print(f"{address}  {rssi:4d} dBm  {name}", file=out)
    if not rows:
        print("no board found", file=out)
    return 0


def _describe(info: BoardInfo, out: TextIO) -> None:
    print(f"protocol 2, firmware {info.firmware}", file=out)
    print(f"application version: {info.app_version or 'unknown'}", file=out)
    encodings = ",".join(sorted(info.encodings))
    print(
        f"window {info.window} lines of {info.max_line} bytes, {encodings},"
        f" auth {info.auth}, free {'unknown' if info.free is None else info.free}",
        file=out,
    )
    for name, entry in sorted(info.files.items()):
        if entry is None:
            print(f"  {name}: not installed", file=out)
        else:
            version = entry.version or "no version"
            print(f"  {name}: {entry.size} B, crc {entry.crc}, {version}", file=out)
    for name, staged in sorted(info.staged.items()):
        print(f"  {name}: staged {staged.have}/{staged.size} B", file=out)
    if info.trial is not None:
        print(f"on trial: {info.trial.version}, {info.trial.boots} boot(s)", file=out)
    if info.rollback is not None:
        print(
            f"rolled back {info.rollback.version} to {info.rollback.restored}",
            file=out,
        )


async def _info(
    args: argparse.Namespace, out: TextIO, backend: type[Any] | None
) -> int:
    async with OTAClient(await _connector(args.address, backend)()) as client:
        info = await client.hello()
        if info is not None:
            _describe(info, out)
            return 0
        version = await client.ask_v1_version()
        print("protocol 1 (a v1 board: no inventory)", file=out)
        print(f"application version: {version or 'unknown'}", file=out)
    return 0


def _report(result: InstallResult, out: TextIO) -> None:
    for name in result.files_skipped:
        print(f"{name}: already installed", file=out)
    if not result.files_sent:
        print("nothing to send", file=out)
        return
    rate = (
        result.bytes_sent / result.transfer_seconds / 1024 if result.bytes_sent else 0
    )
    print(
        f"installed {', '.join(result.files_sent)} over protocol {result.protocol}:"
        f" {result.bytes_total} B ({result.bytes_resumed} B resumed) in"
        f" {result.seconds:.1f} s, {rate:.1f} KB/s while sending,"
        f" {result.retries} retries, {result.connections} connection(s)",
        file=out,
    )
    if result.trial:
        print("the new version runs on trial until the application confirms", file=out)


async def _push(
    args: argparse.Namespace, out: TextIO, backend: type[Any] | None
) -> int:
    files = {path.name: path.read_bytes() for path in args.files}
    options = InstallOptions(
        auth_key=args.key,
        token=args.token,
        force=args.force,
        protocol=args.protocol,
        verify=not args.no_verify,
        compress=not args.no_compress,
    )
    shown = -1

    def progress(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 * done // total if total else 100
        if percent != shown:
            shown = percent
            sys.stderr.write(f"\r{percent:3d} %")
            sys.stderr.flush()

    result = await install(
        _connector(args.address, backend),
        files,
        args.version,
        options,
        progress=progress,
    )
    sys.stderr.write("\n")
    _report(result, out)
    return 0


async def run(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    backend: type[Any] | None = None,
    discover: Discover = _discover,
) -> int:
    """Run one command; the exit status. `backend` is a bleak client backend."""
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    try:
        if args.command == "scan":
            return await _scan(args, out, discover)
        if args.command == "info":
            return await _info(args, out, backend)
        return await _push(args, out, backend)
    except (OTAError, BleakError, ValueError, OSError, TimeoutError) as err:
        # None of these quotes a key or token (see errors.py).
        sys.stderr.write(f"error: {err}\n")
        return 1


def main() -> None:
    """Console entry: `python -m nus_ota ...`."""
    sys.exit(asyncio.run(run()))
