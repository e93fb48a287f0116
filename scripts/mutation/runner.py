"""Apply mutations one at a time to a copy of the tree and run the tests they concern.

A mutation is written in `mutations.toml` as a file, the exact text to find
in it (once) and its replacement; line numbers never appear, so a mutation
survives edits elsewhere in the file. When the text is gone (the code was
rewritten) the mutation is reported *stale* and not run: rewrite or drop it.

Outcomes:
- killed: the mapped tests failed (or could not even be collected);
- timeout: killed, but by a hang (pytest-timeout or the per-run limit):
  a hang is a failure, yet a test that hangs rather than fails is worth a look;
- survived: every mapped test passed with the bug in place — a gap;
- stale: the text to replace is not in the file (or not exactly once);
- error: the mutation does not compile, or the test run broke (no tests
  collected, pytest internal error): fix the mutation or the mapping.

Score = (killed + timeout) / (killed + timeout + survived).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[2]
PLAN = Path(__file__).resolve().parent / "mutations.toml"
# Links, not copies: the shared virtualenv and the MicroPython npm package.
LINKED = (".venv", "node_modules")
DEFAULT_RUN_TIMEOUT = 300.0
# How pytest-timeout words a test it stopped.
_PYTEST_TIMEOUT = re.compile(r"Timeout \(>[0-9.]+s\) from pytest-timeout")
_OPTIONS_WITH_VALUE = frozenset({"-k", "-m", "-p"})
_FAILURE_LINE = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)


class Status(StrEnum):
    """What one mutation came to."""

    KILLED = "killed"
    TIMEOUT = "timeout"
    SURVIVED = "survived"
    STALE = "stale"
    ERROR = "error"


class PlanError(Exception):
    """mutations.toml is malformed."""


@dataclass(frozen=True, slots=True)
class Mutation:
    """One plausible bug: replace `find` (present exactly once) in `file`."""

    id: str
    file: str
    find: str
    replace: str
    why: str
    groups: tuple[str, ...] = ()  # overrides the file's test groups


@dataclass(frozen=True, slots=True)
class Plan:
    """Test groups, which groups each source file needs, and the mutations."""

    groups: dict[str, tuple[str, ...]]  # name -> pytest arguments
    files: dict[str, tuple[str, ...]]  # source file -> group names, in run order
    mutations: tuple[Mutation, ...]

    def groups_for(self, mutation: Mutation) -> tuple[str, ...]:
        """Group names to run for a mutation, in order."""
        return mutation.groups or self.files[mutation.file]


@dataclass(slots=True)
class Outcome:
    """The result of one mutation."""

    id: str
    file: str
    why: str
    status: Status
    seconds: float = 0.0
    detail: str = ""  # the failing test, or why stale / broken


@dataclass(frozen=True, slots=True)
class Score:
    """Counts over outcomes; `percent` is None when nothing could be scored."""

    total: int
    killed: int
    timeouts: int
    survived: int
    stale: int
    errors: int
    percent: float | None = field(default=None)


def load_plan(path: Path = PLAN) -> Plan:
    """Read and check mutations.toml."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PlanError(f"{path}: {err}") from err
    groups = {str(k): tuple(map(str, v)) for k, v in raw.get("groups", {}).items()}
    files = {str(k): tuple(map(str, v)) for k, v in raw.get("files", {}).items()}
    for name, wanted in files.items():
        if unknown := [g for g in wanted if g not in groups]:
            raise PlanError(f"{name}: unknown test group {unknown[0]!r}")
    mutations: list[Mutation] = []
    seen: set[str] = set()
    for entry in raw.get("mutation", []):
        try:
            mutation = Mutation(
                id=entry["id"],
                file=entry["file"],
                find=entry["find"],
                replace=entry["replace"],
                why=entry["why"],
                groups=tuple(entry.get("groups", ())),
            )
        except KeyError as err:
            raise PlanError(f"mutation {entry.get('id', '?')}: no {err}") from err
        if mutation.id in seen:
            raise PlanError(f"mutation id {mutation.id!r} appears twice")
        seen.add(mutation.id)
        if mutation.find == mutation.replace:
            raise PlanError(f"mutation {mutation.id}: replace equals find")
        if not mutation.groups and mutation.file not in files:
            raise PlanError(f"mutation {mutation.id}: {mutation.file} has no tests")
        if unknown := [g for g in mutation.groups if g not in groups]:
            raise PlanError(f"mutation {mutation.id}: unknown group {unknown[0]!r}")
        mutations.append(mutation)
    return Plan(groups, files, tuple(mutations))


def select(plan: Plan, patterns: Sequence[str]) -> list[Mutation]:
    """Mutations whose id or file contains any of `patterns` (all if none)."""
    return [
        m
        for m in plan.mutations
        if not patterns or any(p in m.id or p in m.file for p in patterns)
    ]


