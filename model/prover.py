"""Proof obligations: every invariant holds initially and is preserved by every transition,
for every size of the machine (the machine and all indexes are unbounded z3 integers).

For each (property, transition) pair the prover asks z3 whether some state satisfying *all*
invariants (plus the profile's strengthening invariants, such as pKVM's ghost bijection) can
step to a state violating the property. Unsat is a proof; the conjunction of all invariants is
then inductive. Each query is split into the succeeding and the failing call, and tried in up
to three tiers:

0. quantified, briefly: the invariants as plain universally quantified formulas. Unsat is a
   proof; most obligations end here, in milliseconds (`_plain_check`).
1. ground: the invariants of the pre-state are instantiated only at the terms the query is about
   (the profile's term pools: for pKVM the arguments, the pages and entries they reach, the
   witnesses of the violated property, the annotations of those pages). Instances of true
   facts are true, so unsat here is a proof, and it comes in milliseconds. Each conjunct of
   the property is asked on its own.
2. guided: the quantified invariants with the same instances beside them, to guide z3.
Unsat is a proof in every tier; sat is a counterexample only in tiers 0 and 2 (tier 1 assumed
less than the invariants say, so its models need not be real states, and is made concrete and
checked before it is reported); a query no tier settles is reported as unknown.

A transition that makes another call whole (`delegate` in `model/transitions.py`, e.g. the hole
punch of a non-protected guest is `host_unshare_guest` on the leaf) is proved modularly on that
branch: z3 shows that whenever the branch succeeds, so does the callee, with the same
post-state, and the callee's own obligation for the property does the rest (`Result.via`).

Every query runs under z3's resource limit, not a clock, and a transition's obligations in
freshly forked processes, a few to each, one after the other in a fixed order, so the same
command gives the same statuses on a loaded machine or an idle one.
The ground and guided tiers ask in a z3 context of their own, their query's names numbered from
0, so their time does not depend on what the process built before (`model.symbolic.check`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import z3

from model.forks import run_forked
from model.properties import Property
from model.symbolic import check as _check, names_from_zero, names_made, restart_names, run
from model.transitions import Transition

INIT = "init"
QUICK = 5_000_000  # z3 resource units: the plain quantified query settles most obligations
SCOPED = 500_000  # z3 resource units for the quick tier on top of the invariants (`_plain_check`)
CHUNK = 8  # obligations of one transition per fork at most: its violations are slow (a mutant's)
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


def state_properties(profile) -> list[Property]:
    """The invariants every query assumes: the profile's state properties and strengthening."""
    return [p for p in profile.always if p.state] + list(profile.prover.strengthening)


def proof_only(profile) -> tuple[str, ...]:
    """The strengthening properties only the symbolic reading can evaluate (pKVM's ghost
    bijection reads slots a concrete state does not have): no concrete counterexample, no
    search, is ever asked of them."""
    return tuple(getattr(profile.prover, "proof_only", ()))


def proved_properties(profile) -> list[Property]:
    return list(profile.always) + list(profile.prover.strengthening)


def obligations(profile) -> list[Obligation]:
    """Init implies every state property; every transition preserves every property."""
    out = [Obligation(p.name, INIT) for p in state_properties(profile)]
    props = [p.name for p in proved_properties(profile)]
    out += [Obligation(p, t) for t in profile.transitions for p in props]
    return out


def _property(profile, name: str) -> Property:
    return next(p for p in proved_properties(profile) if p.name == name)


def _discharge_one(profile, ob: Obligation, discipline: bool, budget: int,
                   modular: bool = True, frame: Frame | None = None) -> Result:
    """One obligation, possibly through its callees' obligations (see `Result.via`); `frame`:
    its transition's, when already known."""
    start = time.perf_counter()
    via = ()
    if ob.transition == INIT:
        status, cex = _discharge_init(profile, ob, budget)
    else:
        status, cex, via = _discharge_step(profile, ob, discipline, budget, modular, frame)
    return Result(ob.property, ob.transition, status, time.perf_counter() - start, cex, via)


