"""`scripts/virtual_proxy`: run a virtual ESPHome Bluetooth proxy with boards.

    python scripts/virtual_proxy --port 6053 --boards v2,v1

Home Assistant's esphome integration connects to it like to a real proxy
(host 127.0.0.1, the port, no password, no encryption key).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from esp32_ota_sim.link import PROFILES

from .boards import BOARD_KINDS, make_boards
from .server import ProxyInfo, VirtualProxy

_LOGGER = logging.getLogger("virtual_proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtual_proxy",
        description="A virtual ESPHome Bluetooth proxy in front of virtual ESP32 "
        "boards running the real device_firmware.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6053)
    parser.add_argument(
        "--boards",
        default="v2,v1",
        help=f"comma-separated board kinds ({', '.join(BOARD_KINDS)}); "
        "v1 boards only speak protocol v1",
    )
    parser.add_argument("--slots", type=int, default=3, help="connection slots")
    parser.add_argument(
        "--profile", default="proxy", choices=sorted(PROFILES), help="link profile"
    )
    parser.add_argument(
        "--advertise-interval",
        type=float,
        default=1.0,
        help="seconds between advertisement reports",
    )
    parser.add_argument("--name", default=ProxyInfo.name, help="proxy node name")
    parser.add_argument(
        "--app-version", default="1.0.0", help="config.VERSION the boards start with"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    boards = make_boards(args.boards, config=f'VERSION = "{args.app_version}"\n')
    proxy = VirtualProxy(
        boards,
        host=args.host,
        port=args.port,
        slots=args.slots,
        profile=args.profile,
        info=ProxyInfo(name=args.name),
        advertise_interval=args.advertise_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await proxy.start()
    for board in boards:
        kind = "v1 only" if type(board).__name__ == "V1OnlyBoard" else "v2"
        _LOGGER.info("board %s %s (%s)", board.address, board.name, kind)
    _LOGGER.info(
        "virtual proxy %r ready on %s:%s (%s slots, link profile %s)",
        args.name,
        proxy.host,
        proxy.port,
        proxy.slots,
        proxy.profile.name,
    )
    try:
        await stop.wait()
    finally:
        await proxy.stop()
        for board in boards:
            board.stop()


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
