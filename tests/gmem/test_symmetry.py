"""The canonical form of `GmemSymmetry` is a function of the orbit: on reachable states (of the
profile and of the in-place conversion extension, whose per-index fields move with their file),
every renaming of slots and created files has the same representative, and that representative
is the least image of the state."""

import itertools
import random
from pathlib import Path

import pytest

from model.explorer import explore
from model.extensions import load
from model.profiles.gmem.symmetry import GmemSymmetry
from tests.gmem.helpers import GMEM, machine

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PROPOSAL = load(GMEM, str(EXAMPLES / "gmem_in_place_conversion.py"))

MACHINES = {
    "two slots": (GMEM, machine(slots=2)),
    "two files, two slots": (GMEM, machine(vm="x86", files=2, slots=2)),
    "two files, three slots": (GMEM, machine(files=2, slots=3, gfns=3, pages=1, sizes=(0, 1))),
    "extension, two files": (PROPOSAL, machine(files=2, slots=2, pages=1, sizes=(0, 1))),
}


def sample(profile, config, count=400, seed=9):
    """Reachable states (with two files created among them), searched without symmetry."""
    states = list(explore(profile, config, symmetry=False, max_states=6000,
                          graph_checks=False).states)
    return random.Random(seed).sample(states, min(count, len(states)))


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_renaming_has_the_same_representative(name):
    profile, config = MACHINES[name]
    sym = GmemSymmetry(config, profile.fields)
    states = sample(profile, config)
    assert config.files == 1 or any(s.nfiles == config.files for s in states)
    slot_perms = list(itertools.permutations(range(config.slots)))
    file_perms = list(itertools.permutations(range(config.files)))
    for state in states:
        canon = sym.canonical(state)
        images = {sym.image(state, p, f) for p in slot_perms for f in file_perms}
        assert canon == min(images, key=tuple)
        assert sym.orbit_size(state) == len(images)
        for image in images:
            assert sym.canonical(image) == canon


def test_a_renaming_moving_an_uncreated_file_changes_no_file():
    sym = GmemSymmetry(machine(files=2, slots=2), GMEM.fields)
    state = GMEM.initial_state(machine(files=2, slots=2))
    assert state.nfiles == 0
    assert sym.image(state, (0, 1), (1, 0)) == state
    assert sym.orbit_size(state) == 1 and sym.canonical(state) is state
