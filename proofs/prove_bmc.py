"""Bounded model checking of the pKVM profile: what must be reachable is, and the stranding
hazard is reachable without the host discipline and unreachable with it (to the stated depth,
on the stated machines; model/profiles/pkvm/proof.py, BMC_CHECKS)."""

from model.bmc import run_checks
from model.profiles.pkvm import PROFILE as PKVM


def test_every_bounded_check_comes_out_as_it_should():
    rows = run_checks(PKVM)
    assert [(r.property, r.holds) for _, r in rows if not r.holds] == []
    hazard = [(machine, r) for machine, r in rows if r.property == "stranding_hazard"]
    assert hazard and all(r.witnessed and r.path for _, r in hazard)
    disciplined = [(machine, r) for machine, r in rows
                   if r.property == "stranding_hazard_disciplined"]
    assert {machine.split(" guests=")[1] for machine, _ in disciplined} == {"protected", "np"}
    assert all(not r.expected and not r.witnessed and r.depth >= 3 for _, r in disciplined)
    assert all("discipline=off" not in machine for machine, _ in disciplined)
