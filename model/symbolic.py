"""The symbolic reading: the same vocabulary as z3 terms, for proofs and bounded checks.

`SymbolicReading` gives the logic and the quantifiers over naturals of a kind (page, entry, vm,
gfn, slot, ...: the profile names them), with the devices the prover's tiers need: witnesses
for the goal's universals, ground instances at term pools, Skolem terms for the hypothesis'
existentials. `SymbolicSteps` adds what running a body needs: each yielded check folds into the
call's errno (the first non-zero one wins), each write is guarded by "no check has failed yet"
(so a write placed before a failing check really happens, as in the concrete reading), and range
checks get a witness for their first failing index. A profile's symbolic views derive from these
and add the reads and writes of its state, as z3 arrays indexed by unbounded integers.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import z3

from model.clauses import blame_state, blame_step

INT = z3.IntSort()
BOOL = z3.BoolSort()
_fresh = itertools.count()


def fresh(name: str, sort=INT):
    return z3.Const(f"{name}!{next(_fresh)}", sort)


def restart_names(start: int = 0) -> None:
    """Number fresh names from `start` (0: afresh). z3's time on a hard query depends on the
    names in it (pKVM's sharing_pairs on a 2 MiB unshare: 9 s, or 150 s with every name 17
    further on), so a query is built from here, whatever was built before it: the prover asks
    it the same way in every run. Safe between queries, which share no terms: every term built
    from fresh names is closed over them but the range witnesses (`each_page`), whose prefix no
    bound name shares. A query that reuses terms built from 0 goes on from `names_made()` then,
    as if it had built them itself."""
    global _fresh
    _fresh = itertools.count(start)


def names_made() -> int:
    """How many fresh names were made since the numbering last started."""
    global _fresh
    made = next(_fresh)
    _fresh = itertools.count(made)
    return made


@contextmanager
def names_from_zero():
    """`restart_names` for the terms built in the block, which every query shares; the numbering
    goes on after it as before, so a query's own witnesses keep names of their own."""
    global _fresh
    saved, _fresh = _fresh, itertools.count()
    try:
        yield
    finally:
        _fresh = saved


def check(facts, rlimit: int, apart: bool = False):
    """(verdict, a model when sat). `apart`: in a z3 context of its own, into which the facts
    are copied. z3's time on a hard query depends on everything its context holds (pKVM's
    sharing_pairs on a 2 MiB unshare: 20 s in `prove`, 250 s once the invariants were built
    before its step); apart, it is asked alike whatever the process built before it. A
    context takes 6 ms to make: the quick tier, a thousand questions settled in milliseconds,
    does without."""
    ctx = z3.Context() if apart else z3.main_ctx()
    solver = z3.Solver(ctx=ctx)
    solver.set("rlimit", rlimit)
    solver.add(*[f.translate(ctx) for f in facts] if apart else facts)
    verdict = solver.check()
    return verdict, solver.model().translate(z3.main_ctx()) if verdict == z3.sat else None


