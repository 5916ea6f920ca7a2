"""The prover on the gmem profile: a sample of obligations is proved for every VM type and any
number of gfns, slots and files; a seeded bug is not; the strengthening holds where the
explorer goes; the bounded checks find their witnesses."""

from model.explorer import explore
from model.extensions import mutate
from model.prover import INIT, Obligation, discharge_all, obligations
from tests.gmem.helpers import GMEM, SMALL

SAMPLE = [("host_never_private", "host_write"), ("zero_before_reuse", "punch"),
          ("binding_within_slot", "delete_slot"), ("kinds_agree", "set_attributes"),
          ("vm_outlives_files", "close_file"), ("no_stale_leaf", "guest_read"),
          ("gslot_ok", "bind_slot"), ("check_then_commit", "guest_write")]


def test_obligations_cover_every_transition_and_property():
    obs = obligations(GMEM)
    assert {o.transition for o in obs} == set(GMEM.transitions) | {INIT}
    assert len(obs) == 10 + 4 + 14 * len(GMEM.transitions) - 3  # state props at init


def test_a_sample_is_proved():
    obs = [Obligation(p, t) for p, t in SAMPLE] + [Obligation("types_ok", INIT)]
    results = discharge_all(GMEM, obs, jobs=2)
    assert [r.status for r in results] == ["proved"] * len(obs), \
        [(r.property, r.transition, r.status) for r in results]


def test_a_seeded_bug_is_not_proved():
    profile = mutate(GMEM, "vm_destroyed_with_files")
    [result] = discharge_all(profile, [Obligation("vm_outlives_files", "close_vm")], jobs=1,
                             budget=5_000_000)
    assert result.status != "proved"


def test_strengthening_holds_on_explored_states():
    result = explore(GMEM, SMALL)
    for prop in GMEM.prover.strengthening:
        assert all(prop.state(GMEM.view(SMALL, s)) for s in result.states), prop.name


def test_bounded_checks_witness():
    from model.bmc import run_checks
    reaches = run_checks(GMEM)
    assert reaches and all(r.witnessed for _, r in reaches), [(r.property, r.path) for _, r in reaches]
