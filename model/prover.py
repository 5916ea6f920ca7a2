"""Proof obligations: every invariant holds initially and is preserved by every transition,
for every number of pages and guests (the machine and all indexes are unbounded z3 integers).

For each (property, transition) pair the prover asks z3 whether some state satisfying *all*
invariants (plus the ghost bijection of `model/symbolic.py`) can step to a state violating the
property. Unsat is a proof; the conjunction of all invariants is then inductive. Each query is
split into the succeeding and the failing call, and tried in up to three tiers:

0. quantified, briefly: the invariants as plain universally quantified formulas. Unsat is a
   proof; most obligations end here.
1. ground: the invariants of the pre-state are instantiated only at the terms the query is about
   (arguments, the pages and entries they reach, the witnesses of the violated property, the
   annotations of those pages). Instances of true facts are true, so unsat here is a proof, and
   it comes in milliseconds.
2. guided: the quantified invariants with the same instances beside them, to guide z3.
Unsat is a proof in every tier; sat is a counterexample only in tiers 0 and 2 (tier 1 assumed
less than the invariants say, so its models need not be real states); a query no tier settles is
reported as unknown.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import z3

from model.properties import ALWAYS, Property
from model.states import BLOCK_PAGES, Annotation, Contents, Life, Owner, PageState, PteKind
from model.symbolic import (
    Machine, Symbolic, SymbolicState, fresh, ghost_invariant, initial, run,
)
from model.transitions import TRANSITIONS, Transition

GHOST = Property("ghost_borrowers", "always",
                 "slots [0, count) of a page are a bijection with the guest entries borrowing it",
                 state=ghost_invariant)
INIT = "init"
QUICK_MS = 2000  # the plain quantified query settles most obligations at once


@dataclass(frozen=True)
class Obligation:
    property: str
    transition: str  # a transition name, or INIT


@dataclass
class Result:
    property: str
    transition: str
    status: str  # "proved", "violated" or "unknown"
    seconds: float
    counterexample: dict | None = None


def state_properties() -> list[Property]:
    return [p for p in ALWAYS if p.state] + [GHOST]


def obligations(transitions: dict[str, Transition] = TRANSITIONS) -> list[Obligation]:
    """Init implies every state property; every transition preserves every property."""
    out = [Obligation(p.name, INIT) for p in state_properties()]
    props = [p.name for p in ALWAYS] + [GHOST.name]
    out += [Obligation(p, t) for t in transitions for p in props]
    return out


def _property(name: str) -> Property:
    return next(p for p in ALWAYS + [GHOST] if p.name == name)


def _check(solver_facts, timeout_ms: int):
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*solver_facts)
    return solver.check(), solver


def discharge(ob: Obligation, transitions: dict[str, Transition] = TRANSITIONS,
              discipline: bool = True, timeout_ms: int = 20000) -> Result:
    """Prove one obligation, or find a counterexample to it."""
    start = time.perf_counter()
    if ob.transition == INIT:
        status, cex = _discharge_init(ob)
    else:
        status, cex = _discharge_step(ob, transitions[ob.transition], discipline, timeout_ms)
    return Result(ob.property, ob.transition, status, time.perf_counter() - start, cex)


def _discharge_init(ob: Obligation):
    m = Machine()
    view = Symbolic(m, initial(m))
    view.witness_mode = True
    goal = _property(ob.property).state(view)
    verdict, solver = _check([*m.axioms(), z3.Not(goal)], 20000)
    if verdict == z3.unsat:
        return "proved", None
    if verdict == z3.sat:
        return "violated", {"call": "initial state", "machine": _machine(solver.model(), m)}
    return "unknown", None


class _Query:
    """One (property, transition) question, built once and asked in both tiers."""

    def __init__(self, prop: Property, t: Transition, discipline: bool):
        self.m = m = Machine()
        self.t, self.prop = t, prop
        self.pre = SymbolicState.fresh("")
        self.args = [z3.Int(p) for p in t.params]
        self.step = run(t, m, self.pre, self.args)
        self.post = self.step.post_state()
        self.guard = [*m.axioms(), *[a >= 0 for a in self.args]]
        if discipline and t.discipline:
            self.guard.append(t.discipline(Symbolic(m, self.pre), *self.args))
        self._pools_cache = None

    @property
    def pools(self) -> dict:
        """Built on first use: the quantified tier does without them."""
        if self._pools_cache is None:
            self.goal(None)  # names the witnesses, which the pools need
            self._pools_cache = self._pools()
            _, named = self.facts(True)  # and the hypothesis' Skolem terms name more entries
            self._pools_cache = self._pools(named)
        return self._pools_cache

    def goal(self, pools, ground_only=False):
        """The property in the post-state, its top-level quantifiers at witnesses."""
        post = Symbolic(self.m, self.post)
        post.witness_mode, post.pools, post.ground_only = True, pools, ground_only
        if self.prop.state:
            goal = self.prop.state(post)
        else:
            goal = self.prop.step(self.t.name, self.step.errno, Symbolic(self.m, self.pre), post)
        self.witnesses = post.witnesses
        return goal

    def _pools(self, named=()) -> dict:
        """The terms this query is about, per kind: where the invariants get instantiated."""
        pre, post = Symbolic(self.m, self.pre), Symbolic(self.m, self.post)
        args = dict(zip(self.t.params, self.args))
        pages, entries, extra = [], [], {"gfn": [], "vm": [], "slot": []}
        if "pfn" in args:
            pages.append(args["pfn"])
        for key, ws in self.witnesses.items():
            kind = key.rstrip("0123456789")
            if kind == "page":
                pages.append(ws[0])
            elif kind == "entry":
                entries.append(ws)
            else:
                extra[kind].append(ws[0])
        pages += [k for k, *_ in self.step.ranges]
        entries += list(named)
        if "vm" in args and "gfn" in args:
            vm, gfn = args["vm"], args["gfn"]
            entries += [(vm, gfn), (vm, gfn - gfn % BLOCK_PAGES)]
        for v, g in list(entries):
            pages.append(pre.e_pfn(v, g))
        if "vm" in args and "gfn" in args:  # the entry of vm's leaf at gfn that maps page q
            entries += [(vm, gfn + (q - pre.e_pfn(vm, gfn))) for q in list(pages)]
        arrays = self.pre.arrays
        for p in list(pages):
            entries.append((pre.pte_handle(p), pre.pte_gfn(p)))
            for i in [z3.Select(arrays["nb"], p) - 1] + extra["slot"]:
                entries.append((z3.Select(arrays["holder_v"], p, i),
                                z3.Select(arrays["holder_g"], p, i)))
        slots = [z3.IntVal(0)] + [z3.Select(arrays["slot"], v, g) for v, g in entries] \
            + [z3.Select(arrays["nb"], p) - 1 for p in pages]
        return {"page": _unique(pages), "entry": _unique(entries),
                "gfn": _unique(extra["gfn"] + [g for _, g in entries]),
                "vm": _unique(extra["vm"] + [v for v, _ in entries]),
                "slot": _unique(extra["slot"] + slots)}

    def facts(self, ground_only: bool):
        """The invariants of the pre-state, the range witnesses' definitions, the guards; and
        the entries the hypothesis' Skolem terms name (the goal's existentials may need them)."""
        view = Symbolic(self.m, self.pre)
        view.pools, view.ground_only = self.pools, ground_only
        invariants = [p.state(view) for p in state_properties()]
        side = self.step.side_facts(self.pools["page"], ground_only)
        named = [xs for kind, xs in view.skolems if kind == "entry"]
        return [*self.guard, *invariants, *side], named

    def ask(self, case, tier: str, timeout_ms: int):
        """tier: "ground" (instances only), "quantified" (plain), "guided" (both)."""
        if tier == "quantified":
            view = Symbolic(self.m, self.pre)
            facts = [*self.guard, *[p.state(view) for p in state_properties()],
                     *self.step.side_facts()]
            return _check([*facts, case, z3.Not(self.goal(None))], timeout_ms)
        facts, _ = self.facts(tier == "ground")
        goal = self.goal(self.pools, tier == "ground")
        return _check([*facts, case, z3.Not(goal)], timeout_ms)


def _unique(terms: list) -> list:
    """The terms without structural duplicates, in their first order."""
    seen, out = set(), []
    for t in terms:
        key = tuple(x.get_id() for x in t) if isinstance(t, tuple) else t.get_id()
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _discharge_step(ob: Obligation, t: Transition, discipline: bool, timeout_ms: int):
    q = _Query(_property(ob.property), t, discipline)
    status = "proved"
    for case in (q.step.errno == 0, q.step.errno != 0):
        for tier, limit in (("quantified", min(QUICK_MS, timeout_ms)), ("ground", timeout_ms),
                            ("guided", timeout_ms)):
            verdict, solver = q.ask(case, tier, limit)
            if verdict == z3.unsat:
                break
            if verdict == z3.sat and tier != "ground":
                return "violated", counterexample(q, solver.model())
        else:
            status = "unknown"
    return status, None


def discharge_all(obs: list[Obligation], mutant: str | None = None, discipline: bool = True,
                  timeout_ms: int = 20000, jobs: int = 2) -> list[Result]:
    """Every obligation, on `jobs` processes (z3 terms cannot cross processes: each rebuilds)."""
    work = [(ob, mutant, discipline, timeout_ms) for ob in obs]
    if jobs <= 1:
        return [_work(w) for w in work]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_work, work, chunksize=4))


def _work(item) -> Result:
    from model.mutants import mutant_transitions  # noqa: PLC0415 (mutants import the model)
    ob, mutant, discipline, timeout_ms = item
    return discharge(ob, mutant_transitions(mutant), discipline, timeout_ms)


# -- counterexamples ---------------------------------------------------------------------------

def _machine(model, m: Machine) -> dict:
    ev = lambda x: model.eval(x, model_completion=True).as_long()
    return {"ram": ev(m.ram), "mmio": ev(m.mmio), "guests": ev(m.guests)}


def _name(enum, value):
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _page_cells(view: Symbolic, ev, p) -> dict:
    contents = ev(view.contents(p))
    return {
        "host": _name(PageState, ev(view.host(p))),
        "hyp": _name(PageState, ev(view.hyp(p))),
        "ffa": _name(PageState, ev(view.ffa(p))),
        "pins": ev(view.pins(p)),
        "count": ev(view.count(p)),
        "host_pte": _pte(view, ev, p),
        "hyp_mapped": bool(ev(view.hyp_mapped(p))),
        "contents": (f"SECRET(vm{contents - Contents.SECRET_BASE})"
                     if contents >= Contents.SECRET_BASE else _name(Contents, contents)),
    }


def _pte(view: Symbolic, ev, p) -> str:
    kind = ev(view.pte_kind(p))
    if kind != PteKind.ANNOTATED:
        return {PteKind.ZERO: "0", PteKind.VALID: "identity"}.get(kind, str(kind))
    text = f"{_name(Annotation, ev(view.pte_type(p)))}:{_name(Owner, ev(view.pte_owner(p)))}"
    if ev(view.pte_owner(p)) == Owner.GUEST:
        text += f"(vm{ev(view.pte_handle(p))},gfn{ev(view.pte_gfn(p))})"
    return text


def _entry_cells(view: Symbolic, ev, v, g) -> dict:
    state = ev(view.e_state(v, g))
    cells = {"state": _name(PageState, state), "life": _name(Life, ev(view.life(v)))}
    if state in (PageState.OWNED, PageState.SHARED_OWNED, PageState.SHARED_BORROWED):
        cells.update(pfn=ev(view.e_pfn(v, g)), size=ev(view.e_size(v, g)),
                     prot=ev(view.e_prot(v, g)))
    return cells


def counterexample(q: _Query, model) -> dict:
    """The pre- and post-state of the pages and entries involved, in kernel vocabulary."""
    def ev(x):
        value = model.eval(x, model_completion=True)
        return z3.is_true(value) if z3.is_bool(value) else value.as_long()
    pre, post = Symbolic(q.m, q.pre), Symbolic(q.m, q.post)
    pfns = sorted({ev(p) for p in q.pools["page"] if ev(p) >= 0})[:6]
    entries = sorted({(ev(v), ev(g)) for v, g in q.pools["entry"] if ev(v) >= 0 and ev(g) >= 0
                      and z3.is_true(model.eval(pre.is_guest(z3.IntVal(ev(v)))))})[:6]
    pages = {}
    for p in pfns:
        before, after = _page_cells(pre, ev, p), _page_cells(post, ev, p)
        pages[str(p)] = {"pre": before, "post": after,
                         "changed": sorted(k for k in before if before[k] != after[k])}
    guest = {}
    for v, g in entries:
        before, after = _entry_cells(pre, ev, v, g), _entry_cells(post, ev, v, g)
        protected = z3.is_true(model.eval(pre.protected(z3.IntVal(v)), model_completion=True))
        guest[f"vm{v}{'(protected)' if protected else ''} gfn{g}"] = {
            "pre": before, "post": after,
            "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}
    args = ", ".join(f"{p}={ev(a)}" for p, a in zip(q.t.params, q.args))
    return {"call": f"{q.t.name}({args})", "errno": ev(q.step.errno),
            "machine": _machine(model, q.m), "pages": pages, "entries": guest}