class SymbolicReading:
    """Logic and quantifiers as z3 terms (the profile adds the reads of its state)."""

    def __init__(self):
        self.witness_mode = False  # instantiate top-level quantifiers with witnesses
        self.pools: dict | None = None  # terms per kind to instantiate quantifiers at
        self.ground_only = False  # with pools: the instances alone, without the quantifiers
        self.skolems: list = []  # (kind, terms) named by skolemized existentials
        self._outer: list = []  # the variables (or instance terms) of enclosing quantifiers
        self._sites = 0
        self.witnesses: dict[str, tuple] = {}
        self._depth = 0

    # -- logic -------------------------------------------------------------------------------
    And = staticmethod(lambda *xs: z3.And(*xs) if xs else z3.BoolVal(True))
    Or = staticmethod(lambda *xs: z3.Or(*xs) if xs else z3.BoolVal(False))
    Not = staticmethod(z3.Not)
    Implies = staticmethod(z3.Implies)

    @staticmethod
    def If(c, a, b):
        return z3.If(c, a, b)

    @staticmethod
    def bit(value, mask):
        return (value / mask) % 2 == 1

    def _quantify(self, kind, guard, body, universal=True, arity=1):
        """A quantifier over naturals of one kind.

        In witness mode (the goal, where every universal stands in a positive position), a
        universal becomes fresh witnesses: refuting the goal at them refutes it. With term
        `pools`, a universal of the hypothesis gets its ground instances at the pool's terms
        beside it (instead of it, when `ground_only`), and an existential of the goal becomes
        the disjunction of its instances (when `ground_only`). Both replacements only weaken
        what is assumed, so an unsat answer remains a proof."""
        bound = lambda xs: z3.And(*[x >= 0 for x in xs], guard(*xs))
        if universal and self.witness_mode:
            xs = [z3.Int(f"w_{kind}{len(self.witnesses)}_{i}") for i in range(arity)]
            self.witnesses[f"{kind}{len(self.witnesses)}"] = tuple(xs)
            return z3.Implies(bound(xs), self._nested(body, xs))
        pool = [t if isinstance(t, tuple) else (t,) for t in self.pools.get(kind, ())] \
            if self.pools else []
        if self.pools and universal and not self.witness_mode and (
                self._depth == 0 or arity == 1):
            ground = [z3.Implies(bound(t), self._nested(body, t)) for t in pool]
            if self.ground_only:
                return z3.And(*ground)
            return z3.And(self._quantifier(arity, bound, body, True), *ground)
        if self.pools and not universal and self.witness_mode and self.ground_only:
            return z3.Or(*[z3.And(bound(t), self._nested(body, t)) for t in pool])
        if self.pools and not universal and not self.witness_mode:
            return self._skolemize(kind, arity, bound, body)
        return self._quantifier(arity, bound, body, universal)

    def _skolemize(self, kind, arity, bound, body):
        """An existential of the hypothesis, as Skolem functions of the enclosing variables
        (equisatisfiable), so that the terms it names can be instantiated elsewhere."""
        outer = [x for xs in self._outer for x in xs]
        site = self._sites
        self._sites += 1
        xs = tuple(z3.Function(f"sk{site}_{i}", *([INT] * len(outer)), INT)(*outer)
                   if outer else z3.Int(f"sk{site}_{i}") for i in range(arity))
        self.skolems.append((kind, xs))
        return z3.And(bound(xs), self._nested(body, xs))

    def _quantifier(self, arity, bound, body, universal):
        xs = [fresh("x") for _ in range(arity)]
        inner = z3.Implies(bound(xs), self._nested(body, xs)) if universal else \
            z3.And(bound(xs), self._nested(body, xs))
        return z3.ForAll(xs, inner) if universal else z3.Exists(xs, inner)

    def _nested(self, body, xs):
        self._depth += 1
        self._outer.append(tuple(xs))
        try:
            return body(*xs)
        finally:
            self._depth -= 1
            self._outer.pop()


def evaluate(model, term):
    """The value of a term in a z3 model: a Python int, or a bool for a Boolean term."""
    value = model.eval(term, model_completion=True)
    return z3.is_true(value) if z3.is_bool(value) else value.as_long()


def unique_terms(terms: list) -> list:
    """The terms (or tuples of terms) without structural duplicates, in their first order."""
    seen, out = set(), []
    for t in terms:
        key = tuple(x.get_id() for x in t) if isinstance(t, tuple) else t.get_id()
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


