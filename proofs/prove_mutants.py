"""A proof that cannot fail is no proof: the prover must refute seeded bugs, naming the broken
property and giving a counterexample for unbounded pages and guests."""

import pytest

from model.extensions import mutate
from model.profiles.pkvm import PROFILE as PKVM
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
    transition = PKVM.mutants[mutant].transition
    profile = mutate(PKVM, mutant)
    result = discharge(profile, Obligation(prop, transition),
                       profile.disciplined(profile.adjust(profile.default_config())))
    assert result.status == "violated"
    cex = result.counterexample
    assert cex["call"].startswith(transition)
    assert any(cells["changed"] for cells in cex["cells"].values())
