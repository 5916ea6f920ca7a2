"""Symmetry in the native search (`model/codegen/orbits.py`): one state per orbit, as many as
the explorer's reduced search finds on every profile; each renaming's program is held against
the profile's own `image`, so a renaming written wrong is caught; a violation found among
representatives comes with a run of the model."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from model.codegen import native, orbits, python
from model.explorer import explore
from model.extensions import mutate
from model.renaming import Cell
from tests.codegen.test_codegen import layers, machine

GROUPS = {  # small machines whose group moves pages, VMs, gfns, slots or files
    "toy": ("--pages", "3"),
    "pkvm pages": ("--pages", "2", "--guests", "1", "--protected", "1"),
    "pkvm guests": ("--pages", "1", "--guests", "2", "--protected", "0"),
    "gmem slots": ("--slots", "2", "--gfns", "1", "--files", "1", "--pages", "1"),
    "gmem files": ("--slots", "1", "--gfns", "1", "--files", "2", "--pages", "1"),
}


def _machine(key: str):
    profile, config = machine(key.split()[0], *GROUPS[key])
    if profile.name == "gmem":  # sizes, spans and counts that fit one page
        config = dataclasses.replace(config, sizes=(0, 1), spans=(1,), counts=(0, 1))
    return profile, config


@pytest.mark.parametrize("key", sorted(GROUPS))
def test_the_native_search_finds_one_state_per_orbit_as_the_explorer_does(key):
    profile, config = _machine(key)
    found = native.reachable(profile, config, properties=True, symmetry=True)
    explored = explore(profile, config, symmetry=True)
    unreduced = native.reachable(profile, config)
    assert found["complete"] and found["group_order"] > 1
    assert found["states"] == len(explored.states) < unreduced["states"]
    # every representative is the least image of its orbit: no two lie in one orbit
    search = found["search"]
    comp, symmetry = search.comp, profile.symmetry(config)
    states = [comp.unpack(search.packed(i)) for i in range(search.n)]
    assert len({symmetry.canonical(state) for state in states}) == search.n
    # and the orbits they stand for are every reachable state, each once
    assert sum(symmetry.orbit_size(state) for state in states) == unreduced["states"]
    assert native.check_orbits(search, explored.states) > 0
    assert layers(search) == Counter(explored.depth_of)  # as many orbits at each depth


def _least_image(x, of, stabs) -> tuple:
    """The least of a row and its images, every image made whole: what `canonical` must
    answer without making most of them."""
    least, width = tuple(x), len(x)
    img, vals = np.zeros(width, np.int64), np.zeros(width, np.int64)
    for p in range(of[x[0], 0], of[x[0], 0] + of[x[0], 1]):
        if orbits.applies(x, p, stabs):
            orbits.image(x, p, stabs, img, vals, width)
            least = min(least, tuple(img))
    return least


@pytest.mark.parametrize("key", ["pkvm guests", "gmem files"])
def test_the_least_image_is_found_from_every_state_of_an_orbit(key):
    """`canonical` decides most images from the cells they move, before making any: held
    against every image made whole, from every image of representatives spread over the run."""
    profile, config = _machine(key)
    search = native.reachable(profile, config, symmetry=True)["search"]
    _symmetric, of, stabs = search._symmetry()
    checked = 0
    for i in np.linspace(0, search.n - 1, min(search.n, 120), dtype=int):
        rep = search.wide_row(search.packed(int(i)))
        width = len(rep)
        img, vals = np.zeros(width, np.int64), np.zeros(width, np.int64)
        for p in range(of[rep[0], 0], of[rep[0], 0] + of[rep[0], 1]):
            if not orbits.applies(rep, p, stabs):
                continue
            orbits.image(rep, p, stabs, img, vals, width)
            got = img.copy()
            orbits.canonical(got, of, stabs, np.zeros((4, width), np.int64), width,
                             -2**62, 2**62)
            assert tuple(got) == _least_image(img.copy(), of, stabs) == tuple(rep)
            checked += 1
    assert checked > 100


def test_an_image_equal_to_the_least_so_far_before_a_sorted_tuple_is_compared_past_it():
    """Two renamings of one 7-cell shape whose cells 3 and 4 are a sorted tuple: B swaps cells
    1, 2 and cells 6, 7; P swaps cells 1, 2 only. B's image is less than the row, P's equals
    it up to the tuple and is less past it, where it is the row's and B's is not."""
    plain = lambda at: [at, -1, 0, 0, -1, 0, 0, 0]  # noqa: E731  (cell at a row position)
    cells = np.array([plain(a) for a in (2, 1, 3, 4, 5, 7, 6)] +
                     [plain(a) for a in (2, 1, 3, 4, 5, 6, 7)], dtype=np.int64)
    programs = np.array([[0, 0, 0, 0, 7, 0, 1, 3, 0, 4],  # shape, conditions, cells, sorts,
                         [0, 0, 0, 7, 7, 0, 1, 3, 4, 2]],  # final, moved
                        dtype=np.int64)
    stabs = (programs, np.zeros((1, 3), np.int64), cells, np.array([[3, 1, 2]], np.int64),
             np.zeros(1, np.int64), np.array([0, 1, 5, 6, 0, 1], np.int64),
             np.arange(7, dtype=np.int64))
    of = np.array([[0, 2]], dtype=np.int64)
    row = np.array([0, 1, 0, 0, 0, 0, 0, 1], dtype=np.int64)
    assert _least_image(row, of, stabs) == (0, 0, 1, 0, 0, 0, 0, 1)  # P's
    assert orbits.canonical(row, of, stabs, np.zeros((4, 8), np.int64), 8, -9, 9) == 1
    assert tuple(row) == (0, 0, 1, 0, 0, 0, 0, 1)


def test_a_renaming_that_forgets_to_rename_a_value_is_caught(monkeypatch):
    """pKVM's programs renaming the guests' pages without the pfns their leaves map."""
    from model.profiles.pkvm.symmetry import Symmetry
    renaming = Symmetry.renaming

    def forgetful(self, at, *element):
        image = renaming(self, at, *element)
        s2 = tuple(tuple(leaf._replace(pfn=Cell(leaf.pfn.at)) for leaf in leaves)
                   for leaves in image.state.s2)
        return dataclasses.replace(image, state=image.state._replace(s2=s2))

    monkeypatch.setattr(Symmetry, "renaming", forgetful)
    profile, config = _machine("pkvm pages")
    with pytest.raises(python.Disagreement, match="renaming"):
        native.reachable(profile, config, symmetry=True)


def test_a_renaming_that_does_not_sort_is_caught(monkeypatch):
    from model.profiles.pkvm.symmetry import Symmetry
    renaming = Symmetry.renaming
    monkeypatch.setattr(Symmetry, "renaming", lambda self, at, *element: dataclasses.replace(
        renaming(self, at, *element), sorted=()))
    profile, config = _machine("pkvm pages")
    with pytest.raises(python.Disagreement, match="renaming"):
        native.reachable(profile, config, symmetry=True)


def test_a_violation_among_representatives_comes_with_a_run_of_the_model():
    profile, config = _machine("toy")
    broken = mutate(profile, "reclaim_no_scrub")
    found = native.reachable(broken, config, properties=True, symmetry=True)
    explored = explore(broken, config, symmetry=False)
    want = sorted({v.property for v in explored.violations if v.property in
                   {p.name for p in broken.always if p.state}})
    assert found["violated"] == want != []
    for name, path in found["paths"].items():
        assert len(path) == min(len(v.trace) for v in explored.violations if v.property == name)
        state = broken.initial_state(config)
        for text in path:
            call = next(c for c in broken.calls(config) if str(c) == text)
            state = broken.step(config, state, call).state
        prop = next(p for p in broken.always if p.name == name)
        assert not prop.state(broken.view(config, state))
