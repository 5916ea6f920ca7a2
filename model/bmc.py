"""Bounded model checking with z3, for what induction cannot show.

Induction proves that nothing bad ever happens; it cannot show that something good *can*
happen. The `sometimes` properties (every transition can succeed, a page can go host -> guest ->
host, ...) and the stranding hazard of an undisciplined host are reachability questions. Here
they are answered symbolically: the protocol is unrolled `depth` steps from the initial state of
a stated machine (each step any transition with any arguments, chosen by z3), and z3 searches
for a path that reaches the property. The same transition text as everywhere else is unrolled.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import z3

from model.forks import run_forked
from model.properties import Property
from model.symbolic import check, run
from model.transitions import errno_name

RLIMIT = 400_000_000  # z3 resource units per search: deterministic, unlike a clock


@dataclass
class Reach:
    property: str
    depth: int
    witnessed: bool  # a path reaching the property was found
    seconds: float
    path: list[str]  # the calls of the witness path
    expected: bool = True  # reachable is what should be (False: it must not be, to this depth)

    @property
    def holds(self) -> bool:
        """The check came out as it should: reached if expected, not reached if not."""
        return self.witnessed == self.expected


class Unrolling:
    """`depth` symbolic steps from the initial state of `config`'s machine, each call's arguments
    drawn from the configuration's domains (those of the explorer). With `calls`, each step is
    one of those transitions only: a path among fewer calls is still a path of the protocol, so
    such an unrolling can show a state reachable, never unreachable (it keeps a witness search
    of a long path within z3's reach)."""

    def __init__(self, profile, config, depth: int, calls: tuple[str, ...] | None = None):
        self.profile, self.config, self.depth, self.calls = profile, config, depth, calls
        hooks = self.hooks = profile.prover
        transitions = profile.transitions
        self.m = m = hooks.machine("_bmc")
        self.facts = hooks.fix_machine(m, config)
        self.names = list(calls or transitions)
        self.states = [hooks.initial(m)]
        self.steps = []  # per step: (selector, {name: (args, SymbolicStep)})
        for i in range(depth):
            pre = self.states[-1]
            choice = z3.Int(f"choice{i}")
            self.facts += [choice >= 0, choice < len(self.names)]
            runs = {}
            for name in self.names:
                t = transitions[name]
                args = [z3.Int(f"{name}.{p}@{i}") for p in t.params]
                step = run(t, hooks.stepping(m, pre, transitions), args)
                self.facts += [z3.Or(*[a == x for x in profile.domain(config, p)])
                               for a, p in zip(args, t.params)]
                self.facts += step.side_facts(ground_only=True, pages=hooks.range_pages(config))
                if profile.disciplined(config) and t.discipline:
                    self.facts.append(z3.Implies(choice == self.names.index(name),
                                                 t.discipline(hooks.reading(m, pre), *args)))
                runs[name] = (args, step)
            post = hooks.fresh_state(f"@{i + 1}")
            for field, arr in post.arrays.items():
                chosen = pre.arrays[field]
                for k, name in enumerate(self.names):
                    chosen = z3.If(choice == k, runs[name][1].post[field], chosen)
                self.facts.append(arr == chosen)
            self.states.append(post)
            self.steps.append((choice, runs))

    def reaches(self, prop: Property) -> z3.BoolRef:
        """The property holds in some state (state property) or on some step (step property)."""
        read = self.hooks.reading
        if prop.state:
            return z3.Or(*[prop.state(read(self.m, s)) for s in self.states])
        options = []
        for i, (choice, runs) in enumerate(self.steps):
            pre, post = read(self.m, self.states[i]), read(self.m, self.states[i + 1])
            for k, name in enumerate(self.names):
                options.append(z3.And(choice == k,
                                      prop.step(name, runs[name][1].errno, pre, post)))
        return z3.Or(*options)

    def search(self, prop: Property, rlimit: int = RLIMIT, expected: bool = True) -> Reach:
        if self.calls and not expected:
            raise ValueError(f"{prop.name}: a search among some calls cannot show it unreachable")
        start = time.perf_counter()
        verdict, model = check([*self.facts, self.reaches(prop)], rlimit)
        found = verdict == z3.sat
        path = self._path(model) if found else []
        if verdict == z3.unknown and not expected:
            found = True  # not shown unreachable within the budget: no claim of safety
            path = ["(z3 gave no answer within the budget)"]
        return Reach(prop.name, self.depth, found, time.perf_counter() - start, path, expected)

    def _path(self, model) -> list[str]:
        out = []
        for choice, runs in self.steps:
            name = self.names[model.eval(choice, model_completion=True).as_long()]
            args, step = runs[name]
            values = ", ".join(f"{p}={model.eval(a, model_completion=True)}"
                               for p, a in zip(self.profile.transitions[name].params, args))
            errno = model.eval(step.errno, model_completion=True).as_long()
            out.append(f"{name}({values}) -> {errno_name(errno)}")
        return out


def run_checks(profile, rlimit: int = RLIMIT, jobs: int = 1):
    """Every bounded check of the profile (`profile.prover.bmc_checks`: property, machine,
    depth and, optionally, whether the property should be reachable (default) or must not be
    within that depth, and the calls a witness path is searched among (default all)):
    (machine description, Reach) pairs, in the profile's order. Each check
    runs in a process freshly forked from this one, `jobs` at a time, as the prover's
    obligations do: z3's answers depend on what its context has seen, so a check's path must
    not depend on which checks ran before it or on how many run at once."""
    todo = checks(profile, rlimit)
    found: dict = {}
    run_forked(todo, lambda job: job(), jobs, found.__setitem__)
    return [found[i] for i in range(len(todo))]


def checks(profile, rlimit: int = RLIMIT) -> list:
    """The profile's bounded checks as functions of no argument, each returning what
    `run_checks` lists for it: for a run of them beside other work
    (`model.prover.discharge_with`, which forks a process for each, as `run_checks` does)."""
    return [functools.partial(_run, profile, prop, profile.adjust(config), depth, rlimit, *rest)
            for prop, config, depth, *rest in profile.prover.bmc_checks(profile)]


def _run(profile, prop, config, depth, rlimit, expected=True, calls=None):
    reach = Unrolling(profile, config, depth, calls).search(prop, rlimit, expected)
    return profile.presenter.machine_text(config), reach
