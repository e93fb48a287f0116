"""Shared pieces of the fault suite: the ledger, boards, connections, checks.

Boards are `VirtualBoard`s running the real firmware, reached by the real
client through `SimBleakClient` (tests/client/test_sim.py's connector) over a
`SimLink` whose profile carries the seeded faults.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from esp32_ota_sim.bleak_backend import register_board
from esp32_ota_sim.board import VirtualBoard
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.content import source_comments
from esp32_ota_sim.link import PROFILES, LinkProfile, LinkStats, SimLink
from esp32_ota_sim.v1_board import V1OnlyBoard

from custom_components.esp32_ota.nus_ota import (
    BleakTransport,
    InstallOptions,
    InstallResult,
    install,
    probe,
)
from custom_components.esp32_ota.nus_ota.lines import (
    DEFLATE_MARK,
    FRAME_HEAD,
    FRAME_MARK,
)
from tests.client.test_sim import connector

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    type Hook = Callable[[SimLink, bytes, Callable[[], None]], None]

BUNDLE = ("main.py", "app.py")
DATA_FRAME = bytes((FRAME_MARK,))  # how every plain binary data frame starts
DEFLATED_FRAME = bytes((DEFLATE_MARK,))  # ... and every deflated one
_LINK_FAULTS = {
    "writes_lost": "lost write",
    "writes_dropped": "write dropped by a full proxy queue",
    "notifications_lost": "lost notification",
    "notifications_duplicated": "duplicated notification",
    "notifications_dropped": "notification dropped by a full queue",
    "spikes": "Wi-Fi latency spike",
}


@dataclass
class FaultLedger:
    """Faults injected and boards checked, over the whole session."""

    faults: Counter[str] = field(default_factory=Counter)
    tests: set[str] = field(default_factory=set)
    boards_checked: int = 0
    damaged: list[str] = field(default_factory=list)

    def _test(self) -> str:
        current = os.environ.get("PYTEST_CURRENT_TEST", "?")
        name = current.rsplit(" ", 1)[0]
        self.tests.add(name)
        return name

    def add(self, kind: str, count: int = 1) -> None:
        """Count `count` faults of one kind."""
        self._test()
        if count:
            self.faults[kind] += count

    def add_link(self, stats: LinkStats) -> int:
        """Count what the link model injected on one connection; return the sum."""
        total = 0
        for attr, kind in _LINK_FAULTS.items():
            count = int(getattr(stats, attr))
            self.add(kind, count)
            total += count
        return total

    def check_board(
        self,
        board: VirtualBoard,
        old: Mapping[str, bytes],
        new: Mapping[str, bytes],
        *,
        bundle: bool = True,
    ) -> str:
        """Running, no journal, every bundle file all old or all new; say which.

        `bundle=False` (v1, file by file): each file old or new on its own,
        "mixed" allowed. A board that fails is counted as damaged before the
        assertion fails.
        """
        test = self._test()
        self.boards_checked += 1
        files = board.files()
        problems = []
        if board.state != "running":
            problems.append(f"board is {board.state}")
        if "ota_journal.json" in files:
            problems.append("journal left behind")
        if "_ota_tmp" in files:
            problems.append("v1 temp file left behind")
        held = {name: files.get(name) for name in new}
        if held == dict(new):
            outcome = "new"
        elif held == {name: old.get(name) for name in new}:
            outcome = "old"
        else:
            outcome = "mixed"
            for name, data in held.items():
                if data not in (new[name], old.get(name)):
                    problems.append(f"{name}: damaged")
                elif bundle:
                    what = "new" if data == new[name] else "old"
                    problems.append(f"{name}: {what} (mixed bundle)")
        if problems:
            self.damaged.append(f"{test}: {', '.join(problems)}")
        assert not problems, (test, problems)
        return outcome

    def summary(self) -> dict[str, Any]:
        """What build/faults.json holds."""
        return {
            "tests": len(self.tests),
            "faults_injected": sum(self.faults.values()),
            "faults_by_kind": dict(sorted(self.faults.items())),
            "boards_checked": self.boards_checked,
            "boards_damaged": len(self.damaged),
            "damaged": self.damaged,
        }

    def line(self) -> str:
        """One line for the terminal."""
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.faults.items()))
        return (
            f"faults: {sum(self.faults.values())} injected in {len(self.tests)} "
            f"tests ({kinds}); boards checked: {self.boards_checked}, "
            f"damaged or mixed: {len(self.damaged)}"
        )


LEDGER = FaultLedger()


def profile(base: str = "proxy", *, seed: int = 0, **knobs: float) -> LinkProfile:
    """A named link profile with seeded faults (LinkProfile fields as knobs)."""
    return replace(PROFILES[base], seed=seed, name=f"{base}-faults-{seed}", **knobs)


def fault_board(
    link: LinkProfile | str = "fast",
    *,
    address: str = "24:0A:C4:00:00:01",
    v1_only: bool = False,
    config: str | None = None,
    deflate: bool = False,
) -> VirtualBoard:
    """A booted board with the real firmware, registered for SimBleakClient.

    `deflate`: its MicroPython has the deflate module, so it offers deflated
    frames; without, binary data goes as plain frames, which the faults here
    count and change (DATA_FRAME)."""
    if v1_only:
        board = V1OnlyBoard(address, boot=False)
    else:
        board = VirtualBoard(address, boot=False, has_deflate=deflate)
    if config is not None:
        board.write("config.py", config)
    board.boot()
    register_board(board, link)
    return board


def release(
    board: VirtualBoard, size: int = 6000, tag: str = "1.1.0", *, source: bool = False
) -> dict[str, bytes]:
    """A new main.py and app.py that still boot (the boot guard keeps them).

    app.py grows by about `size` bytes of padding, or with `source` of the
    project's Python as comments (it compresses as real code does).
    """
    filler = (
        source_comments(size)
        if source
        else b"".join(
            b"# %s line %05d: padding to make the file larger\n" % (tag.encode(), i)
            for i in range(size // 48)
        )
    )
    return {
        "main.py": board.read("main.py") + b"# release " + tag.encode() + b"\n",
        "app.py": board.read("app.py") + filler,
    }


def frame_file_bytes(data: bytes) -> int:
    """How many file bytes the binary frame `data` carries (0: not a frame)."""
    if data.startswith(DATA_FRAME):
        return len(data) - FRAME_HEAD
    if data.startswith(DEFLATED_FRAME):
        return int.from_bytes(data[7:9], "little")  # its <count>
    return 0


def bundle(board: VirtualBoard) -> dict[str, bytes]:
    """What the board holds now of the bundle's files."""
    return {name: board.read(name) for name in BUNDLE}