class SymbolicSteps:
    """Mixin for a view that runs one body: checks fold into `errno`, writes are guarded. The
    post-state starts as the pre-state's arrays; the profile's writes replace them."""

    def __init__(self, machine, pre, transitions: dict | None = None):
        super().__init__(machine, pre, transitions)
        self._begin_step()
        self.post = dict(pre.arrays)

    def _begin_step(self):
        self.errno = z3.IntVal(0)
        self.ranges: list = []  # (witness, lo, n, fails) of each range check, see `side_facts`
        self.calls: list = []  # (callee name, args, guard) of each nested call, see `note_call`
        self._guards: list = []

    def _live(self):
        return z3.And(*self._guards) if self._guards else z3.BoolVal(True)

    def _on(self):
        return z3.And(self.errno == 0, self._live())

    def require(self, ok, errno, label=None):
        return z3.If(z3.And(self._live(), z3.Not(ok)), -errno, 0)

    @contextmanager
    def when(self, cond):
        self._guards.append(cond)
        try:
            yield
        finally:
            self._guards.pop()

    def each_page(self, lo, n, errno_of, label=None):
        """Errno of the first failing index of [lo, lo + n): a witness k defined by side facts."""
        k = fresh("first_bad")
        self.ranges.append((k, lo, n, lambda j: errno_of(j) != 0))
        return z3.If(z3.And(self._live(), k != -1), errno_of(k), 0)

    def side_facts(self, pages=(), ground_only=False):
        """What defines each range witness k: the first failing index, or -1 when none fails.
        The "no index before fails" facts also come as ground instances at `pages`."""
        facts = []
        for k, lo, n, fails in self.ranges:
            def none_fail(hi, lo=lo, fails=fails):
                j = fresh("j")
                inside = lambda x: z3.And(x >= lo, x < hi)
                whole = z3.ForAll([j], z3.Implies(inside(j), z3.Not(fails(j))))
                ground = [z3.Implies(inside(t), z3.Not(fails(t))) for t in pages]
                return z3.And(*ground) if ground_only else z3.And(whole, *ground)
            facts.append(z3.Or(z3.And(k >= lo, k < lo + n, fails(k), none_fail(k)),
                               z3.And(k == -1, none_fail(lo + n))))
            facts.append(z3.Implies(k != -1, z3.And(k >= lo, k < lo + n, fails(k))))
        return facts

    def note_call(self, name, args):
        """A nested call, with the guard of the branch that makes it."""
        self.calls.append((name, tuple(args), self._live()))

    def fold(self, errno):
        """A yielded check: the call's errno is the first non-zero one."""
        self.errno = z3.If(self.errno != 0, self.errno, errno)


class ProofHooks:
    """The part of a profile's prover hooks that only wires its symbolic classes: a profile sets
    `Machine`, `State` (with `fresh(tag)`), `Reading`, `Step` and `initial`, and adds the rest
    (pools, cases, concretize, counterexample, ...)."""

    Machine = State = Reading = Step = None
    initial = None

    def machine(self, tag: str = ""):
        return self.Machine(tag)

    def fresh_state(self, tag: str):
        return self.State.fresh(tag)

    def reading(self, machine, state, transitions=None):
        return self.Reading(machine, state, transitions)

    def stepping(self, machine, pre, transitions=None):
        return self.Step(machine, pre, transitions)

    @staticmethod
    def cases(q, ok) -> list:
        """The query's succeeding call, as the cases asked apart (a profile may split it)."""
        return [ok]

    @staticmethod
    def small_models(q) -> list:
        """What makes a model fit a small machine, the smallest first (nothing, unless the
        profile says)."""
        return []

    @staticmethod
    def concretize(q, model, profile):
        """A ground-tier model as a concrete counterexample, or None (the profile's to say)."""
        return None

    @staticmethod
    def concrete_counterexample(profile, config, pre, call, outcome, prop, focus) -> dict:
        """A counterexample made concrete, in the explorer's words: each object's cells before
        and after the call and in the same machine's initial state (so a report can leave out
        what is as it always starts), and where and by which clause the property breaks. Its
        pre-state satisfies every invariant; it need not be reachable."""
        snapshot = profile.presenter.snapshot
        before, after = snapshot(config, pre, focus), snapshot(config, outcome.state, focus)
        start = snapshot(config, profile.initial_state(config), focus)
        pre_view, post_view = profile.view(config, pre), profile.view(config, outcome.state)
        why = blame_state(prop, post_view) if prop.state else \
            blame_step(prop, call.name, outcome.errno, pre_view, post_view)
        cells = {name: {"pre": before.get(name, {}), "post": cells,
                        "changed": sorted(k for k in cells if before.get(name, {}).get(k) != cells[k])}
                 for name, cells in after.items()}
        return {"call": str(call), "errno": outcome.errno,
                "machine": profile.presenter.machine_text(config), "concrete": True,
                "reachable": False, "where": "; ".join(why.where), "clause": why.text(),
                "initial": start, "cells": cells}


def run(transition, view, args):
    """Interpret one transition body on a symbolic step view; the view then holds the errno,
    the post-state and the side facts."""
    for errno in transition.body(view, *args):
        view.fold(errno)
    return view
