"""Which clause breaks: the blame follows the false operand down to a quoted clause."""

from model.clauses import blame_state, blame_step
from model.concrete import ConcreteView
from model.properties import always, always_step


class Pages(ConcreteView):
    """Two pages with an owner and a pin count each: enough to break a nested property."""

    def owner(self, p):
        return self.pre[0][p]

    def pins(self, p):
        return self.pre[1][p]

    def forall_pages(self, pred):
        return all(pred(p) for p in range(2))

    def forall_pairs(self, pred):
        return all(pred(p, q) for p in range(2) for q in range(2))


def pinned_owned(s):
    """A pinned page is owned, and no two pages are pinned."""
    return s.And(
        s.forall_pages(lambda p: s.Implies(s.pins(p) > 0, s.And(s.owner(p) == 1,
                                                                 s.pins(p) < 9))),
        s.forall_pairs(lambda p, q: s.Or(p == q, s.pins(p) == 0, s.pins(q) == 0)))


PROP = always(pinned_owned)


def blame(owners, pins):
    return blame_state(PROP, Pages(None, (owners, pins)))


def test_a_holding_property_has_no_blame():
    assert blame((1, 1), (1, 0)).text() == ""


def test_the_first_false_operand_under_its_antecedent():
    why = blame((1, 0), (0, 3))
    assert why.where == ["page 1"] and why.clause == "s.owner(p) == 1"
    assert why.given == "s.pins(p) > 0"
    assert why.source.endswith("test_clauses.py:27")
    why = blame((1, 1), (0, 9))
    assert why.clause == "s.pins(p) < 9" and why.source.endswith("test_clauses.py:28")


def test_a_false_disjunction_is_the_clause_and_nested_indexes_are_named():
    why = blame((1, 1), (1, 1))
    assert why.where == ["pair 0, 1"]
    assert why.clause == "s.Or(p == q, s.pins(p) == 0, s.pins(q) == 0)" and why.given == ""


def test_a_step_property_is_blamed_on_its_views():
    def unchanged_on_failure(call, errno, pre, post):
        """A failing call leaves the pins."""
        return pre.Implies(errno != 0, post.forall_pages(lambda p: post.pins(p) == pre.pins(p)))

    prop = always_step(unchanged_on_failure)
    before, after = Pages(None, ((1, 1), (0, 0))), Pages(None, ((1, 1), (0, 1)))
    why = blame_step(prop, "pin", -16, before, after)
    assert why.where == ["page 1"] and why.clause == "post.pins(p) == pre.pins(p)"
    assert why.given == "errno != 0"
    assert blame_step(prop, "pin", 0, before, after).text() == ""
