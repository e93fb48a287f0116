"""The mutation-testing runner (scripts/mutate, scripts/mutation/runner.py).

No test suite runs here: the test runs are stand-ins that look at the tree.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest
from mutation.runner import (
    PLAN,
    Mutation,
    Outcome,
    Plan,
    PlanError,
    Status,
    classify,
    copy_tree,
    group_key,
    load_plan,
    render,
    run_mutation,
    score,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

ORIGINAL = "def limit(n):\n    return n < 8\n"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the HA-wide autouse fixture: the runner needs no hass."""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(ORIGINAL)
    (tmp_path / "logs").mkdir()
    return tmp_path


def _plan(*mutations: Mutation) -> Plan:
    return Plan(
        groups={"fast": ("tests/fast",), "slow": ("tests/slow",)},
        files={"pkg/mod.py": ("fast", "slow")},
        mutations=mutations,
    )


def _mutation(find: str = "n < 8", replace: str = "n <= 8") -> Mutation:
    return Mutation("mod-limit", "pkg/mod.py", find, replace, "off-by-one")


class _Runs:
    """A stand-in test runner: records what it saw, answers from a script."""

    def __init__(self, tree: Path, *answers: Status) -> None:
        self.tree = tree
        self.answers = list(answers)
        self.seen: list[tuple[tuple[str, ...], str]] = []

    def __call__(
        self, root: Path, args: Sequence[str], log: Path
    ) -> tuple[Status, str]:
        assert root == self.tree
        assert log.parent == self.tree / "logs"
        self.seen.append((tuple(args), (root / "pkg" / "mod.py").read_text()))
        return self.answers.pop(0), "tests/x.py::test_y"


def test_a_mutation_whose_text_is_gone_is_stale_and_not_run(tree: Path) -> None:
    runs = _Runs(tree)
    outcome = run_mutation(tree, _plan(), _mutation(find="n < 9"), runs, tree / "logs")
    assert outcome.status is Status.STALE
    assert "text not found in pkg/mod.py: n < 9" in outcome.detail
    assert runs.seen == []


def test_a_mutation_whose_text_appears_twice_is_stale(tree: Path) -> None:
    (tree / "pkg" / "mod.py").write_text(ORIGINAL * 2)
    outcome = run_mutation(tree, _plan(), _mutation(), _Runs(tree), tree / "logs")
    assert outcome.status is Status.STALE
    assert "found 2 times" in outcome.detail


def test_a_missing_file_is_stale(tree: Path) -> None:
    (tree / "pkg" / "mod.py").unlink()
    outcome = run_mutation(tree, _plan(), _mutation(), _Runs(tree), tree / "logs")
    assert outcome.status is Status.STALE
    assert "does not exist" in outcome.detail


def test_the_tests_see_the_mutation_and_the_file_is_restored(tree: Path) -> None:
    runs = _Runs(tree, Status.SURVIVED, Status.KILLED)
    outcome = run_mutation(tree, _plan(), _mutation(), runs, tree / "logs")
    assert outcome.status is Status.KILLED
    assert outcome.detail == "tests/x.py::test_y"
    mutated = ORIGINAL.replace("n < 8", "n <= 8")
    # groups in order, the second only because the first passed
    assert runs.seen == [(("tests/fast",), mutated), (("tests/slow",), mutated)]
    assert (tree / "pkg" / "mod.py").read_text() == ORIGINAL


def test_the_first_failing_group_ends_the_mutation(tree: Path) -> None:
    runs = _Runs(tree, Status.TIMEOUT)
    outcome = run_mutation(tree, _plan(), _mutation(), runs, tree / "logs")
    assert outcome.status is Status.TIMEOUT
    assert [args for args, _ in runs.seen] == [("tests/fast",)]


def test_a_mutation_every_group_passes_survives(tree: Path) -> None:
    runs = _Runs(tree, Status.SURVIVED, Status.SURVIVED)
    outcome = run_mutation(tree, _plan(), _mutation(), runs, tree / "logs")
    assert outcome.status is Status.SURVIVED