def stale_reason(root: Path, mutation: Mutation) -> str | None:
    """Why the mutation cannot be applied to the tree at root, None if it can."""
    path = root / mutation.file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return f"{mutation.file} does not exist"
    count = text.count(mutation.find)
    if count == 0:
        return f"text not found in {mutation.file}: {_short(mutation.find)}"
    if count > 1:
        return f"text found {count} times in {mutation.file}: make it longer"
    return None


@contextmanager
def mutated(root: Path, mutation: Mutation) -> Iterator[Path]:
    """Apply the mutation for the duration of the block; always restore the file.

    Call stale_reason() first: the text must be present exactly once.
    """
    path = root / mutation.file
    original = path.read_bytes()
    text = original.decode("utf-8")
    path.write_text(text.replace(mutation.find, mutation.replace, 1), encoding="utf-8")
    try:
        yield path
    finally:
        path.write_bytes(original)


def compile_error(path: Path) -> str | None:
    """A syntax error in a mutated Python file, None if it compiles."""
    if path.suffix != ".py":
        return None
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as err:
        return f"does not compile: {err.msg} (line {err.lineno})"
    return None


# A test runner: (tree root, pytest arguments, log file) -> (status, detail).
type TestRun = Callable[[Path, Sequence[str], Path], tuple[Status, str]]


def run_mutation(
    root: Path, plan: Plan, mutation: Mutation, run: TestRun, log_dir: Path
) -> Outcome:
    """Apply one mutation, run its test groups in order until one fails, restore."""
    outcome = Outcome(mutation.id, mutation.file, mutation.why, Status.STALE)
    if reason := stale_reason(root, mutation):
        outcome.detail = reason
        return outcome
    started = time.monotonic()
    with mutated(root, mutation) as path:
        if error := compile_error(path):
            outcome.status, outcome.detail = Status.ERROR, error
            return outcome
        outcome.status = Status.SURVIVED
        for index, group in enumerate(plan.groups_for(mutation)):
            log = log_dir / f"{mutation.id}.{index}.{group}.log"
            status, detail = run(root, plan.groups[group], log)
            if status is not Status.SURVIVED:
                outcome.status, outcome.detail = status, detail
                break
    outcome.seconds = time.monotonic() - started
    return outcome


def score(outcomes: Sequence[Outcome]) -> Score:
    """Count the outcomes and compute the kill percentage."""
    count = dict.fromkeys(Status, 0)
    for outcome in outcomes:
        count[outcome.status] += 1
    scored = count[Status.KILLED] + count[Status.TIMEOUT] + count[Status.SURVIVED]
    caught = count[Status.KILLED] + count[Status.TIMEOUT]
    return Score(
        total=len(outcomes),
        killed=count[Status.KILLED],
        timeouts=count[Status.TIMEOUT],
        survived=count[Status.SURVIVED],
        stale=count[Status.STALE],
        errors=count[Status.ERROR],
        percent=100.0 * caught / scored if scored else None,
    )


def classify(returncode: int, output: str) -> tuple[Status, str]:
    """Turn a pytest exit code and output into an outcome."""
    failure = _FAILURE_LINE.search(output)
    where = failure.group(2) if failure else ""
    if returncode == 0:
        return Status.SURVIVED, ""
    if returncode in {1, 2}:  # tests failed / collection failed
        if _PYTEST_TIMEOUT.search(output):
            return Status.TIMEOUT, f"pytest-timeout in {where or 'a test'}"
        return Status.KILLED, where or f"pytest exit {returncode}"
    if returncode == 5:
        return Status.ERROR, "no tests collected: check the test group"
    return Status.ERROR, f"pytest exit {returncode}"


