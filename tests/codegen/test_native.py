"""The native backend (`model/codegen/native.py`): its search reaches exactly the states and
edges of the Python backend and the explorer, its answers are held against the concrete
reading, a seeded mis-encoding is caught, a violated property comes with a shortest path, and
cells widen when a value needs it."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

from model.codegen import native, python
from model.codegen.search import reachable as compiled_reachable
from model.explorer import explore
from model.extensions import mutate
from tests.codegen.test_codegen import SMALL, layers, machine, small


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_native_search_reaches_the_explorers_states(name):
    profile, config = small(name)
    found = native.reachable(profile, config, properties=True, check_first=10**9)
    explored = explore(profile, config, symmetry=False)
    assert found["complete"] and found["violated"] == []
    assert (found["states"], found["edges"]) == (len(explored.states), explored.edges)
    search = found["search"]
    comp = search.comp
    assert {comp.unpack(search.packed(i)) for i in range(search.n)} == set(explored.states)
    # and the arrays answer every call on every reachable state as the Python backend does
    assert native.check_native(search, explored.states) > 0
    assert layers(search) == Counter(explored.depth_of)  # found breadth first
    assert dict(enumerate(found["layers"])) == layers(search)
    # the transitions that succeed somewhere, and no failing call that changes a state
    assert found["succeeded"] == sorted(t for t in profile.transitions
                                        if explored.sometimes[f"{t}_succeeds"])
    assert found["broken"] is None


def test_a_stopped_search_says_how_many_rows_it_found_at_each_depth():
    """Stopped in the middle of a layer: the layers found so far, the last one in part."""
    profile, config = machine("pkvm", "--pages", "2", "--guests", "1", "--protected", "1")
    search = native.NativeSearch(python.Compiled(profile, config))
    assert not search.run(search.comp.pack(profile.initial_state(config)), until=1000)
    assert dict(enumerate(search.layers())) == layers(search)
    assert sum(search.layers()) == search.n > 1000


def test_the_native_search_equals_the_compiled_one_on_a_larger_machine():
    profile, config = machine("pkvm", "--pages", "2", "--guests", "1", "--protected", "1")
    found = native.reachable(profile, config, properties=True)
    want = compiled_reachable(profile, config, properties=True)
    search = found["search"]
    assert (found["states"], found["edges"]) == (want["states"], want["edges"]) == (7738, 50806)
    comp, theirs = search.comp, want["compiled"]  # shape ids may be given in another order
    assert {comp.unpack(search.packed(i)) for i in range(search.n)} == \
        {theirs.unpack(s) for s in want["seen"]}
    assert found["in_python"] + found["learned"] < found["states"] // 20  # most: natively


def test_a_seeded_mis_encoding_is_caught(monkeypatch):
    """Equality tests encoded as inequality: the first states' answers disagree."""
    opcode = dict(native._OPCODE)
    opcode["eq"], opcode["ne"] = native._OPCODE["ne"], native._OPCODE["eq"]
    monkeypatch.setattr(native, "_OPCODE", opcode)
    profile, config = small("pkvm")
    with pytest.raises(python.Disagreement):
        native.reachable(profile, config)


def test_a_violated_property_comes_with_a_shortest_path():
    profile, config = small("toy")
    broken = mutate(profile, "reclaim_no_scrub")
    found = native.reachable(broken, config, properties=True)
    explored = explore(broken, config, symmetry=False)
    want = sorted({v.property for v in explored.violations if v.property in
                   {p.name for p in broken.always if p.state}})
    assert found["violated"] == want != []
    for name, path in found["paths"].items():
        shortest = min(len(v.trace) for v in explored.violations if v.property == name)
        assert len(path) == shortest
        state = broken.initial_state(config)  # the path replays to a violating state
        for text in path:
            call = next(c for c in broken.calls(config) if str(c) == text)
            state = broken.step(config, state, call).state
        prop = next(p for p in broken.always if p.name == name)
        assert not prop.state(broken.view(config, state))


def test_cells_widen_for_a_value_that_needs_it():
    profile, config = small("toy")
    search = native.NativeSearch(python.Compiled(profile, config))
    first = search.comp.pack(profile.initial_state(config))
    search._widen(len(first))
    search._add(first, -1, -1)
    assert search.rows.dtype == np.int8
    wide = (first[0], 300, -2, *first[3:])
    search._add(wide, 0, 0)
    assert search.rows.dtype == np.int16
    assert [search.packed(i) for i in range(search.n)] == [first, wide]


def test_a_state_its_trees_do_not_learn_is_stepped_in_python(monkeypatch):
    """The loop's last resort: trees that learn nothing from a state (as a path left to the
    concrete reading) leave it to the Python backend, with the same states and edges."""
    profile, config = machine("pkvm", "--pages", "2", "--guests", "1", "--protected", "1")
    monkeypatch.setattr(python.Compiled, "learn", lambda self, slot, packed: None)
    found = native.reachable(profile, config, properties=True)
    assert (found["states"], found["edges"]) == (7738, 50806)
    assert found["in_python"] == found["learned"] > 0


def test_the_loop_is_compiled_again_after_a_change_to_the_kernel_it_inlines(tmp_path):
    """numba's cache knows the loop's own file only: that file takes the time of the symmetry
    kernel it inlines when the kernel is newer (and keeps its own otherwise)."""
    here, kernel = tmp_path / "native.py", tmp_path / "orbits.py"
    here.write_text("loop")
    kernel.write_text("kernel")
    os.utime(here, (0, 1_000))
    os.utime(kernel, (0, 2_000))
    native._dated_after_the_kernel(here, kernel)
    assert here.stat().st_mtime == 2_000
    os.utime(here, (0, 3_000))
    native._dated_after_the_kernel(here, kernel)
    assert here.stat().st_mtime == 3_000


def test_the_rows_are_the_same_on_one_thread_and_on_two(monkeypatch):
    """Rows are expanded a batch at a time, a share per thread, and their successors stored in
    order after: the same ids, parents and calls on one thread as on two, whatever the batch
    (one of 7 rows ends mid-frontier and stops for more room mid-batch)."""
    profile, config = machine("pkvm", "--pages", "2", "--guests", "1", "--protected", "1")
    runs = []
    for threads, batch in ((1, native.BATCH), (2, native.BATCH), (2, 7)):
        monkeypatch.setattr(native, "THREADS", threads)
        monkeypatch.setattr(native, "BATCH", batch)
        search = native.reachable(profile, config, symmetry=True)["search"]
        n = search.n
        runs.append((n, search.edges, search.rows[:n].tolist(), search.parent[:n].tolist(),
                     search.via[:n].tolist()))
    assert runs[0][0] == 2628 and runs[0][1] > 0
    assert runs[1] == runs[0] and runs[2] == runs[0]
