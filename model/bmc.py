"""Bounded model checking with z3, for what induction cannot show.

Induction proves that nothing bad ever happens; it cannot show that something good *can*
happen. The `sometimes` properties (every transition can succeed, a page can go host -> guest ->
host, ...) and the stranding hazard of an undisciplined host are reachability questions. Here
they are answered symbolically: the protocol is unrolled `depth` steps from the initial state of
a stated machine (each step any transition with any arguments, chosen by z3), and z3 searches
for a path that reaches the property. The same transition text as everywhere else is unrolled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import z3

from model.properties import Property
from model.states import Config
from model.symbolic import Machine, Symbolic, SymbolicState, initial, run
from model.transitions import TRANSITIONS, Transition, domain

RLIMIT = 400_000_000  # z3 resource units per search: deterministic, unlike a clock


@dataclass
class Reach:
    property: str
    depth: int
    witnessed: bool
    seconds: float
    path: list[str]  # the calls of the witness path


class Unrolling:
    """`depth` symbolic steps from the initial state of `config`'s machine, each call's arguments
    drawn from the configuration's domains (those of the explorer)."""

    def __init__(self, config: Config, depth: int,
                 transitions: dict[str, Transition] = TRANSITIONS):
        self.config, self.depth = config, depth
        self.m = m = Machine("_bmc")
        self.facts = [m.ram == config.ram, m.mmio == config.mmio,
                      m.guests == len(config.guests),
                      *[z3.Select(m.protected, v) == flag for v, flag in enumerate(config.guests)]]
        self.names = list(transitions)
        self.states = [initial(m)]
        self.steps = []  # per step: (selector, {name: (args, SymbolicStep)})
        for i in range(depth):
            pre = self.states[-1]
            choice = z3.Int(f"choice{i}")
            self.facts += [choice >= 0, choice < len(self.names)]
            runs = {}
            for name in self.names:
                t = transitions[name]
                args = [z3.Int(f"{name}.{p}@{i}") for p in t.params]
                step = run(t, m, pre, args)
                self.facts += [z3.Or(*[a == x for x in domain(config, p)])
                               for a, p in zip(args, t.params)]
                self.facts += step.side_facts(ground_only=True, pages=range(config.pages + 1))
                if config.host_discipline and t.discipline:
                    self.facts.append(z3.Implies(choice == self.names.index(name),
                                                 t.discipline(Symbolic(m, pre), *args)))
                runs[name] = (args, step)
            post = SymbolicState.fresh(f"@{i + 1}")
            for field, arr in post.arrays.items():
                chosen = pre.arrays[field]
                for k, name in enumerate(self.names):
                    chosen = z3.If(choice == k, runs[name][1].post[field], chosen)
                self.facts.append(arr == chosen)
            self.states.append(post)
            self.steps.append((choice, runs))

    def reaches(self, prop: Property) -> z3.BoolRef:
        """The property holds in some state (state property) or on some step (step property)."""
        if prop.state:
            return z3.Or(*[prop.state(Symbolic(self.m, s)) for s in self.states])
        options = []
        for i, (choice, runs) in enumerate(self.steps):
            pre, post = Symbolic(self.m, self.states[i]), Symbolic(self.m, self.states[i + 1])
            for k, name in enumerate(self.names):
                options.append(z3.And(choice == k,
                                      prop.step(name, runs[name][1].errno, pre, post)))
        return z3.Or(*options)

    def search(self, prop: Property, rlimit: int = RLIMIT) -> Reach:
        start = time.perf_counter()
        solver = z3.Solver()
        solver.set("rlimit", rlimit)
        solver.add(*self.facts, self.reaches(prop))
        found = solver.check() == z3.sat
        path = self._path(solver.model()) if found else []
        return Reach(prop.name, self.depth, found, time.perf_counter() - start, path)

    def _path(self, model) -> list[str]:
        out = []
        for choice, runs in self.steps:
            name = self.names[model.eval(choice, model_completion=True).as_long()]
            args, step = runs[name]
            values = ", ".join(f"{p}={model.eval(a, model_completion=True)}"
                               for p, a in zip(TRANSITIONS[name].params, args))
            errno = model.eval(step.errno, model_completion=True)
            out.append(f"{name}({values}) -> {errno}")
        return out


def stranding(prop_name: str = "stranding_hazard") -> Property:
    """Some page is stranded: the undisciplined host's hazard, which must be reachable."""
    from model.properties import nothing_stranded

    return Property(prop_name, "sometimes", "a torn-down VM still holds a page (no host discipline)",
                    state=lambda s: s.Not(nothing_stranded(s)))


# What BMC checks by default, on which machine, to which depth: the round trips and the
# poisoned IPA (reachable only through several transitions in a row), and the stranding hazard.
CHECKS = (
    ("round_trip_protected", Config(ram=1, guests=(True,)), 3),
    ("round_trip_np", Config(ram=1, guests=(False,)), 3),
    ("protected_guest_POISON", Config(ram=1, guests=(True,)), 3),
    ("stranding_hazard", Config(ram=1, guests=(True,), host_discipline=False), 3),
)


def run_checks(transitions: dict[str, Transition] = TRANSITIONS, rlimit: int = RLIMIT):
    """Every default BMC check: (check description, Reach) pairs."""
    from model.properties import PROPERTIES

    out = []
    for name, config, depth in CHECKS:
        prop = stranding() if name == "stranding_hazard" else PROPERTIES[name]
        reach = Unrolling(config, depth, transitions).search(prop, rlimit)
        machine = {"ram": config.ram, "guests": ["protected" if g else "np" for g in config.guests],
                   "host_discipline": config.host_discipline}
        out.append((machine, reach))
    return out

