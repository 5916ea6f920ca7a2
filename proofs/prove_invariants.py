"""The proof obligations as tests: each (property, transition) pair, and the initial state, must
be proved by z3 for unbounded pages and guests (`pkvm-model prove` runs the same list)."""

import pytest

from model.prover import discharge, obligations

OBLIGATIONS = obligations()


@pytest.mark.parametrize("ob", OBLIGATIONS, ids=lambda ob: f"{ob.transition}-{ob.property}")
def test_obligation_is_proved(ob):
    result = discharge(ob)
    assert result.status == "proved", result.counterexample or result.status
