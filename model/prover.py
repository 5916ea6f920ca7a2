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
less than the invariants say, so its models need not be real states, and is made concrete and
checked before it is reported); a query no tier settles is reported as unknown.

A transition that makes another call whole (`delegate` in `model/transitions.py`, e.g. the hole
punch of a non-protected guest is `host_unshare_guest` on the leaf) is proved modularly on that
branch: z3 shows that whenever the branch succeeds, so does the callee, with the same
post-state, and the callee's own obligation for the property does the rest (`Result.via`).

Every query runs under z3's resource limit, not a clock, and every obligation in a freshly
forked process, so the same command gives the same statuses on a loaded machine or an idle one.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass

import z3

from model.properties import ALWAYS, Property
from model.concrete import Concrete
from model.states import (
    BLOCK_PAGES, PAGE_FIELDS, PAGE_INIT, Annotation, Config, Contents, Leaf, Life, Owner,
    PageState, PteKind, State, describe_contents, describe_pte, find_leaf,
)
from model.symbolic import (
    Machine, Symbolic, SymbolicState, ghost_invariant, initial, run,
)
from model.transitions import TRANSITIONS, Call, Transition, step

GHOST = Property("ghost_borrowers", "always",
                 "slots [0, count) of a page are a bijection with the guest entries borrowing it",
                 state=ghost_invariant)
INIT = "init"
QUICK = 5_000_000  # z3 resource units: the plain quantified query settles most obligations
BUDGET = 100_000_000  # z3 resource units per query of the other tiers (deterministic)


@dataclass(frozen=True, order=True)
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
    via: tuple[str, ...] = ()  # callees whose obligation for this property the proof relies on


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


def _check(solver_facts, rlimit: int):
    solver = z3.Solver()
    solver.set("rlimit", rlimit)
    solver.add(*solver_facts)
    return solver.check(), solver


def _discharge_one(ob: Obligation, transitions: dict[str, Transition], discipline: bool,
                   budget: int, modular: bool = True) -> Result:
    """One obligation, possibly through its callees' obligations (see `Result.via`)."""
    start = time.perf_counter()
    via = ()
    if ob.transition == INIT:
        status, cex = _discharge_init(ob, budget)
    else:
        status, cex, via = _discharge_step(ob, transitions, discipline, budget, modular)
    return Result(ob.property, ob.transition, status, time.perf_counter() - start, cex, via)


def _discharge_init(ob: Obligation, budget: int):
    m = Machine()
    view = Symbolic(m, initial(m))
    view.witness_mode = True
    goal = _property(ob.property).state(view)
    verdict, solver = _check([*m.axioms(), z3.Not(goal)], budget)
    if verdict == z3.unsat:
        return "proved", None
    if verdict == z3.sat:
        return "violated", {"call": "initial state", "machine": _machine(solver.model(), m)}
    return "unknown", None


class _Query:
    """One (property, transition) question, built once and asked in every tier."""

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
        pre = Symbolic(self.m, self.pre)
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

    def plain_facts(self) -> list:
        """The hypothesis with the invariants as plain quantified formulas."""
        view = Symbolic(self.m, self.pre)
        return [*self.guard, *[p.state(view) for p in state_properties()], *self.step.side_facts()]

    def ask(self, case, tier: str, rlimit: int):
        """tier: "ground" (instances only), "quantified" (plain), "guided" (both)."""
        if tier == "quantified":
            return _check([*self.plain_facts(), case, z3.Not(self.goal(None))], rlimit)
        facts, _ = self.facts(tier == "ground")
        goal = self.goal(self.pools, tier == "ground")
        return _check([*facts, case, z3.Not(goal)], rlimit)

    def page_leaves(self):
        """Every leaf the query names is one page: a model that fits a small machine."""
        pre = Symbolic(self.m, self.pre)
        return z3.And(*[z3.Implies(pre.is_valid(pre.e_state(v, g)), pre.e_size(v, g) == 1)
                        for v, g in self.pools["entry"]])

    def refines(self, call, transitions: dict[str, Transition], discipline: bool,
                rlimit: int) -> bool:
        """Whether, when this call succeeds on the branch of the nested `call`, the callee is
        called within its own obligations' assumptions, succeeds, and leaves the same state
        (ghost included): then the callee's proof of a state property covers the branch."""
        name, args, guard = call
        callee = transitions[name]
        inner = run(callee, self.m, self.pre, list(args))
        same = [self.post.arrays[f] == inner.post[f] for f in self.post.arrays]
        goal = [inner.errno == 0, *[a >= 0 for a in args], *same]
        if discipline and callee.discipline:
            goal.append(callee.discipline(Symbolic(self.m, self.pre), *args))
        facts = [*self.plain_facts(), *inner.side_facts(), self.step.errno == 0, guard]
        verdict, _ = _check([*facts, z3.Not(z3.And(*goal))], rlimit)
        return verdict == z3.unsat