def pytest_run(timeout: float) -> TestRun:
    """A TestRun that runs pytest in a subprocess, bounded by `timeout` seconds."""

    def run(root: Path, args: Sequence[str], log: Path) -> tuple[Status, str]:
        command = [
            str(root / ".venv" / "bin" / "python"),
            "-m",
            "pytest",
            "-x",
            "-q",
            "-rfE",
            "--no-header",
            "-p",
            "no:cacheprovider",
            *args,
        ]
        # No .pyc files: a mutation and its restore can share a size and an
        # mtime second, and a stale .pyc would run the wrong code.
        env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a timeout kills it all
            )
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                return Status.TIMEOUT, f"run exceeded {timeout:.0f} s"
            except BaseException:  # Ctrl-C: the run's own group does not get it
                _kill(process)
                raise
        return classify(returncode, log.read_text(encoding="utf-8", errors="replace"))

    return run


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill a test run and everything it started (MicroPython under Node.js)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def copy_tree(source: Path, target: Path) -> None:
    """Copy the files git knows about (committed or not, not ignored) to target."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = source / name
        if src.is_file() and not src.is_symlink():
            dst = target / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for name in LINKED:
        if (source / name).exists():
            (target / name).symlink_to((source / name).resolve())


def render(outcomes: Sequence[Outcome], result: Score, seconds: float) -> str:
    """The summary printed at the end of a run."""
    lines = [
        f"mutations: {result.total}  killed: {result.killed}  "
        f"timeouts: {result.timeouts}  survived: {result.survived}  "
        f"stale: {result.stale}  errors: {result.errors}",
        "score: "
        + ("n/a" if result.percent is None else f"{result.percent:.1f} %")
        + f"  (wall time {seconds:.0f} s)",
    ]
    for status in (Status.SURVIVED, Status.TIMEOUT, Status.STALE, Status.ERROR):
        picked = [o for o in outcomes if o.status is status]
        if picked:
            lines.append(f"{status.value}:")
            lines.extend(
                f"  {o.id}  ({o.file}) {o.why}"
                + (f"\n      {o.detail}" * bool(o.detail))
                for o in picked
            )
    return "\n".join(lines)


def _short(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def group_key(args: Sequence[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """What a group runs, whatever the order: its paths and its options.

    A path inside another path of the group adds nothing (pytest runs a test
    file once), so ["a/x.py", "a"] and ["a"] are the same set.
    """
    paths: list[str] = []
    options: list[str] = []
    values = iter(args)
    for arg in values:
        if arg in _OPTIONS_WITH_VALUE:
            options += [arg, next(values, "")]
        elif arg.startswith("-"):
            options.append(arg)
        else:
            paths.append(arg)
    covered = {
        p for p in paths for q in paths if p != q and p.startswith(q.rstrip("/") + "/")
    }
    return frozenset(paths) - covered, tuple(options)


def _baseline(
    root: Path, plan: Plan, mutations: Sequence[Mutation], run: TestRun, log_dir: Path
) -> list[str]:
    """Run every group the mutations need, unmutated; return the failing ones."""
    needed = dict.fromkeys(g for m in mutations for g in plan.groups_for(m))
    # Groups that differ only in order run the same tests: run those once.
    once = {group_key(plan.groups[g]): g for g in reversed(needed)}
    failing = []
    for group in needed:
        if (same := once[group_key(plan.groups[group])]) != group:
            print(f"baseline {group}: the tests of {same}", flush=True)
            continue
        started = time.monotonic()
        status, detail = run(
            root, plan.groups[group], log_dir / f"baseline.{group}.log"
        )
        print(
            f"baseline {group}: {'ok' if status is Status.SURVIVED else status.value}"
            f" ({time.monotonic() - started:.0f} s) {detail}",
            flush=True,
        )
        if status is not Status.SURVIVED:
            failing.append(group)
    return failing


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/mutate."""
    parser = argparse.ArgumentParser(
        prog="scripts/mutate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "patterns", nargs="*", help="only mutations whose id or file contains one"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="exit 1 when the score (percent) is below this",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=DEFAULT_RUN_TIMEOUT,
        help="seconds per test run; a longer run counts as a timeout",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the mutations and stale ones"
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the unmutated run of the test groups",
    )
    parser.add_argument("--json", type=Path, help="write every outcome as JSON")
    parser.add_argument("--plan", type=Path, default=PLAN)
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan)
    except PlanError as err:
        print(f"mutate: {err}", file=sys.stderr)
        return 2
    mutations = select(plan, args.patterns)
    if args.list:
        for m in mutations:
            stale = stale_reason(ROOT, m)
            groups = ",".join(plan.groups_for(m))
            print(
                f"{m.id}  {m.file}  [{groups}]  {m.why}"
                + (f"  STALE: {stale}" * bool(stale))
            )
        return 0
    if not mutations:
        print("mutate: no mutation matches", file=sys.stderr)
        return 2
    log_dir = ROOT / "build" / "mutate"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    run = pytest_run(args.run_timeout)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(ROOT, tree)
        print(
            f"mutate: {len(mutations)} mutations, on a copy in {tree}, logs in",
            log_dir,
            flush=True,
        )
        if not args.no_baseline and (
            failing := _baseline(tree, plan, mutations, run, log_dir)
        ):
            print(
                f"mutate: the unmutated tree fails {', '.join(failing)}: "
                "every mutation would look killed; fix that first",
                file=sys.stderr,
            )
            return 2
        for index, mutation in enumerate(mutations, 1):
            outcome = run_mutation(tree, plan, mutation, run, log_dir)
            outcomes.append(outcome)
            print(
                f"[{index}/{len(mutations)}] {outcome.status.value:<8} {outcome.id}"
                f" ({outcome.seconds:.0f} s) {outcome.detail}",
                flush=True,
            )
    seconds = time.monotonic() - started
    result = score(outcomes)
    print(render(outcomes, result, seconds))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "score": asdict(result),
                    "seconds": round(seconds),
                    "outcomes": [asdict(o) for o in outcomes],
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
    if result.errors or result.percent is None:
        return 2
    return 1 if result.percent < args.threshold else 0
