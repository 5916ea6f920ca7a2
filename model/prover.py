"""Proof obligations: every invariant holds initially and is preserved by every transition,
for every number of pages and guests (the machine and all indexes are unbounded z3 integers).

For each (property, transition) pair the prover asks z3 whether some state satisfying *all*
invariants (plus the ghost bijection of `model/symbolic.py`) can step to a state violating the
property. Unsat is a proof; the conjunction of all invariants is then inductive. Each query is
split into the succeeding and the failing call, and tried in two tiers:

1. ground: the invariants of the pre-state are instantiated only at the terms the query is about
   (arguments, the pages and entries they reach, the witnesses of the violated property, the
   annotations of those pages). Instances of true facts are true, so unsat here is a proof, and
   it comes in milliseconds.
2. full: the invariants as universally quantified formulas (with the same instances beside them,
   to guide z3). Unsat is a proof, sat is a real counterexample, unknown is reported as such.
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
        self.t = t
        self.pre = SymbolicState.fresh("")
        self.args = [z3.Int(p) for p in t.params]
        self.step = run(t, m, self.pre, self.args)
        self.post = self.step.post_state()
        post_view = Symbolic(m, self.post)
        post_view.witness_mode = True
        pre_view = Symbolic(m, self.pre)
        if prop.state:
            self.goal = prop.state(post_view)
        else:
            self.goal = prop.step(t.name, self.step.errno, pre_view, post_view)
        self.witnesses = post_view.witnesses
        self.pages, self.entries = self._terms(pre_view, post_view)
        self.guard = [*m.axioms(), *[a >= 0 for a in self.args]]
        if discipline and t.discipline:
            self.guard.append(t.discipline(pre_view, *self.args))

    def _terms(self, pre: Symbolic, post: Symbolic):
        """The pages and entries this query is about: where the invariants get instantiated."""
        named = dict(zip(self.t.params, self.args))
        pages, entries = [], []
        if "pfn" in named:
            pages.append(named["pfn"])
        if "vm" in named and "gfn" in named:
            entries.append((named["vm"], named["gfn"]))
        for ws in self.witnesses.values():
            if len(ws) == 1:
                pages.append(ws[0])
            else:
                entries.append(ws)
        pages += [k for k, *_ in self.step.ranges]
        for v, g in list(entries):
            pages += [pre.e_pfn(v, g), post.e_pfn(v, g)]
        arrays = self.pre.arrays
        for p in list(pages):
            entries.append((pre.pte_handle(p), pre.pte_gfn(p)))
            last = z3.Select(arrays["nb"], p) - 1
            entries.append((z3.Select(arrays["holder_v"], p, last),
                            z3.Select(arrays["holder_g"], p, last)))
        if "vm" in named and "gfn" in named:
            vm, gfn = named["vm"], named["gfn"]
            block_base = gfn - gfn % BLOCK_PAGES
            entries.append((vm, block_base))
            pages.append(pre.e_pfn(vm, block_base))
        return pages, entries

    def facts(self, ground_only: bool):
        view = Symbolic(self.m, self.pre)
        view.hints = {"pages": self.pages, "entries": self.entries}
        view.ground_only = ground_only
        invariants = [p.state(view) for p in state_properties()]
        side = self.step.side_facts(self.pages, ground_only)
        return [*self.guard, *invariants, *side]

    def ask(self, case, ground_only: bool, timeout_ms: int):
        return _check([*self.facts(ground_only), case, z3.Not(self.goal)], timeout_ms)


def _discharge_step(ob: Obligation, t: Transition, discipline: bool, timeout_ms: int):
    q = _Query(_property(ob.property), t, discipline)
    status = "proved"
    for case in (q.step.errno == 0, q.step.errno != 0):
        verdict, _ = q.ask(case, ground_only=True, timeout_ms=timeout_ms)
        if verdict == z3.unsat:
            continue
        verdict, solver = q.ask(case, ground_only=False, timeout_ms=timeout_ms)
        if verdict == z3.unsat:
            continue
        if verdict == z3.sat:
            return "violated", counterexample(q, solver.model())
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
    ev = lambda x: model.eval(x, model_completion=True).as_long()
    pre, post = Symbolic(q.m, q.pre), Symbolic(q.m, q.post)
    pfns = sorted({ev(p) for p in q.pages if ev(p) >= 0})[:6]
    entries = sorted({(ev(v), ev(g)) for v, g in q.entries if ev(v) >= 0 and ev(g) >= 0
                      and ev(pre.is_guest(z3.IntVal(ev(v))))})[:6]
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
