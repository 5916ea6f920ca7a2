"""The toy protocol's views: its reads and writes, concretely and as z3 terms."""

from __future__ import annotations

import z3

from model.concrete import ConcreteView
from model.profiles.toy.protocol import CLEAN, LENDER, State
from model.symbolic import INT, SymbolicReading, SymbolicSteps, fresh

FIELDS = State._fields
INIT = {"owner": LENDER, "pins": 0, "data": CLEAN}


class Concrete(ConcreteView):
    def __init__(self, config, state, transitions=None):
        super().__init__(config, state, transitions)
        self._writes: dict[str, list] = {}

    def is_page(self, p):
        return 0 <= p < self.config.pages

    def page(self, field, p):
        return getattr(self.pre, field)[p] if self.is_page(p) else INIT[field]

    def owner(self, p): return self.page("owner", p)
    def pins(self, p): return self.page("pins", p)
    def data(self, p): return self.page("data", p)

    def forall_pages(self, pred):
        return all(pred(p) for p in range(self.config.pages))

    def exists_page(self, pred):
        return any(pred(p) for p in range(self.config.pages))

    def set(self, field, p, value):
        if not self._live() or not self.is_page(p):
            return
        column = self._writes.setdefault(field, list(getattr(self.pre, field)))
        column[p] = value

    def post(self):
        if not self._writes:
            return self.pre
        return State(*[tuple(self._writes[f]) if f in self._writes else getattr(self.pre, f)
                       for f in FIELDS])


class Machine:
    """The static part: how many pages (any number)."""

    def __init__(self, tag: str = ""):
        self.pages = z3.Int(f"pages{tag}")

    def axioms(self):
        return [self.pages >= 1]


class SymbolicState:
    def __init__(self, arrays: dict):
        self.arrays = arrays

    @classmethod
    def fresh(cls, tag: str):
        return cls({f: z3.Array(f"{f}{tag}", INT, INT) for f in FIELDS})

    def same_as(self, other):
        return z3.And(*[self.arrays[f] == other.arrays[f] for f in FIELDS])


def initial(machine: Machine) -> SymbolicState:
    return SymbolicState({f: z3.K(INT, z3.IntVal(int(INIT[f]))) for f in FIELDS})


class Symbolic(SymbolicReading):
    def __init__(self, machine: Machine, state: SymbolicState, transitions=None):
        super().__init__()
        self.machine, self.state, self.transitions = machine, state, transitions or {}

    def is_page(self, p):
        return z3.And(p >= 0, p < self.machine.pages)

    def page(self, field, p):
        return z3.If(self.is_page(p), z3.Select(self.state.arrays[field], p), int(INIT[field]))

    def owner(self, p): return self.page("owner", p)
    def pins(self, p): return self.page("pins", p)
    def data(self, p): return self.page("data", p)

    def forall_pages(self, pred):
        return self._quantify("page", self.is_page, pred)

    def exists_page(self, pred):
        return self._quantify("page", self.is_page, pred, universal=False)

    def same_state(self, other):
        return self.state.same_as(other.state)


class SymbolicStep(SymbolicSteps, Symbolic):
    def set(self, field, p, value):
        arr, q = self.post[field], fresh("q")
        on = z3.And(self._on(), self.is_page(p))
        self.post[field] = z3.Lambda([q], z3.If(z3.And(on, q == p), value, z3.Select(arr, q)))

    def post_state(self) -> SymbolicState:
        return SymbolicState(dict(self.post))
