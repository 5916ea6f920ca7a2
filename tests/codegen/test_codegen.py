"""The code-generation reading (`model/codegen/`): its compiled steps and properties agree with
the concrete reading on every reachable state of small machines of every profile, a seeded
miscompilation is caught, the Promela export parses (and, with SPIN installed, counts the
explorer's states), and bad input to `export` is one line and exit 2."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from model.codegen import python, trace
from model.codegen.promela import export
from model.codegen.search import reachable
from model.explorer import explore
from model.profiles import get

ROOT = Path(__file__).resolve().parents[2]
SPIN = shutil.which("spin") is not None and shutil.which("gcc") is not None


def machine(name: str, *options: str):
    profile = get(name)
    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    return profile, profile.config_from_args(parser.parse_args(list(options)))


SMALL = {
    "toy": ("--pages", "3"),
    "pkvm": ("--pages", "1", "--guests", "1", "--gfns", "1"),
    "gmem": ("--files", "1", "--slots", "1", "--gfns", "1", "--pages", "1"),
}


def small(name):
    profile, config = machine(name, *SMALL[name])
    if name == "gmem":  # sizes, spans and counts that fit one page
        from dataclasses import replace
        config = replace(config, sizes=(0, 1), spans=(1,), counts=(0, 1))
    return profile, config


def layers(search) -> Counter:
    """How many rows a native search found at each breadth-first depth (by parent pointers):
    the explorer's `depth_of` counted the same way, when both search breadth first."""
    depth = [0] * search.n
    for i in range(1, search.n):
        depth[i] = depth[int(search.parent[i])] + 1
    return Counter(depth)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_compiled_steps_agree_with_the_concrete_reading(name):
    profile, config = small(name)
    found = reachable(profile, config, properties=True, check_first=10**9)
    explored = explore(profile, config, symmetry=False)
    assert found["complete"] and found["violated"] == []
    assert (found["states"], found["edges"]) == (len(explored.states), explored.edges)
    assert found["fallbacks"] == 0  # every reachable path is compiled code
    # every call and property on every reachable state, compiled against concrete
    assert python.check(found["compiled"], explored.states) == \
        len(explored.states) * len(profile.calls(config))


def test_a_seeded_miscompilation_is_caught(monkeypatch):
    profile, config = small("toy")
    monkeypatch.setitem(python._PY, "lt", "<=")  # `pins < max_pins` printed as `<=`
    with pytest.raises(python.Disagreement, match=r"pin\(page="):
        reachable(profile, config, check_first=10**9)


def test_the_explorer_can_step_on_compiled_code():
    profile, config = small("toy")
    compiled = python.compiled_successors(profile, config)
    state = profile.initial_state(config)
    packed = compiled.pack(state)
    for i, call in enumerate(compiled.calls):
        assert compiled.outcome(packed, i) == profile.step(config, state, call)


SHAPES = ("--pages", "1", "--guests", "2", "--gfns", "1")  # 12 shapes of stage-2 leaves


def test_a_tree_serves_every_shape_that_differs_only_where_the_call_never_looks():
    profile, config = machine("pkvm", *SHAPES)
    found = reachable(profile, config, properties=True, check_first=10**9)
    compiled = found["compiled"]
    trees = len(compiled.trees)
    assert len(compiled.shapes) > 1 and found["reused"] > trees // 4
    explored = explore(profile, config, symmetry=False)
    assert python.check(compiled, explored.states) == \
        len(explored.states) * len(profile.calls(config))


def test_a_tree_shared_past_what_its_call_looked_into_is_caught(monkeypatch):
    monkeypatch.setattr(trace.Watched, "_note", lambda self: None)  # a length read goes unseen
    profile, config = machine("pkvm", *SHAPES)
    with pytest.raises(python.Disagreement):
        reachable(profile, config, check_first=10**9)


@pytest.mark.parametrize("look", [
    len, iter, bool, hash, reversed, lambda t: t[0], lambda t: t == (1, 2), lambda t: 2 in t,
    lambda t: t + (3,), lambda t: (0,) + t, lambda t: t * 2, lambda t: t < (1, 3),
    lambda t: t.index(2), lambda t: t.count(1), lambda t: [*t], lambda t: tuple(t),
])
def test_every_look_into_a_watched_tuple_is_noted(look):
    notes: set = set()
    state = trace.symbolic_state((tuple, ((tuple, (("k", 1), ("k", 2))), ("k", 0))), notes)
    inner = tuple.__getitem__(state, 0)
    assert notes == set()
    look(inner)
    assert notes == {(0,)}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_export_is_promela(name, tmp_path):
    profile, config = small(name)
    text, facts = export(profile, config)
    assert "active proctype main()" in text and "never {" in text
    assert facts["states"] == len(explore(profile, config, symmetry=False).states)
    if not SPIN:
        pytest.skip("spin is not installed: the model was written, not parsed")
    (tmp_path / "m.pml").write_text(text)
    subprocess.run(["spin", "-a", "m.pml"], cwd=tmp_path, check=True, capture_output=True)
    if name == "gmem":
        return  # parsed; counting its states is the benchmark's business (slow to compile)
    subprocess.run(["gcc", "-O2", "-DNOREDUCE", "-DSAFETY", "-o", "pan", "pan.c"], cwd=tmp_path,
                   check=True, capture_output=True)
    pan = subprocess.run(["./pan", f"-m{100 * facts['states'] + 10_000}"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert "errors: 0" in pan
    assert f"{facts['states']} states, stored" in pan
    assert f"{facts['edges'] + 1} transitions" in pan  # pan counts the initial state too


def cli(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "model.cli", *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("argv, needle", [
    (["export", "--format", "tla"], "invalid choice: 'tla'"),
    (["export", "--profile", "toy", "-o", "/nonexistent/m.pml"], "no such directory"),
    (["export", "--profile", "toy", "-o", ""], "-o: empty file name"),
    (["export", "--profile", "toy", "--max-seconds", "0"], "--max-seconds must be positive"),
    (["export", "--profile", "toy", "--pages", "100"], "--pages 100 is past the limit"),
    (["export", "--profile", "toy", "--trace-cache", "m.pml"], "--trace-cache m.pml: "),
])
def test_export_bad_input_is_one_line_and_exit_2(argv, needle, tmp_path):
    (tmp_path / "m.pml").write_text("")  # a file where a folder is wanted
    done = cli(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("pkvm-model: error: ") and needle in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_export_writes_a_file(tmp_path):
    done = cli("export", "--profile", "toy", "-o", "toy.pml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "toy.pml").read_text().startswith("/* pkvm-model export")
    assert "49 states" in done.stderr