def _discharge_init(profile, ob: Obligation, budget: int):
    hooks = profile.prover
    m = hooks.machine()
    view = hooks.reading(m, hooks.initial(m))
    view.witness_mode = True
    goal = _property(profile, ob.property).state(view)
    verdict, model = _check([*m.axioms(), z3.Not(goal)], budget)
    if verdict == z3.unsat:
        return "proved", None
    if verdict == z3.sat:
        return "violated", {"call": "initial state",
                            "machine": hooks.machine_of(model, m)}
    return "unknown", None


_PLAIN: dict = {}  # id(profile) -> (profile, its plain invariants, those with an existential)


def plain_invariants(profile) -> list:
    """The invariants of the pre-state as plain quantified formulas. Every query's pre-state and
    machine are named alike, so these are the same terms for every obligation: built once, in
    the parent before the forks (`discharge_with`), and inherited by every one: building them
    in every obligation was a third of a light obligation's time."""
    if id(profile) not in _PLAIN:
        hooks = profile.prover
        with names_from_zero():
            m = hooks.machine()
            view = hooks.reading(m, hooks.fresh_state(""), profile.transitions)
            plain = [p.state(view) for p in state_properties(profile)]
            naming = [p for p, term in zip(state_properties(profile), plain) if _exists_in(term)]
            _PLAIN[id(profile)] = profile, plain, naming
    return _PLAIN[id(profile)][1]


_SOLVERS: dict = {}  # (process, id(profile)) -> (profile, a solver holding its plain invariants)


def _plain_check(profile, facts: list, rlimit: int):
    """(verdict, model) of `facts` with the plain invariants. The invariants sit at the base of
    a solver of this process and each question in a scope above them, so z3 takes them in once
    per process: a fresh solver per question spent 8 of a light question's 12 ms on them (the
    light obligations: 9.3 -> 3.5 s). A fork starts from a solver of its own. A scoped solver
    does without z3's preprocessing, which some questions need: what it leaves unknown within
    `SCOPED` units is asked again of a fresh solver."""
    key = os.getpid(), id(profile)
    if key not in _SOLVERS:
        _SOLVERS[key] = profile, z3.Solver()
        _SOLVERS[key][1].add(*plain_invariants(profile))
    solver = _SOLVERS[key][1]
    solver.push()
    try:
        solver.set("rlimit", min(rlimit, SCOPED))
        solver.add(*facts)
        verdict = solver.check()
        if verdict != z3.unknown:
            return verdict, solver.model() if verdict == z3.sat else None
    finally:
        solver.pop()
    return _check([*plain_invariants(profile), *facts], rlimit)


def naming_invariants(profile) -> list[Property]:
    """The invariants with an existential: only their Skolem terms name terms for the pools."""
    plain_invariants(profile)
    return _PLAIN[id(profile)][2]


def _exists_in(term) -> bool:
    """Whether an existential quantifier occurs in the term."""
    seen, todo = set(), [term]
    while todo:
        t = todo.pop()
        if t.get_id() in seen:
            continue
        seen.add(t.get_id())
        if z3.is_quantifier(t):
            if t.is_exists():
                return True
            todo.append(t.body())
        elif z3.is_app(t):
            todo.extend(t.children())
    return False


_STEPS: dict = {}  # (id(profile), transition) -> (profile, the step's terms, names made)


def _stepped(profile, t: Transition) -> tuple:
    """The machine, pre-state, arguments, step and post-state of `t`, built from fresh names
    numbered from 0, once per process: every obligation of a transition runs on the same step
    (a fifth of a light obligation's time went into running it again). The numbering then goes
    on as if the query had built them itself (`restart_names`), so the terms are the same."""
    key = id(profile), t.name
    if key not in _STEPS:
        restart_names()
        hooks = profile.prover
        m, pre = hooks.machine(), hooks.fresh_state("")
        args = [z3.Int(p) for p in t.params]
        step = run(t, hooks.stepping(m, pre, profile.transitions), args)
        _STEPS[key] = profile, (m, pre, args, step, step.post_state()), names_made()
    _, terms, made = _STEPS[key]
    restart_names(made)
    return terms


