"""The proof obligations as tests: each (property, transition) pair, and the initial state, must
be proved by z3 for every machine size, for every profile with a symbolic reading
(`pkvm-model prove --profile NAME` runs the same list)."""

import pytest

from model.profiles import PROFILES, get
from model.prover import discharge, obligations

OBLIGATIONS = [(name, ob) for name in PROFILES if get(name).prover is not None
               for ob in obligations(get(name))]


@pytest.mark.parametrize("name,ob", OBLIGATIONS,
                         ids=[f"{n}-{ob.transition}-{ob.property}" for n, ob in OBLIGATIONS])
def test_obligation_is_proved(name, ob):
    result = discharge(get(name), ob)
    assert result.status == "proved", result.counterexample or result.status
