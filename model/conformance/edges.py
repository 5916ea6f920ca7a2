"""Conformance edge by edge, alongside the explorer.

`EdgeChecker` is an `on_edge` hook for `model.explorer.explore`. It keeps one reference per
explored state (the parent's reference, cloned, with the BFS edge replayed on it), replays every
tried call on a clone of the source state's reference and compares: the errno; for a failing
call, that the reference did not change a single bit; for a successful call, that the
abstraction of the new reference state equals the model's target. `explore_conformance()` runs
the unreduced exploration (symmetry off: every concrete state has its own reference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from model.conformance.compare import breach, compare_call, diff
from model.conformance.report import Disagreement
from model.profile import Unrepresentable
from model.transitions import Call, Outcome


class _Stop(Exception):
    """Raised from the edge hook to end an exploration once enough disagreements were found."""


class EdgeChecker:
    """`on_edge(src, call, outcome)` for the explorer: replays every tried call on the reference.

    One reference per explored state, taken from its BFS parent's reference with the BFS edge
    replayed (the first edge that reaches the state). A source state is used once by a BFS, so its
    reference is dropped after its calls (memory stays at about one BFS frontier). References are
    cloned copy-on-write, so a failing call costs one reference call and one bit-for-bit compare;
    the abstraction is computed once per successful call."""

    def __init__(self, profile, config, *, discipline: bool | None = None,
                 limit: int | None = None):
        self.profile = profile
        self.config = config
        self.discipline = profile.disciplined(config) if discipline is None else discipline
        self.limit = limit
        self.disagreements: list[Disagreement] = []
        self.checked = self.failing = self.skipped = 0
        s0 = profile.initial_state(config)
        root = profile.reference.fresh(config)
        self._refs: dict = {}
        self._seen: set = {s0}  # states given a reference
        self._diverged: set = set()  # states the model reached only through disagreeing edges
        self._parent: dict = {s0: None}
        self._src = None
        self._pristine = None
        self._work = None
        try:
            start = profile.reference.abstract(root, config)
        except Unrepresentable as err:
            self._record(Disagreement("unrepresentable", None, None, None,
                                      note=f"the fresh reference: {err}"), s0)
            return
        if start != s0:
            self._record(Disagreement("state", None, None, None, diff(profile, config, s0, start),
                                      note="the fresh reference is not the model's initial state"), s0)
            return
        self._refs[s0] = root

    def trace(self, state) -> list[Call]:
        """The calls of the BFS tree from the initial state to a state with a reference."""
        out = []
        link = self._parent.get(state)
        while link is not None:
            state, call = link
            out.append(call)
            link = self._parent.get(state)
        out.reverse()
        return out

    def _record(self, d: Disagreement, src) -> None:
        d.trace = self.trace(src)
        self.disagreements.append(d)
        if self.limit is not None and len(self.disagreements) >= self.limit:
            raise _Stop()

    def __call__(self, src, call: Call, outcome: Outcome) -> None:
        if src is not self._src:
            self._src = src
            self._pristine = self._refs.pop(src, None)
            self._work = None
        pristine = self._pristine
        if pristine is None:
            if src not in self._diverged:
                raise RuntimeError(
                    "EdgeChecker: an edge from a state no checked edge reached; conformance needs "
                    "the unreduced exploration, explore(profile, config, symmetry=False, "
                    "on_edge=checker)")
            self.skipped += 1  # the source was reached only through disagreeing edges
            if outcome.errno == 0 and outcome.state not in self._seen:
                self._diverged.add(outcome.state)
            return
        self.checked += 1
        if self.discipline:
            found = breach(self.profile, pristine, call, outcome.errno)
            if found is not None:
                if outcome.errno == 0 and outcome.state not in self._seen:
                    self._diverged.add(outcome.state)
                self._record(found, src)
                return
        work = self._work if self._work is not None else self.profile.reference.clone(pristine)
        d, ref_errno = compare_call(self.profile, self.config, src, outcome, work, call, pristine)
        if ref_errno:
            self.failing += 1
        self._work = work if ref_errno and d is None else None
        if d is not None:
            if outcome.errno == 0 and outcome.state not in self._seen:
                self._diverged.add(outcome.state)
            self._record(d, src)
            return
        target = outcome.state
        if not ref_errno and target not in self._seen:
            self._seen.add(target)
            self._refs[target] = work
            self._parent[target] = (src, call)


@dataclass
class ExplorationReport:
    machine: str
    states: int
    edges_checked: int
    failing_calls: int
    skipped: int
    complete: bool
    seconds: float
    disagreements: list

    def to_data(self) -> dict:
        return {"machine": self.machine, "states": self.states,
                "edges_checked": self.edges_checked, "failing_calls": self.failing_calls,
                "skipped": self.skipped, "complete": self.complete,
                "seconds": round(self.seconds, 3),
                "disagreements": [d.to_data() for d in self.disagreements]}


def explore_conformance(profile, config, *, discipline: bool | None = None,
                        limit: int | None = 20, max_states: int | None = None,
                        progress: Callable | None = None) -> ExplorationReport:
    """Explore `config` under the profile's protocol (symmetry off) and replay every tried call
    on the reference. `discipline` is the caller discipline of the config the user asked for (a
    mutant may have dropped it from `config`). Stops after `limit` disagreements."""
    from model.explorer import explore  # the explorer drives; conformance only hooks in

    start = time.perf_counter()
    checker = EdgeChecker(profile, config, discipline=discipline, limit=limit)
    states, complete = 0, True
    if not checker.disagreements:
        try:
            result = explore(profile, config, symmetry=False, properties=[],
                             on_edge=checker, graph_checks=False, max_states=max_states,
                             progress=progress)
            states, complete = len(result.states), result.complete
        except _Stop:
            complete = False
        except Exception as err:  # noqa: BLE001 - the model side crashed: report where
            complete = False
            src = checker._src if checker._src is not None else profile.initial_state(config)
            crashing = None
            for call in profile.calls(config):
                try:
                    profile.step(config, src, call)
                except Exception:  # noqa: BLE001
                    crashing = call
                    break
            checker.disagreements.append(Disagreement(
                "model-error", crashing, None, None, trace=checker.trace(src),
                note=f"the model raised {err!r} (the explorer stopped)"))
    states = states or len(checker._seen)  # stopped early: the states reached so far
    return ExplorationReport(profile.presenter.machine_text(config), states, checker.checked, checker.failing, checker.skipped,
                             complete, time.perf_counter() - start, checker.disagreements)