class _Query:
    """One (property, transition) question, built once and asked in every tier."""

    def __init__(self, profile, prop: Property, t: Transition, discipline: bool):
        self.profile, self.hooks = profile, profile.prover
        self.t, self.prop = t, prop
        self.m, self.pre, self.args, self.step, self.post = _stepped(profile, t)
        self.guard = [*self.m.axioms(), *[a >= 0 for a in self.args]]
        if discipline and t.discipline:
            self.guard.append(t.discipline(self.view(self.pre), *self.args))
        self._pools_cache = None
        self._built: dict = {}  # terms the tiers ask for again (`_once`)

    def view(self, state):
        return self.hooks.reading(self.m, state, self.profile.transitions)

    @property
    def pools(self) -> dict:
        """Built on first use: the quantified tier does without them."""
        if self._pools_cache is None:
            self.goal(None)  # names the witnesses, which the pools need
            self._pools_cache = self.hooks.pools(self)
            # and the hypothesis' Skolem terms name more terms
            _, named = self.facts(True, naming_invariants(self.profile))
            self._pools_cache = self.hooks.pools(self, named)
        return self._pools_cache

    def goal(self, pools, ground_only=False):
        """The property in the post-state, its top-level quantifiers at witnesses."""
        post = self.view(self.post)
        post.witness_mode, post.pools, post.ground_only = True, pools, ground_only
        if self.prop.state:
            goal = self.prop.state(post)
        else:
            goal = self.prop.step(self.t.name, self.step.errno, self.view(self.pre), post)
        self.witnesses = post.witnesses
        return goal

    def facts(self, ground_only: bool, properties=None):
        """The invariants of the pre-state (or those `properties`), the range witnesses'
        definitions, the guards; and the entries the hypothesis' Skolem terms name (the goal's
        existentials may need them)."""
        view = self.view(self.pre)
        view.pools, view.ground_only = self.pools, ground_only
        properties = state_properties(self.profile) if properties is None else properties
        invariants = [p.state(view) for p in properties]
        side = self.step.side_facts(self.pools["page"], ground_only)
        named = [xs for kind, xs in view.skolems if kind == "entry"]
        return [*self.guard, *invariants, *side], named

    def _once(self, key, build):
        """`build()` the first time `key` is asked for: a query's hypotheses and goals take
        seconds to build, and every case and conjunct asks for them again."""
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    def plain_facts(self) -> list:
        """The hypothesis but for the plain invariants, which `_plain_check` adds."""
        return self._once("plain", lambda: [*self.guard, *self.step.side_facts()])

    def ask(self, case, tier: str, rlimit: int, part: int | None = None, *more):
        """(verdict, model) of `question`, with the facts `more` beside it: the quantified
        tier on the solver that holds the plain invariants, the others in a context of their
        own."""
        facts = [*self.question(case, tier, part), *more]
        if tier == "quantified":
            return _plain_check(self.profile, facts, rlimit)
        return _check(facts, rlimit, True)

    def question(self, case, tier: str, part: int | None = None) -> list:
        """The facts of one question. tier: "ground" (instances only), "quantified" (plain:
        without the plain invariants, which `_plain_check` holds), "guided" (both); `part`: only
        that conjunct of the goal (`conjuncts`)."""
        if tier == "quantified":
            goal = self._once("goal", lambda: self.goal(None))
            return [*self.plain_facts(), case, z3.Not(goal)]
        ground = tier == "ground"
        facts = self._once(("facts", ground), lambda: self.facts(ground)[0])
        goal = self.goal(self.pools, ground) if part is None else self.parts()[part]
        return [*facts, case, z3.Not(goal)]

    def parts(self) -> list:
        """The conjuncts of the ground tier's goal."""
        return self._once("parts", lambda: conjuncts(self.goal(self.pools, True)))

    def unchanged_on_failure(self, rlimit: int) -> bool:
        """Whether a failing call leaves every field as it was, ghost included: then a state
        property holds after it because it held before, and the failing case needs no query of
        its own. Asked with the plain invariants, as check_then_commit is (milliseconds, where
        the failing case of a property took seconds: a third of pKVM's proof time)."""
        same = [self.post.arrays[f] == self.pre.arrays[f] for f in self.post.arrays]
        verdict, _ = _plain_check(self.profile, [*self.plain_facts(), self.step.errno != 0,
                                                 z3.Not(z3.And(*same))], rlimit)
        return verdict == z3.unsat

    def refines(self, call, discipline: bool, rlimit: int) -> bool:
        """Whether, when this call succeeds on the branch of the nested `call`, the callee is
        called within its own obligations' assumptions, succeeds, and leaves the same state
        (ghost included): then the callee's proof of a state property covers the branch."""
        name, args, guard = call
        callee = self.profile.transitions[name]
        inner = run(callee, self.hooks.stepping(self.m, self.pre, self.profile.transitions),
                    list(args))
        same = [self.post.arrays[f] == inner.post[f] for f in self.post.arrays]
        goal = [inner.errno == 0, *[a >= 0 for a in args], *same]
        if discipline and callee.discipline:
            goal.append(callee.discipline(self.view(self.pre), *args))
        facts = [*self.plain_facts(), *inner.side_facts(), self.step.errno == 0, guard]
        verdict, _ = _plain_check(self.profile, [*facts, z3.Not(z3.And(*goal))], rlimit)
        return verdict == z3.unsat


