"""Conformance by long random walks: hypothesis' `RuleBasedStateMachine` runs the model and
the reference side by side on larger machines (the adapter's walk machines), hundreds of calls
per walk, and shrinks any disagreement to its shortest sequence (then `minimize` drops every
call it can)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from model.conformance.compare import minimize, side_by_side, without_bounds
from model.conformance.report import Disagreement
from model.transitions import Call


def call_strategy(profile, config):
    """A hypothesis strategy of calls with arguments drawn from the adapter's fixed,
    boundary-heavy value sets (mostly rejections)."""
    from hypothesis import strategies as st

    adapter, transitions = profile.reference, profile.transitions
    values = {kind: pick(v) for kind, v in adapter.walk_values(config).items()}
    names = [name for name in transitions for _ in range(adapter.walk_weights.get(name, 3))]

    def args_of(name):
        return st.tuples(*[values[p] for p in transitions[name].params]).map(
            lambda args: transitions[name].call(*args))

    return pick(names).flatmap(args_of)


def pick(values: list):
    """A nearly uniform choice (hypothesis' sampled_from draws the first value far more often)."""
    from hypothesis import strategies as st

    return st.integers(0, 0xFFFF).map(lambda i: values[i % len(values)])


class WalkDisagreement(AssertionError):
    """Raised inside a walk; carries the disagreement with the (shrunk) sequence as its trace."""

    def __init__(self, disagreement: Disagreement):
        super().__init__(disagreement.text())
        self.disagreement = disagreement


def walk_machine(profile, config, discipline: bool | None = None, counter: list | None = None,
                 late_after: int = 150):
    """A RuleBasedStateMachine class: the model and the reference, side by side, on one machine.

    Rules: a call with random arguments, and (twice as likely) a call picked among those likely
    to succeed in the current state; VMs start being torn down after `late_after` calls."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    disciplined = profile.disciplined(config) if discipline is None else discipline
    tally = counter if counter is not None else [0]
    profile = without_bounds(profile)
    adapter = profile.reference

    class ConformanceWalk(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.state = profile.initial_state(config)
            self.ref = adapter.fresh(config)
            self.calls: list[Call] = []

        @rule(call=call_strategy(profile, config))
        def random_call(self, call):
            self.make(call)

        @rule(data=st.data())
        def targeted_call(self, data):
            candidates = adapter.targeted_calls(profile.transitions, config, self.state,
                                                len(self.calls) > late_after)
            if candidates:
                self.make(data.draw(pick(candidates), label="call"))

        @rule(data=st.data())
        def another_targeted_call(self, data):  # two targeted rules: twice the random rule's weight
            self.targeted_call(data)

        def make(self, call):
            outcome, d = side_by_side(profile, config, disciplined, self.state, self.ref, call)
            if d is not None:
                d.trace = list(self.calls)
                raise WalkDisagreement(d)
            if outcome is not None:
                tally[0] += 1
                self.calls.append(call)
                self.state = outcome.state

    return ConformanceWalk


@dataclass
class WalkReport:
    walks: int
    calls: int
    seconds: float
    disagreements: list
    configs: list

    def to_data(self) -> dict:
        return {"walks": self.walks, "calls": self.calls, "seconds": round(self.seconds, 3),
                "machines": self.configs,
                "disagreements": [d.to_data() for d in self.disagreements]}


def walk(profile, configs: Iterable | None = None, *, walks: int = 30, steps: int = 300,
         discipline: bool | None = None, seed: int | None = None, shrink_seconds: float = 20,
         stop_at_first: bool = False) -> WalkReport:
    """`walks` random walks of `steps` calls, spread over the configs (default: the adapter's
    walk machines). A disagreement ends the
    walks of that machine (of all machines with `stop_at_first`); hypothesis shrinks it (for at
    most `shrink_seconds`: long walks replay slowly), then `minimize` drops every call it can."""
    from hypothesis import HealthCheck, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.internal.conjecture import engine
    from hypothesis.reporting import with_reporter
    from hypothesis.stateful import get_state_machine_test

    configs = list(configs if configs is not None else profile.reference.walk_configs)
    start = time.perf_counter()
    counter = [0]
    found = []
    for index, config in enumerate(configs):
        share = walks // len(configs) + (1 if index < walks % len(configs) else 0)
        if share == 0:
            continue
        machine = walk_machine(profile, config, discipline, counter, late_after=steps // 2)
        run = get_state_machine_test(
            machine, _min_steps=steps,
            settings=settings(max_examples=share, stateful_step_count=steps, deadline=None,
                              database=None, derandomize=seed is None, print_blob=False,
                              suppress_health_check=list(HealthCheck)))
        if seed is not None:
            run = hypothesis_seed(seed + index)(run)
        cap = getattr(engine, "MAX_SHRINKING_SECONDS", None)
        try:
            engine.MAX_SHRINKING_SECONDS = shrink_seconds
            with with_reporter(lambda _text: None):
                run()
        except WalkDisagreement as err:
            d = minimize(profile, config, err.disagreement, discipline)
            d.where = f"walk on {profile.presenter.machine_text(config)}"
            found.append(d)
            if stop_at_first:
                break
        finally:
            if cap is not None:
                engine.MAX_SHRINKING_SECONDS = cap
    return WalkReport(walks, counter[0], time.perf_counter() - start, found,
                      [profile.presenter.machine_text(c) for c in configs])