class Recorder:
    """The HA-like connector, remembering every link it opened."""

    def __init__(self, board: VirtualBoard) -> None:
        """Connect to `board` as Home Assistant would."""
        self._connect = connector(board)
        self.links: list[SimLink] = []

    async def __call__(self) -> BleakTransport:
        """Open one connection."""
        transport: BleakTransport = await self._connect()
        backend = transport.client._backend  # SimBleakClient
        if backend.link is not None:
            self.links.append(backend.link)
        return transport

    def count_faults(self, ledger: FaultLedger) -> int:
        """Add the faults of every link so far to the ledger; return the sum."""
        total = sum(ledger.add_link(link.stats) for link in self.links)
        self.links.clear()
        return total


async def run_install(
    connect: Recorder,
    files: Mapping[str, bytes],
    version: str = "1.1.0",
    **options: Any,
) -> InstallResult | BaseException:
    """Install; the result, or the exception it ended with."""
    try:
        return await install(connect, files, version, InstallOptions(**options))
    except Exception as err:
        return err


def install_twice[T](
    faults: FaultLedger,
    board: VirtualBoard,
    old: Mapping[str, bytes],
    new: Mapping[str, bytes],
    between: Callable[[], Awaitable[T]],
    *,
    first_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> tuple[InstallResult | BaseException, T, InstallResult]:
    """Install `new` (a fault may end it), await `between()`, install again.

    The second install must finish with every file new. Returns the first
    install's result, what `between()` returned and the second's result.
    `first_options` go to the first install only, `options` to both.
    """

    async def scenario() -> tuple[InstallResult | BaseException, T, Any]:
        first = await run_install(
            Recorder(board), new, **options, **(first_options or {})
        )
        seen = await between()
        return first, seen, await run_install(Recorder(board), new, **options)

    first, seen, second = run_virtual(scenario())
    assert isinstance(second, InstallResult), second
    assert faults.check_board(board, old, new) == "new"
    return first, seen, second


async def staged_bytes(board: VirtualBoard) -> int:
    """How many bytes of staged files the board holds (its HELLO says)."""
    info = await probe(Recorder(board))
    assert info is not None
    return sum(staged.have for staged in info.staged.values())


def install_through(
    faults: FaultLedger,
    link: LinkProfile,
    *,
    protocol: int,
    size: int,
    **options: Any,
) -> InstallResult:
    """Install a release of about `size` bytes over `link` (v1: a field board).

    The install must finish with every file new, and the link must really
    have injected faults; they go to the ledger.
    """
    board = fault_board(link, v1_only=protocol == 1)
    old = bundle(board)
    new = release(board, size=size)
    connect = Recorder(board)
    result = run_virtual(run_install(connect, new, **options))
    injected = connect.count_faults(faults)
    assert isinstance(result, InstallResult), (link.name, result)
    assert result.protocol == protocol
    assert injected > 0, link.name  # the knobs really injected something
    assert faults.check_board(board, old, new) == "new"
    return result


def drop_link(board: VirtualBoard) -> int:
    """The radio link breaks: both sides notice (not a reset); return how many."""
    links = list(board._links.items())
    for conn, link in links:
        link.board_dropped(reset=False)
        board.central_disconnected(link, conn)
    return len(links)


def tap(board: VirtualBoard, hook: Hook) -> None:
    """Route every write the board receives through `hook(link, data, deliver)`.

    The hook decides whether and when `deliver()` hands the write on; `untap`
    puts the board back.
    """
    receive = board.receive

    def tapped(link: SimLink, data: bytes) -> None:
        hook(link, data, lambda: receive(link, data))

    board.receive = tapped  # type: ignore[method-assign]


def untap(board: VirtualBoard) -> None:
    """Writes go straight to the board again."""
    board.__dict__.pop("receive", None)
