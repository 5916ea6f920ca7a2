"""Every seeded bug is caught by an always property of an exploration (the mutant's machine:
the default one, narrowed, with the mutant's own configuration changes)."""

from dataclasses import replace

import pytest

from model.explorer import explore
from model.extensions import mutate
from tests.gmem.helpers import GMEM

ALWAYS = {p.name for p in GMEM.always}


def test_at_least_eight_mutants():
    assert len(GMEM.mutants) >= 8


@pytest.mark.parametrize("name", sorted(GMEM.mutants))
def test_mutant_is_killed(name):
    profile = mutate(GMEM, name)
    config = profile.adjust(replace(GMEM.default_config(), gfns=2, slots=2))
    result = explore(profile, config, stop_on_violation=True, graph_checks=False)
    assert {v.property for v in result.violations} & ALWAYS, name
