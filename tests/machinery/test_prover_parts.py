"""The ground tier asks a property one conjunct at a time: the split must keep every conjunct
(a violation in any one of them is still found) and only split conjunctions."""

import z3

from model import prover, symbolic
from model.extensions import mutate
from model.forks import run_forked
from model.profiles import get


def test_conjuncts_flatten_nested_ands_only():
    a, b, c, d = z3.Bools("a b c d")
    parts = prover.conjuncts(z3.And(a, z3.And(b, z3.Implies(c, z3.And(a, d)))))
    assert [str(p) for p in parts] == ["a", "b", "Implies(c, And(a, d))"]
    assert prover.conjuncts(z3.Or(a, b)) == [z3.Or(a, b)]


def test_a_violation_in_a_later_conjunct_is_found(monkeypatch):
    """Every part is asked: with the quantified tier out of the way (a budget of one unit), a pKVM mutant
    that breaks a conjunct other than the first is still refuted by the ground tier."""
    monkeypatch.setattr(prover, "QUICK", 1)  # (0 would mean no limit)
    seen = []
    ground = prover._ground

    def spy(q, case, limit, part):
        seen.append(part)
        return ground(q, case, limit, part)

    monkeypatch.setattr(prover, "_ground", spy)
    profile = mutate(get("pkvm"), "share_hyp_skips_host_check")
    result = prover._discharge_one(profile, prover.Obligation("single_owner", "host_share_hyp"),
                                   True, prover.BUDGET)
    assert result.status == "violated"
    assert max(seen) > 0  # the violated conjunct was not the first one asked


def test_a_proof_only_property_is_never_made_concrete(monkeypatch):
    """pKVM's ghost bijection reads slots a concrete state does not have: a ground-tier model
    of its obligation stays open, and the profile is never asked to check it on a concrete view
    (`mutants --prove` once died there with an AttributeError from a worker)."""
    profile = get("pkvm")
    assert "ghost_borrowers" in prover.proof_only(profile)
    q = prover._Query(profile, prover._property(profile, "ghost_borrowers"),
                      profile.transitions["host_share_guest"], True)
    monkeypatch.setattr(q, "question", lambda case, tier, part=None: [])
    monkeypatch.setattr(prover, "_check", lambda facts, limit, apart=False: (z3.sat, None))

    def concretize(*_):
        raise AssertionError("a proof-only property was made concrete")

    monkeypatch.setattr(q, "hooks", type("Hooks", (), {"concretize": staticmethod(concretize)}))
    assert prover._ground(q, z3.BoolVal(True), 1, 0) == (z3.sat, None)


def test_side_work_shares_the_obligations_pool():
    """`prove` runs its bounded checks in the obligations' pool: each side function's value
    comes back in order, and the obligations' results are those of `discharge_all`."""
    profile = get("toy")
    obs = prover.obligations(profile)[:4]
    results, values = prover.discharge_with(profile, obs, [lambda: "a", lambda: 2], jobs=2)
    assert values == ["a", 2]
    plain = prover.discharge_all(profile, obs, jobs=2)
    assert [(r.property, r.transition, r.status) for r in results] == \
        [(r.property, r.transition, r.status) for r in plain]



def test_the_failing_case_is_left_out_only_when_a_failure_changes_nothing(monkeypatch):
    """A state property holds after a failing call that leaves every field as it was: its
    failing case is not asked. A call that writes before its checks keeps its failing case."""
    asked = []
    cases = prover._cases

    def spy(q, covered, failing=True):
        asked.append(failing)
        return cases(q, covered, failing)

    monkeypatch.setattr(prover, "_cases", spy)
    base = get("pkvm")
    bug = mutate(base, "unshare_hyp_updates_before_check")  # writes the host state, then checks
    ob = prover.Obligation("single_owner", "host_unshare_hyp")
    assert prover._discharge_one(base, ob, True, prover.BUDGET).status == "proved"
    assert asked == [False]
    assert prover._transition_frame(bug, "host_unshare_hyp", True, prover.BUDGET, True) \
        == prover.Frame((), False)