def test_the_file_is_restored_when_the_run_breaks(tree: Path) -> None:
    before = (tree / "pkg" / "mod.py").read_bytes()

    def interrupted(root: Path, args: Sequence[str], log: Path) -> tuple[Status, str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_mutation(tree, _plan(), _mutation(), interrupted, tree / "logs")
    assert (tree / "pkg" / "mod.py").read_bytes() == before


def test_a_mutation_that_does_not_compile_is_an_error(tree: Path) -> None:
    runs = _Runs(tree)
    outcome = run_mutation(tree, _plan(), _mutation(replace="n <"), runs, tree / "logs")
    assert outcome.status is Status.ERROR
    assert outcome.detail.startswith("does not compile")
    assert runs.seen == []
    assert (tree / "pkg" / "mod.py").read_text() == ORIGINAL


def _outcomes(**counts: int) -> list[Outcome]:
    return [
        Outcome(f"{status}-{i}", "f.py", "why", Status(status))
        for status, count in counts.items()
        for i in range(count)
    ]


def test_score_counts_hangs_as_killed_and_ignores_stale_and_errors() -> None:
    result = score(_outcomes(killed=55, timeout=2, survived=3, stale=4, error=1))
    assert (result.total, result.killed, result.timeouts) == (65, 55, 2)
    assert (result.survived, result.stale, result.errors) == (3, 4, 1)
    assert result.percent == pytest.approx(95.0)  # 57 of 60


def test_score_of_nothing_scorable_is_none() -> None:
    assert score(_outcomes(stale=2)).percent is None
    assert score([]).percent is None


def test_render_lists_each_survivor_with_its_reason() -> None:
    outcomes = _outcomes(killed=3, survived=1)
    text = render(outcomes, score(outcomes), 61.4)
    assert "mutations: 4  killed: 3  timeouts: 0  survived: 1" in text
    assert "score: 75.0 %  (wall time 61 s)" in text
    assert "survived:\n  survived-0  (f.py) why" in text


@pytest.mark.parametrize(
    ("code", "output", "status"),
    [
        (0, "5 passed", Status.SURVIVED),
        (1, "FAILED tests/a.py::test_b - assert 1 == 2", Status.KILLED),
        (2, "ERROR tests/a.py - ImportError", Status.KILLED),
        (1, "Failed: Timeout (>60.0s) from pytest-timeout.", Status.TIMEOUT),
        (5, "no tests ran", Status.ERROR),
        (3, "INTERNALERROR", Status.ERROR),
    ],
)
def test_classify_pytest_exit(code: int, output: str, status: Status) -> None:
    assert classify(code, output)[0] is status


def test_classify_names_the_failing_test() -> None:
    output = "....F\nFAILED tests/a.py::test_b[x] - assert 1 == 2\n"
    assert classify(1, output) == (Status.KILLED, "tests/a.py::test_b[x]")


def test_the_project_plan_loads_and_maps_every_mutated_file() -> None:
    plan = load_plan(PLAN)
    assert len(plan.mutations) >= 60
    for mutation in plan.mutations:
        assert plan.groups_for(mutation), mutation.id


def test_a_plan_with_a_duplicate_id_or_unmapped_file_is_refused(
    tmp_path: Path,
) -> None:
    entry = '[[mutation]]\nid = "a"\nfile = "x.py"\nfind = "<"\nreplace = ">"\n'
    entry += 'why = "flip"\n'
    plan = tmp_path / "plan.toml"
    plan.write_text('[groups]\ng = ["t"]\n[files]\n"x.py" = ["g"]\n' + entry * 2)
    with pytest.raises(PlanError, match="appears twice"):
        load_plan(plan)
    plan.write_text('[groups]\ng = ["t"]\n' + entry)
    with pytest.raises(PlanError, match=r"x\.py has no tests"):
        load_plan(plan)


def test_copy_tree_copies_what_git_sees_and_links_the_venv(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "dst"
    (source / ".venv").mkdir(parents=True)
    target.mkdir()
    (source / ".gitignore").write_text(".venv/\nbuild/\n")
    (source / "kept.py").write_text("committed")
    (source / "new.py").write_text("not committed yet")
    (source / "build").mkdir()
    (source / "build" / "out.txt").write_text("ignored")
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    subprocess.run(["git", "add", "kept.py"], cwd=source, check=True)
    copy_tree(source, target)
    assert (target / "kept.py").read_text() == "committed"
    assert (target / "new.py").read_text() == "not committed yet"
    assert not (target / "build").exists()
    assert (target / ".venv").is_symlink()


def test_groups_that_run_the_same_tests_have_one_key() -> None:
    assert group_key(["tests/client/test_a.py", "tests/client", "tests/faults"]) == (
        group_key(["tests/faults", "tests/client"])
    )
    fw = ["tests/firmware/test_scenarios.py", "-k", "not micropython"]
    assert group_key(fw) == (frozenset({fw[0]}), ("-k", "not micropython"))
    assert group_key(fw) != group_key(fw[:1])
    assert group_key(["tests/client_extra", "tests/client"]) == (
        frozenset({"tests/client_extra", "tests/client"}),
        (),
    )
