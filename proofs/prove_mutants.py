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
# Refuted as `pkvm-model prove --mutant` does it: whatever z3 says (unknown, or an inductive
# counterexample), the fallback (a search of the default machine for a reachable state where a
# call of the mutated transition breaks the property) shows the obligation violated with a
# concrete run. One obligation per mutant of the catalog: the property the search finds broken
# first (a mutant not listed here, say a new one, must have some obligation refuted).
REFUTED_BY_SEARCH = {
    "unshare_hyp_ignores_pins": "pins",
    "donate_hyp_checks_first_page": "single_owner",
    "share_guest_skips_guest_check": "sharing_pairs",
    "share_guest_count_overflow": "range_hygiene",
    "share_guest_to_protected": "guest_kinds",
    "unshare_guest_keeps_count": "sharing_pairs",
    "force_reclaim_no_zeroing": "confidentiality",
    "force_reclaim_no_poison": "single_owner",
    "reclaim_dying_no_zeroing": "confidentiality",
    "punch_skips_unmap": "single_owner",
    "donate_guest_no_annotation": "identity_map",
    "unpin_keeps_mapping": "hyp_mappings",
    "donate_host_keeps_hyp_mapping": "hyp_mappings",
    "share_ffa_from_shared": "sharing_pairs",
    "unshare_hyp_updates_before_check": "check_then_commit",
    "share_hyp_skips_host_check": "single_owner",
    "share_hyp_allows_nomap": "range_hygiene",
    "teardown_ignores_refs": "vm_references",
    "share_guest_skips_memcache_check": "no_hyp_panic",
    "donate_hyp_wrapped_range_end": "range_hygiene",
    "finalize_without_reclaim": "nothing_stranded",
    "share_hyp_keeps_record_on_failure": "host_records",
    "unshare_hyp_drops_record_on_failure": "host_records",
    "share_guest_records_before_hypercall": "host_records",
    "unshare_guest_drops_record_on_failure": "host_records",
}


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


@pytest.mark.parametrize("mutant", list(PKVM.mutants))
def test_prover_refutes_every_mutant_with_its_fallback(mutant):
    """Issue 11: `prove --mutant NAME` shows a violated obligation with a concrete
    counterexample for (at least three quarters of) the catalog, and never `proved`: a
    reachable run breaking an obligation is one z3 cannot prove."""
    from model.commands.refute import refute_all
    from model.prover import Result, obligations

    transition = PKVM.mutants[mutant].transition
    profile = mutate(PKVM, mutant)
    props = [REFUTED_BY_SEARCH[mutant]] if mutant in REFUTED_BY_SEARCH else \
        [o.property for o in obligations(profile) if o.transition == transition]
    results = refute_all(profile, [Result(p, transition, "unknown", 0.0) for p in props])
    violated = [r for r in results if r.status == "violated"]
    assert violated, f"no obligation of {transition} refuted for {mutant}"
    for r in violated:
        cex = r.counterexample
        assert cex["concrete"] and cex["reachable"]
        assert cex["call"].startswith(transition) and cex["trace"][-1] == cex["call"]


def test_the_search_table_names_mutants_of_the_catalog():
    assert set(REFUTED_BY_SEARCH) <= set(PKVM.mutants)
