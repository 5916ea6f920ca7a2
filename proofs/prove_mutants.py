"""A proof that cannot fail is no proof: the prover must refute seeded bugs, naming the broken
property and giving a counterexample for unbounded pages and guests."""

import pytest

from model.mutants import MUTANTS
from model.prover import Obligation, discharge

# (mutant, the property whose obligation on the mutated transition must be violated)
REFUTED = [
    ("unshare_hyp_ignores_pins", "pins"),
    ("force_reclaim_no_zeroing", "confidentiality"),
    ("donate_guest_no_annotation", "identity_map"),
    ("unpin_keeps_mapping", "hyp_mappings"),
    ("unshare_hyp_updates_before_check", "check_then_commit"),
]


@pytest.mark.parametrize("mutant,prop", REFUTED)
def test_prover_refutes_mutant(mutant, prop):
    ob = Obligation(prop, MUTANTS[mutant].transition)
    result = discharge(ob, mutant)
    assert result.status == "violated"
    cex = result.counterexample
    assert cex["call"].startswith(MUTANTS[mutant].transition)
    assert any(page["changed"] for page in cex["pages"].values()) or cex["entries"]
