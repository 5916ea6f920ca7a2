"""The refutation fallback: what z3 leaves unknown, a bounded search may show violated."""

import json

from model.commands.refute import refute
from model.extensions import mutate
from model.profiles import get
from model.prover import Result

TOY = get("toy")


def test_an_unknown_obligation_of_a_mutant_gets_a_reachable_counterexample():
    result = refute(mutate(TOY, "reclaim_ignores_pins"),
                    Result("pinned_is_borrowed", "reclaim", "unknown", 0.0))
    assert result.status == "violated"
    cex = result.counterexample
    assert cex["reachable"] and cex["concrete"]
    assert cex["trace"] == ["lend(page=0)", "pin(page=0)", "reclaim(page=0)"]
    assert cex["call"] == "reclaim(page=0)"
    assert cex["cells"]["page0"]["pre"]["owner"] == "BORROWER"
    assert "owner" in cex["cells"]["page0"]["changed"]


def test_a_step_property_is_refuted_on_the_transition_itself():
    def writes_first(ext):
        original = ext.original("unpin")

        @ext.override("unpin")
        def unpin(s, page):
            s.set("data", page, 1)
            yield from original(s, page)

    from model.extensions import extend
    result = refute(extend(TOY, "t", writes_first), Result("check_then_commit", "unpin", "unknown", 0.0))
    assert result.status == "violated" and result.counterexample["errno"] != 0


def test_a_true_obligation_stays_unknown_and_proofs_stay_proved():
    unknown = Result("pinned_is_borrowed", "reclaim", "unknown", 0.0)
    assert refute(TOY, unknown) is unknown  # a bounded search proves nothing
    proved = Result("pinned_is_borrowed", "reclaim", "proved", 0.0)
    assert refute(mutate(TOY, "reclaim_ignores_pins"), proved) is proved


def test_counterexamples_show_what_matters_and_say_whether_they_are_reachable():
    """Run as a user would: the JSON has every cell, the text only the involved ones."""
    from tests.test_cli_bad_input import cli

    done = cli("prove", "--profile", "toy", "--mutant", "reclaim_ignores_pins", "--json")
    assert done.returncode == 1
    (o,) = [o for o in json.loads(done.stdout)["obligations"] if o["status"] == "violated"]
    cex = o["counterexample"]
    assert cex["where"] == "page 0" and cex["clause"].startswith("s.owner(p) == BORROWER is false")
    assert set(cex["cells"]) == set(cex["initial"]) == {"page0", "page1"}
    text = cli("prove", "--profile", "toy", "--mutant", "reclaim_ignores_pins").stdout
    assert "reachable: the shortest run from the initial state is lend(page=0)" in text
    assert "not involved, left out: page1" in text and "clause: s.owner(p) == BORROWER" in text
    assert "┃ owner" in text and "┃ data" not in text  # data as initially: left out


def test_an_inductive_counterexample_says_its_pre_state_need_not_be_reachable():
    from tests.test_cli_bad_input import cli

    done = cli("prove", "--mutant", "share_hyp_skips_host_check", "--transition",
               "host_share_hyp", "--no-refute")
    assert done.returncode == 1
    assert "the pre-state satisfies every invariant but need not be reachable" in done.stdout
    assert "clause: " in done.stdout and "left out:" in done.stdout


def test_a_proof_only_property_is_left_as_it_is_and_spoils_no_other_search():
    """The obligations of one transition are refuted by one search; the ghost bijection, which
    the concrete reading cannot evaluate, is not among its checks (it would crash the search,
    and the other obligation would lose its run)."""
    from model.commands.refute import refute_all

    profile = mutate(get("pkvm"), "unshare_hyp_ignores_pins")
    ghost = Result("ghost_borrowers", "host_unshare_hyp", "unknown", 0.0)
    pins = Result("pins", "host_unshare_hyp", "unknown", 0.0)
    after = refute_all(profile, [ghost, pins])
    assert after[0] is ghost
    assert after[1].status == "violated" and after[1].counterexample["reachable"]
    assert after[1].counterexample["call"].startswith("host_unshare_hyp")
