"""The fleet benchmark's table, from the rows tests/test_fleet_bench.py wrote.

    python -m tests.fleet_bench_table ROWS [--markdown FILE]

Run through scripts/bench_fleet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HEADER = (
    "| link | boards | proxies per board | total (s) | target (s) | peak connections "
    "per proxy (slots) | failed | waited for a slot | refused, retried | errors |"
)


def render(rows: list[dict[str, Any]]) -> str:
    """A markdown table, one line per case, smallest fleet first."""
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for row in sorted(
        rows, key=lambda r: (r["profile"], r["boards"], r["proxies_per_board"])
    ):
        peaks = " / ".join(
            f"{peak} ({slots})"
            for peak, slots in zip(row["peak"], row["slots"], strict=True)
        )
        lines.append(
            f"| {row['profile']} | {row['boards']} | {row['proxies_per_board']} "
            f"| {row['total_s']} "
            f"| {row['target_s']} | {peaks} | {row['failed']} | {row['waited']} "
            f"| {row['refusals']} | {row['errors_logged']} |"
        )
    reference = {row["profile"]: row["reference_s"] for row in rows}
    lines.append("")
    lines.append(
        "One board alone (transfer and reconnect, no trial wait): "
        + ", ".join(f"{seconds} s ({link})" for link, seconds in reference.items())
        + "; target = 3 x that x ceil(boards / 9)."
    )
    failures = sorted({error for row in rows for error in row["failures"]})
    lines.extend(f"- failed: {error}" for error in failures)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the table; optionally write it to a markdown file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    text = args.rows.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        print("no figures: every case failed before reporting", file=sys.stderr)
        return 1
    table = render(rows)
    print(table, end="")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
