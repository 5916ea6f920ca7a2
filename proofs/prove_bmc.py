"""Bounded model checking of the pKVM profile: what must be reachable is, the stranding hazard
of an undisciplined host among them (to the stated depth, on the stated machines;
model/profiles/pkvm/proof.py, BMC_CHECKS)."""

import pytest

from model.bmc import Unrolling, run_checks
from model.profiles.pkvm import PROFILE as PKVM
from model.profiles.pkvm.proof import STRANDING, STRANDING_CALLS
from model.profiles.pkvm.states import Config


def test_every_bounded_check_comes_out_as_it_should():
    rows = run_checks(PKVM)
    assert [(r.property, r.holds) for _, r in rows if not r.holds] == []
    (hazard,) = [(machine, r) for machine, r in rows if r.property == "stranding_hazard"]
    machine, reach = hazard
    assert "discipline=off" in machine and reach.witnessed
    assert [step.split("(")[0] for step in reach.path] == list(STRANDING_CALLS)


def test_a_search_among_some_calls_never_claims_a_state_unreachable():
    unrolling = Unrolling(PKVM, PKVM.adjust(Config(ram=1, guests=(True,))), 5, STRANDING_CALLS)
    with pytest.raises(ValueError, match="unreachable"):
        unrolling.search(STRANDING, expected=False)
    assert Unrolling(PKVM, PKVM.adjust(Config(ram=1, guests=(True,))), 5,
                     STRANDING_CALLS).search(STRANDING).witnessed is False  # disciplined host