@dataclass(frozen=True)
class Frame:
    """What the obligations of one transition and every state property share: which of its
    nested calls are proved through their callee (`_Query.refines`), and whether a failing
    call leaves every field as it was (`_Query.unchanged_on_failure`). Asked once per
    transition, in the fork of its obligations (`discharge_with`): a third of the light
    obligations' time went into asking it again for each property."""
    refined: tuple[int, ...]  # indexes into the step's nested calls
    unchanged_on_failure: bool


def _frame(q: _Query, discipline: bool, budget: int, modular: bool) -> Frame:
    refined = tuple(i for i, call in enumerate(q.step.calls)
                    if modular and q.refines(call, discipline, budget))
    return Frame(refined, q.unchanged_on_failure(min(QUICK, budget)))


def _transition_frame(profile, transition: str, discipline: bool, budget: int,
                      modular: bool) -> Frame:
    """A transition's `Frame`, asked without a property (the query's goal is never built)."""
    return _frame(_Query(profile, None, profile.transitions[transition], discipline),
                  discipline, budget, modular)


def _discharge_step(profile, ob: Obligation, discipline: bool, budget: int, modular: bool,
                    frame: Frame | None = None):
    q = _Query(profile, _property(profile, ob.property), profile.transitions[ob.transition],
               discipline)
    nested, framed = [], False
    if q.prop.state is not None:
        frame = frame or _frame(q, discipline, budget, modular)
        nested, framed = [q.step.calls[i] for i in frame.refined], frame.unchanged_on_failure
    status = "proved"
    for case in _cases(q, [guard for _, _, guard in nested], failing=not framed):
        verdict, model = q.ask(case, "quantified", min(QUICK, budget))
        if verdict == z3.sat:
            return "violated", q.hooks.counterexample(q, model), ()
        if verdict == z3.unsat:
            continue
        open_parts = []
        for part in range(len(q.parts())):
            verdict, real = _ground(q, case, budget, part)
            if real is not None:
                return "violated", real, ()
            if verdict != z3.unsat:
                open_parts.append(part)
        if not open_parts:
            continue
        verdict, model = q.ask(case, "guided", budget // 4)  # rarely settles what ground left
        if verdict == z3.sat:
            return "violated", q.hooks.counterexample(q, model), ()
        if verdict != z3.unsat:
            status = "unknown"
    return status, None, tuple(dict.fromkeys(name for name, _, _ in nested))


def conjuncts(goal) -> list:
    """A goal's conjuncts (nested `And`s flattened): the ground tier proves each on its own,
    which z3 does far faster than the whole (pKVM's sharing_pairs on a 2 MiB unshare: 29 s
    against 92 s). Splitting further, through implications, made the many small queries cost
    more than they saved."""
    if z3.is_and(goal):
        return [c for kid in goal.children() for c in conjuncts(kid)]
    return [goal]


def _ground(q: _Query, case, limit: int, part: int):
    """The ground tier on one conjunct of the goal: (verdict, concrete counterexample or None).
    A model z3 finds is made concrete by the profile; when it does not fit a small machine, z3
    is asked again for models the profile deems small, smallest first (for pKVM: every leaf one
    page and the optional machine parts off, then every leaf one page; unsat there proves
    nothing). A property the concrete reading cannot evaluate
    (`proof_only`) is never made concrete: its ground models stay open."""
    verdict, model = q.ask(case, "ground", limit, part)
    if verdict != z3.sat or q.prop.name in proof_only(q.profile):
        return verdict, None
    real = q.hooks.concretize(q, model, q.profile)
    for small in q.hooks.small_models(q) if real is None else ():
        again, steered = q.ask(case, "ground", limit, part, small)
        if again == z3.sat:
            real = q.hooks.concretize(q, steered, q.profile)
        if real is not None:
            break
    return verdict, real


def _cases(q: _Query, covered: list, failing: bool = True) -> list:
    """The succeeding call outside the `covered` branches (those of nested calls proved through
    their callee), as the profile splits it; then the failing call, unless it is known to
    leave the state as it was (`_Query.unchanged_on_failure`)."""
    ok = z3.And(q.step.errno == 0, *[z3.Not(guard) for guard in covered])
    return [*q.hooks.cases(q, ok), *([q.step.errno != 0] if failing else [])]


def discharge(profile, ob: Obligation, discipline: bool = True, budget: int = BUDGET) -> Result:
    """Prove one obligation (and whatever callee obligations its proof relies on), or find a
    counterexample to it."""
    return discharge_all(profile, [ob], discipline, budget, jobs=1)[0]


def discharge_all(profile, obs: list[Obligation], discipline: bool = True, budget: int = BUDGET,
                  jobs: int = 2, on_result=None, tick=None) -> list[Result]:
    """Every obligation, a few of a transition's together in a freshly forked process (`jobs`
    at a time): z3's answers depend on what its context has seen, and a fork of the same
    parent at the same point of the run, running the same obligations in the same order, is
    the same context every time (`model.forks`). `on_result(result)` is called for each
    obligation as its fork finishes, `tick()` every half second while none does (it may raise
    to stop the run: the workers ignore Ctrl-C, the caller's to handle)."""
    return discharge_with(profile, obs, (), discipline, budget, jobs, on_result, tick)[0]


def discharge_with(profile, obs: list[Obligation], side, discipline: bool = True,
                   budget: int = BUDGET, jobs: int = 2, on_result=None, tick=None):
    """`discharge_all`, with `side` (functions of no argument, say bounded checks) run among
    the obligations, each in its own fork too. The initial state's obligations first: they take
    milliseconds, so a run stopped early has answers. Then longest first, so that the run does
    not idle on one slow task at its end while a core waits: the obligations the profile names
    `slow`, each in a fork of its own, then the side work, then the other obligations of each
    transition together, `CHUNK` to a fork, which asks the transition's `Frame` and runs its
    step once for all of them (a fork per obligation cost a third of the light obligations'
    time; a fork per transition ran a mutant's violations, often of one call, on one core).
    (results, the side functions' values)"""
    values: dict = {}
    slow = set(getattr(profile.prover, "slow", ()))  # the profile's longest obligations
    side = list(enumerate(side))  # run with the first round only

    def run_all(todo, modular=True):
        nonlocal side
        groups: dict[str, list] = {}  # the obligations by transition, in their order
        for ob in todo:
            if (ob.property, ob.transition) not in slow:
                groups.setdefault(ob.transition, []).append(ob)
        work = [("obs", groups.pop(INIT))] if INIT in groups else []
        work += [("obs", [ob]) for ob in todo if (ob.property, ob.transition) in slow]
        work += [("side", f) for f in side]
        work += [("obs", group[i:i + CHUNK]) for group in groups.values()
                 for i in range(0, len(group), CHUNK)]
        side, out = [], {}

        def do(item):
            kind, what = item
            if kind == "side":
                return what[1]()
            t, frame = what[0].transition, None
            if t != INIT and len(what) > 1 and any(
                    _property(profile, ob.property).state for ob in what):
                frame = _transition_frame(profile, t, discipline, budget, modular)
            return [_discharge_one(profile, ob, discipline, budget, modular, frame)
                    for ob in what]

        def done(index, answer):
            kind, what = work[index]
            if kind == "side":
                values[what[0]] = answer
                return
            for ob, result in zip(what, answer):
                out[ob] = result
                if on_result is not None:
                    on_result(result)

        run_forked(work, do, jobs, done, tick=tick)
        return out

    plain_invariants(profile)  # for every fork to inherit
    results = _settle(obs, run_all)
    return results, [values[i] for i in sorted(values)]


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