def _unique(terms: list) -> list:
    """The terms without structural duplicates, in their first order."""
    seen, out = set(), []
    for t in terms:
        key = tuple(x.get_id() for x in t) if isinstance(t, tuple) else t.get_id()
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _discharge_step(ob: Obligation, transitions: dict[str, Transition], discipline: bool,
                    budget: int, modular: bool):
    q = _Query(_property(ob.property), transitions[ob.transition], discipline)
    nested = [call for call in q.step.calls
              if modular and q.prop.state and q.refines(call, transitions, discipline, budget)]
    status = "proved"
    for case in _cases(q, [guard for _, _, guard in nested]):
        for tier, limit in (("quantified", min(QUICK, budget)), ("ground", budget),
                            ("guided", budget // 4)):  # guided rarely settles what ground left
            if tier == "ground":
                verdict, real = _ground(q, case, transitions, limit)
                if real is not None:
                    return "violated", real, ()
            else:
                verdict, solver = q.ask(case, tier, limit)
                if verdict == z3.sat:
                    return "violated", counterexample(q, solver.model()), ()
            if verdict == z3.unsat:
                break
        else:
            status = "unknown"
    return status, None, tuple(dict.fromkeys(name for name, _, _ in nested))


def _ground(q: _Query, case, transitions: dict[str, Transition], limit: int):
    """The ground tier: (verdict, concrete counterexample or None). A model z3 finds is made
    concrete; when it does not fit a small machine, z3 is asked once more for a model whose
    leaves are all single pages (unsat there proves nothing)."""
    verdict, solver = q.ask(case, "ground", limit)
    if verdict != z3.sat:
        return verdict, None
    real = concretize(q, solver.model(), transitions)
    if real is None:
        again, solver = _check([*solver.assertions(), q.page_leaves()], limit)
        if again == z3.sat:
            real = concretize(q, solver.model(), transitions)
    return verdict, real


def _cases(q: _Query, covered: list) -> list:
    """The failing call, and the succeeding one outside the `covered` branches (those of nested
    calls proved through their callee), split by leaf size (a page or a 2 MiB block), which z3
    settles far faster one at a time."""
    ok = z3.And(q.step.errno == 0, *[z3.Not(guard) for guard in covered])
    fail = q.step.errno != 0
    args = dict(zip(q.t.params, q.args))
    if "nr" in args:
        size = args["nr"]
    elif "vm" in args and "gfn" in args:
        size = Symbolic(q.m, q.pre).e_size(args["vm"], args["gfn"])
    else:
        return [ok, fail]
    return [z3.And(ok, size == 1), z3.And(ok, size == BLOCK_PAGES),
            z3.And(ok, size != 1, size != BLOCK_PAGES), fail]


def discharge(ob: Obligation, mutant: str | None = None, discipline: bool = True,
              budget: int = BUDGET) -> Result:
    """Prove one obligation (and whatever callee obligations its proof relies on), or find a
    counterexample to it."""
    return discharge_all([ob], mutant, discipline, budget, jobs=1)[0]


def discharge_all(obs: list[Obligation], mutant: str | None = None, discipline: bool = True,
                  budget: int = BUDGET, jobs: int = 2) -> list[Result]:
    """Every obligation, each in a freshly forked process (`jobs` at a time): z3's answers
    depend on what its context has seen, and a fresh fork of the same parent is the same
    context every time."""
    def run_all(todo, modular=True):
        if not todo:
            return {}
        work = [(ob, mutant, discipline, budget, modular) for ob in todo]
        with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=1) as pool:
            return dict(zip(todo, pool.map(_work, work, chunksize=1)))
    return _settle(obs, run_all)


def _settle(obs: list[Obligation], run_all) -> list[Result]:
    """Run the obligations, then the callee obligations their proofs rely on; a proof whose
    callee is not proved is redone directly, without the callee."""
    results = run_all(obs)
    while missing := sorted({Obligation(r.property, t) for r in results.values() for t in r.via}
                            - results.keys()):
        results.update(run_all(missing))

    def sound(ob: Obligation) -> bool:
        r = results[ob]
        return r.status == "proved" and all(sound(Obligation(r.property, t)) for t in r.via)

    redo = [ob for ob in obs if results[ob].via and not sound(ob)]
    redone = run_all(redo, False) if redo else {}
    return [redone.get(ob, results[ob]) for ob in obs]


def _work(item) -> Result:
    from model.mutants import mutant_transitions  # noqa: PLC0415 (mutants import the model)
    ob, mutant, discipline, budget, modular = item
    return _discharge_one(ob, mutant_transitions(mutant), discipline, budget, modular)


# -- counterexamples ---------------------------------------------------------------------------

def _evaluator(model):
    """Values of terms in a z3 model: Python ints, or bools for Boolean terms."""
    def ev(x):
        value = model.eval(x, model_completion=True)
        return z3.is_true(value) if z3.is_bool(value) else value.as_long()
    return ev


def _machine(model, m: Machine) -> dict:
    ev = _evaluator(model)
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
    ev = _evaluator(model)
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


def concretize(q: _Query, model, transitions: dict[str, Transition]) -> dict | None:
    """A ground-tier model made into a concrete state of a small machine: the pages and guests
    the query is about, renumbered. When that state satisfies every invariant (checked
    concretely) and the call really breaks the property there, the counterexample is real."""
    ev = _evaluator(model)
    pre = Symbolic(q.m, q.pre)
    ram, mmio, guests = ev(q.m.ram), ev(q.m.mmio), ev(q.m.guests)
    named = dict(zip(q.t.params, (ev(a) for a in q.args)))
    pfns = {ev(p) for p in q.pools["page"]}
    if "pfn" in named and named.get("nr", 1) <= 8:
        pfns |= set(range(named["pfn"], named["pfn"] + named.get("nr", 1)))
    entries = {(ev(v), ev(g)) for v, g in q.pools["entry"]}
    vms = {v for v, _ in entries} | {named.get("vm", -1)}
    vms |= {ev(pre.pte_handle(p)) for p in pfns if ev(pre.pte_owner(p)) == Owner.GUEST}
    vms = sorted(v for v in vms if 0 <= v < guests)
    live = [(v, g) for v, g in entries if v in vms and g >= 0
            and ev(pre.e_state(v, g)) != PageState.NOPAGE]
    if any(ev(pre.e_size(v, g)) != 1 for v, g in live if ev(pre.e_state(v, g)) != PageState.POISON):
        return None  # a 2 MiB block does not fit a small machine
    pfns |= {ev(pre.e_pfn(v, g)) for v, g in live}
    rams = sorted(p for p in pfns if 0 <= p < ram)
    if not rams:
        rams = [0] if ram > 0 else []
    new_pfn = {p: i for i, p in enumerate(rams)}
    new_vm = {v: i for i, v in enumerate(vms)}
    small = Config(ram=len(rams), mmio=1, guests=tuple(ev(pre.protected(v)) for v in vms),
                   gfns=1, hole_pfns=1)

    def pfn_of(p):
        if p in new_pfn:
            return new_pfn[p]
        return small.ram if ram <= p < ram + mmio else small.ram + 1

    fields = {f: [] for f in PAGE_FIELDS}
    for p in rams:
        for f in PAGE_FIELDS:
            value = ev(pre.page(f, p))
            if f == "pte_handle" and ev(pre.pte_owner(p)) == Owner.GUEST:
                value = new_vm.get(value, len(vms))
            if f == "contents" and value >= Contents.SECRET_BASE:
                value = Contents.SECRET_BASE + new_vm.get(value - Contents.SECRET_BASE, len(vms))
            fields[f].append(value)
    for f in PAGE_FIELDS:  # the MMIO page, untouched
        fields[f].append(PAGE_INIT[f])
    s2 = []
    for v in vms:
        leaves = []
        for vv, g in sorted(live):
            if vv != v:
                continue
            state = ev(pre.e_state(v, g))
            if state == PageState.POISON:
                leaves.append(Leaf(g, 1, 1, state, 0, 0))
            else:
                leaves.append(Leaf(g, 1, 1, state, ev(pre.e_prot(v, g)),
                                   new_pfn[ev(pre.e_pfn(v, g))]))
        s2.append(tuple(leaves))
    state = State(*[tuple(fields[f]) for f in PAGE_FIELDS],
                  life=tuple(ev(pre.life(v)) for v in vms), s2=tuple(s2))
    args = tuple(pfn_of(a) if p == "pfn" else new_vm.get(a, len(vms)) if p == "vm" else a
                 for p, a in named.items())
    call = Call(q.t.name, args)
    view = Concrete(small, state)
    if not all(p.state(view) for p in ALWAYS if p.state):
        return None  # the projection is no reachable-looking state: no verdict
    outcome = step(small, state, call, transitions)
    if outcome is None:
        return None
    post = Concrete(small, outcome.state)
    if q.prop.state:
        broken = not q.prop.state(post)
    else:
        broken = not q.prop.step(call.name, outcome.errno, view, post)
    if not broken:
        return None
    return concrete_counterexample(small, state, call, outcome)


def concrete_counterexample(config: Config, pre: State, call: Call, outcome) -> dict:
    """A counterexample on a concrete machine, in the same shape as the symbolic one."""
    pages = {}
    for p in range(config.pages):
        before, after = _concrete_cells(config, pre, p), _concrete_cells(config, outcome.state, p)
        pages[str(p)] = {"pre": before, "post": after,
                         "changed": sorted(k for k in before if before[k] != after[k])}
    entries = {}
    for v in range(len(config.guests)):
        kind = "(protected)" if config.guests[v] else ""
        gfns = sorted({leaf.gfn for leaf in pre.s2[v]} | {leaf.gfn for leaf in outcome.state.s2[v]})
        for g in gfns:
            before, after = _leaf_cells(pre, v, g), _leaf_cells(outcome.state, v, g)
            entries[f"vm{v}{kind} gfn{g}"] = {
                "pre": before, "post": after,
                "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}
    return {"call": str(call), "errno": outcome.errno,
            "machine": {"ram": config.ram, "mmio": config.mmio, "guests": len(config.guests)},
            "pages": pages, "entries": entries}


def _concrete_cells(config: Config, state: State, p: int) -> dict:
    return {"host": PageState(state.host[p]).name, "hyp": PageState(state.hyp[p]).name,
            "ffa": PageState(state.ffa[p]).name, "pins": state.pins[p], "count": state.count[p],
            "host_pte": describe_pte(state, p), "hyp_mapped": bool(state.hyp_mapped[p]),
            "contents": describe_contents(state.contents[p])}


def _leaf_cells(state: State, v: int, g: int) -> dict:
    leaf = find_leaf(state.s2[v], g)
    cells = {"life": Life(state.life[v]).name}
    if leaf is None:
        return {**cells, "state": "NOPAGE"}
    cells["state"] = PageState(leaf.state).name
    if leaf.state != PageState.POISON:
        cells.update(pfn=leaf.pfn + g - leaf.gfn, size=leaf.size, prot=leaf.prot)
    return cells

