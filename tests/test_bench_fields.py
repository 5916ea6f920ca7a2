"""bench/fields.py: its projections of the reachable set, held against a computation of its own."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from model.profiles import get

ROOT = os.path.join(os.path.dirname(__file__), "..")
SCRIPT = os.path.join(ROOT, "bench", "fields.py")
MACHINE = ["--pages", "1", "--guests", "1", "--protected", "1"]


def _load():
    spec = importlib.util.spec_from_file_location("bench_fields", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fields_bench = _load()


def _reachable(profile, config) -> set:
    """Every state reachable by successful calls, by a plain search on `profile.step` (no memo,
    no symmetry, no state table)."""
    start = profile.initial_state(config)
    seen, todo = {start}, [start]
    calls = profile.calls(config)
    while todo:
        state = todo.pop()
        for call in calls:
            outcome = profile.step(config, state, call)
            if outcome is not None and outcome.errno == 0 and outcome.state not in seen:
                seen.add(outcome.state)
                todo.append(outcome.state)
    return seen


def _project(states, keep) -> int:
    """Distinct states on the named fields, from the values themselves."""
    return len({tuple(getattr(s, f) for f in keep) for s in states})


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("fields") / "fields.json"
    done = subprocess.run([sys.executable, SCRIPT, "--profile", "pkvm", "--pages", "1",
                           "--guests", "1", "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    [run] = json.loads(out.read_text())["runs"]
    return run


@pytest.fixture(scope="module")
def reachable():
    profile = get("pkvm")
    return _reachable(profile, fields_bench.machine(profile, MACHINE))


def test_counts_match_an_independent_projection(report, reachable):
    names = type(next(iter(reachable)))._fields
    assert report["states"] == len(reachable) == 284
    assert [f["field"] for f in report["fields"]] == list(names)
    twin = fields_bench.TWINS["pkvm"]
    assert report["twin"]["states"] == _project(reachable, twin)
    for f in report["fields"]:
        assert f["without"] == _project(reachable, [n for n in names if n != f["field"]]), f
        assert f["values"] == _project(reachable, [f["field"]]), f
        if not f["twin"]:
            assert f["twin_plus"] == _project(reachable, [*twin, f["field"]]), f
    for path, keep in ((report["greedy"], ()), (report["greedy_to_twin"], twin)):
        left = list(names)
        for step in path:  # each step is the best drop, and counts what it says
            options = {n: _project(reachable, [m for m in left if m != n])
                       for n in left if n not in keep}
            assert step["states"] == options[step["drop"]] == min(options.values()), step
            left.remove(step["drop"])
        assert sorted(left) == sorted(keep)
    assert report["twin_and_difference"] == _project(reachable, [*twin, *report["difference"]])
    assert report["twin_and_difference"] == len(reachable)


def test_a_constant_field_changes_nothing(report, reachable):
    names = type(next(iter(reachable)))._fields
    constant = [n for n in names if _project(reachable, [n]) == 1]
    assert constant  # 1 x 1 without host records: pte_handle, shared, mc (and more)
    by_name = {f["field"]: f for f in report["fields"]}
    for n in constant:
        assert by_name[n]["without"] == report["states"]
        assert by_name[n]["ratio"] == 1.0
        assert n not in report["difference"]


def test_the_analysis_is_generic():
    """The toy profile's own fields, no default twin: the twin is every field."""
    profile = get("toy")
    config = fields_bench.machine(profile, [])
    states = _reachable(profile, config)
    names = type(next(iter(states)))._fields
    data = fields_bench.analyse(states, names, names)
    assert data["states"] == data["twin"]["states"] == len(states)
    assert data["greedy_to_twin"] == [] and data["difference"] == []
    assert [s["states"] for s in data["greedy"]][-1] == 1


@pytest.mark.parametrize("args, says", [
    (["--profile", "pkvm", "--twin", "host,no_such_field"], "unknown field 'no_such_field'"),
    (["--profile", "no_such_profile"], "unknown profile 'no_such_profile'"),
    (["--profile", "pkvm", "--pages", "x"], "--pages"),
])
def test_bad_input_is_one_line_and_exit_2(args, says, tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, *args, "--json", str(tmp_path / "x.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "x.json").exists()  # refused before any search
