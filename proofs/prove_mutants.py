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
# Refuted as `pkvm-model prove --mutant` does it: z3 leaves the obligation unknown, and the
# fallback (a search of the default machine for a reachable state where the call breaks the
# property) shows it violated with a concrete run.
REFUTED_BY_SEARCH = [
    ("share_hyp_allows_nomap", "range_hygiene"),
    ("teardown_ignores_refs", "vm_references"),
]


def _discharge(mutant: str, prop: str):
    """(the mutated transition, the mutant profile, the obligation's result)."""
    transition = PKVM.mutants[mutant].transition
    profile = mutate(PKVM, mutant)
    return transition, profile, discharge(profile, Obligation(prop, transition),
                                          profile.disciplined(profile.adjust(
                                              profile.default_config())))


@pytest.mark.parametrize("mutant,prop", REFUTED)
def test_prover_refutes_mutant(mutant, prop):
    transition, _profile, result = _discharge(mutant, prop)
    assert result.status == "violated"
    cex = result.counterexample
    assert cex["call"].startswith(transition)
    assert any(cells["changed"] for cells in cex["cells"].values())


@pytest.mark.parametrize("mutant,prop", REFUTED_BY_SEARCH)
def test_prover_refutes_mutant_with_its_fallback(mutant, prop):
    from model.commands.refute import refute

    transition, profile, result = _discharge(mutant, prop)
    if result.status != "violated":
        result = refute(profile, result)
    assert result.status == "violated"
    assert result.counterexample["call"].startswith(transition)
