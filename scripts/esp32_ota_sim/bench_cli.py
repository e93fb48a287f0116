"""`scripts/bench`: the transfer benchmark's command line.

    scripts/bench [--profiles proxy,local,lossy-proxy] [--sizes 4,16,64]
        [--modes v1-saw,v1-best,v2,v2-bin,v2-zip] [--content random|source]
        [--seed N] [--json out.json]
        [--markdown [build/bench.md]] [--no-heap] [--firmware WINDOW=12 ...]

Seconds are simulated link time (deterministic for a seed); the HA-side CPU
figure is measured process CPU time and varies a little from run to run.
The cases and tables are in `bench.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .bench import (
    DEFAULT_MODES,
    DEFAULT_PROFILES,
    DEFAULT_SIZES_KIB,
    CaseResult,
    render_markdown,
    render_table,
    run_bench,
)
from .content import CONTENTS

DEFAULT_MARKDOWN = Path(__file__).resolve().parents[2] / "build" / "bench.md"


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are whole KB, e.g. 4,16,64") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes are whole KB, e.g. 4,16,64")
    return sizes


def _constant(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier() or not value.isdigit():
        raise argparse.ArgumentTypeError("use NAME=<integer>, e.g. WINDOW=12")
    return name, int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Transfer benchmark: the real client and firmware over "
        "simulated BLE links.",
    )
    parser.add_argument("--profiles", type=_names, default=list(DEFAULT_PROFILES))
    parser.add_argument(
        "--sizes", type=_sizes, default=list(DEFAULT_SIZES_KIB), help="KB, e.g. 4,16"
    )
    parser.add_argument("--modes", type=_names, default=list(DEFAULT_MODES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--content",
        choices=CONTENTS,
        default="random",
        help="what the file holds: random bytes or the project's own Python",
    )
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    parser.add_argument(
        "--markdown",
        type=Path,
        nargs="?",
        const=DEFAULT_MARKDOWN,
        help=f"write the table as markdown (default {DEFAULT_MARKDOWN})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per case; CPU figures are the minimum (default 3)",
    )
    parser.add_argument(
        "--no-heap", action="store_true", help="skip the MicroPython heap figure"
    )
    parser.add_argument(
        "--firmware",
        type=_constant,
        action="append",
        default=[],
        metavar="NAME=N",
        help="override an OTAManager constant on the boards (e.g. WINDOW=12)",
    )
    args = parser.parse_args(argv)

    def progress(case: CaseResult) -> None:
        print(
            f"  {case.profile:<12} {case.size // 1024:>3} KB  {case.label:<22}"
            f" {case.seconds:7.2f} s",
            file=sys.stderr,
        )

    try:
        result = run_bench(
            args.profiles,
            args.sizes,
            args.modes,
            seed=args.seed,
            heap=not args.no_heap,
            firmware=dict(args.firmware),
            repeats=args.repeats,
            on_case=progress,
            content=args.content,
        )
    except ValueError as err:
        parser.error(str(err))
    print(render_table(result), end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(result))
    return 0 if result.heap is None or result.heap.ok else 1


if __name__ == "__main__":
    sys.exit(main())
