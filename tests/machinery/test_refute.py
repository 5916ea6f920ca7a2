"""The refutation fallback: what z3 leaves unknown, a bounded search may show violated."""

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