def test_a_transitions_frame_asked_once_serves_every_property():
    """The obligations forked with their transition's `Frame` end as those asking it
    themselves: the hole punch through its callees (`via`), the kernel's order with its failing
    case left out; a call that writes before its checks keeps it, and is never proved
    ("violated" where z3's model of it fits a small machine: within the budget that depends on
    what the z3 context saw before, here the earlier tests')."""
    base = get("pkvm")
    for transition in ("hole_punch", "host_unshare_hyp"):
        obs = [prover.Obligation(p, transition) for p in ("type_ok", "pins")]
        framed = prover.discharge_all(base, obs, jobs=2)
        alone = {}  # each in a fork too, asking its own frame
        run_forked(obs, lambda ob: prover._discharge_one(base, ob, True, prover.BUDGET), 2,
                   alone.__setitem__)
        assert [(r.status, r.via) for r in framed] == \
            [(alone[i].status, alone[i].via) for i in range(len(obs))]
        assert {r.status for r in framed} == {"proved"}
        assert framed[0].via == (("host_force_reclaim_page_guest", "host_unshare_guest")
                                 if transition == "hole_punch" else ())
    bug = mutate(base, "unshare_hyp_updates_before_check")
    ob = prover.Obligation("single_owner", "host_unshare_hyp")
    assert prover.discharge_all(bug, [ob], jobs=2)[0].status != "proved"


def test_a_ground_question_is_the_same_whatever_was_built_before():
    """The ground tier's questions are asked in a context of their own, their names numbered
    from 0 (`restart_names`): builds of one question, with other terms made in between, must
    give the same text, or z3's time on it would depend on the process's history; and so must
    a build on the transition's step run once for all its obligations (`_stepped`)."""
    profile = get("pkvm")

    def question():
        q = prover._Query(profile, prover._property(profile, "single_owner"),
                          profile.transitions["host_share_hyp"], True)
        return [f.sexpr() for f in q.question(z3.BoolVal(True), "ground", 0)]

    prover._STEPS.clear()
    first = question()  # the step run here
    symbolic.fresh("elsewhere"), symbolic.fresh("elsewhere")
    assert question() == first  # the step shared
    other = prover._Query(profile, prover._property(profile, "sharing_pairs"),
                          profile.transitions["host_share_hyp"], True)
    other.question(z3.BoolVal(True), "ground", 0)
    assert question() == first


def test_the_pools_take_their_skolem_terms_from_the_invariants_with_an_existential(monkeypatch):
    """The hypothesis' Skolem terms name entries for the pools; only an invariant with an
    existential has any, so the first pass builds those alone (`naming_invariants`): the pools
    must be the ones every invariant would give."""
    profile = get("pkvm")
    assert [p.name for p in prover.naming_invariants(profile)] == ["sharing_pairs"]

    def pools():
        q = prover._Query(profile, prover._property(profile, "sharing_pairs"),
                          profile.transitions["host_unshare_guest"], True)
        q.goal(None)
        return {kind: [str(t) for t in terms] for kind, terms in q.pools.items()}

    fewer = pools()
    assert any("sk" in t for t in fewer["entry"])  # named by a Skolem term
    monkeypatch.setattr(prover, "naming_invariants", prover.state_properties)
    assert pools() == fewer


def test_a_plain_question_leaves_nothing_behind_and_an_unknown_is_asked_again(monkeypatch):
    """The quantified tier asks on top of one solver per process that holds the plain
    invariants (`_plain_check`): each question's facts go with its scope, and what that
    solver leaves unknown within its small budget is asked again of a fresh solver."""
    profile, x = get("toy"), z3.Int("x")
    assert prover._plain_check(profile, [x == 1, x == 2], prover.QUICK)[0] == z3.unsat
    verdict, model = prover._plain_check(profile, [x == 1], prover.QUICK)
    assert verdict == z3.sat and model.eval(x).as_long() == 1
    monkeypatch.setattr(prover, "SCOPED", 1)
    assert prover._plain_check(profile, [x * x == 2], prover.QUICK)[0] == z3.unsat


def test_a_transitions_obligations_go_a_few_to_a_fork_after_the_initial_ones(monkeypatch):
    """The initial state's obligations come first (a run stopped early has answers), then each
    transition's, at most `CHUNK` to a fork, in their order; each result comes back once."""
    profile, forked = get("pkvm"), []

    def spy(items, work, jobs, on_done, tick=None):
        forked.extend(items)
        run_forked(items, work, jobs, on_done, tick)

    monkeypatch.setattr(prover, "run_forked", spy)
    obs = [ob for ob in prover.obligations(profile)
           if ob.transition == "host_share_guest"][:prover.CHUNK + 2]
    obs += [ob for ob in prover.obligations(profile) if ob.transition == prover.INIT][:2]
    seen = []
    results = prover.discharge_all(profile, obs, on_result=seen.append)
    assert [[ob.transition for ob in what] for _, what in forked] == [
        [prover.INIT] * 2, ["host_share_guest"] * prover.CHUNK, ["host_share_guest"] * 2]
    assert [r.status for r in results] == ["proved"] * len(obs)
    assert sorted((r.property, r.transition) for r in seen) == sorted(
        (ob.property, ob.transition) for ob in obs)
