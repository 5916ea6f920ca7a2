"""Refuting what the prover cannot prove: a bounded search for a reachable counterexample.

An obligation z3 leaves unknown (or refutes only with a state it cannot make concrete, or with
a concrete pre-state that need not be reachable) may still be false on a small machine. The
explorer can say so exactly: a breadth-first search of the profile's default machine for a
state, reachable from the initial one, in which a call of the obligation's transition breaks
the property (for a step property: the call violates it).
Found, the obligation is violated, with the shortest such trace as its counterexample (a real
run, unlike an inductive counterexample, whose pre-state need not be reachable). Not found, it
stays as it was (unknown, or violated with its inductive counterexample): a bounded search
proves nothing.
"""

from __future__ import annotations

from model.explorer import explore
from model.explorer.memo import Reads
from model.render import trace_data
from model.properties import Property
from model.prover import Result, proof_only, proved_properties

MAX_STATES = 200_000  # the search's bound: a refutation is worth a few seconds, not minutes


def _breaks(prop: Property, transition: str, plain: type) -> Property:
    """`always` step property: no call of `transition` takes a state satisfying `prop` to one
    that does not (or, for a step property, violates it). `plain`: the type of the profile's
    concrete views, on which a state's value of `prop` is remembered."""
    seen: dict = {}  # the property on each state met: a state is the pre of many calls

    def state_holds(view):
        # only on the plain reading: not on the explorer's tracer of what a call reads, nor on
        # the view that finds which clause breaks
        if type(view) is not plain or isinstance(view.pre, Reads):
            return prop.state(view)
        if view.pre not in seen:
            seen[view.pre] = bool(prop.state(view))
        return seen[view.pre]

    def holds(call, errno, pre, post):
        if call != transition:
            return True
        if prop.step is not None:
            return prop.step(call, errno, pre, post)
        return pre.Implies(state_holds(pre), state_holds(post))
    return Property(f"{prop.name}/{transition}", "always", prop.doc, step=holds)


def refute(profile, result: Result, max_states: int = MAX_STATES) -> Result:
    """The result, or a violation found by a bounded search on the profile's default machine."""
    return refute_all(profile, [result], max_states)[0]


def _open(profile, result: Result):
    """The property a search could refute the result with, or None (proved, the initial
    state's, already a reachable run, or nothing the concrete reading can evaluate)."""
    if result.status == "proved" or result.transition == "init" or \
            (result.counterexample or {}).get("reachable"):
        return None
    prop = next((p for p in proved_properties(profile) if p.name == result.property), None)
    if prop is None or prop.state is None and prop.step is None or \
            prop.name in proof_only(profile):
        return None
    return prop


def refute_all(profile, results: list[Result], max_states: int = MAX_STATES) -> list[Result]:
    """Every result, each open one (see `_open`) refuted when the search finds a run: the
    default machine is searched for all of a transition's open obligations at once, again for
    those left after each search's first violations, and a search that finds nothing (it
    explores the whole bounded machine) ends it: once per transition, not once per obligation."""
    todo: dict = {}
    for i, r in enumerate(results):
        prop = _open(profile, r)
        if prop is not None:
            todo.setdefault(r.transition, []).append((i, prop))
    out = list(results)
    config = profile.adjust(profile.default_config())
    plain = type(profile.view(config, profile.initial_state(config)))
    for transition, items in todo.items():
        while items:  # each search ends with the layer of its first violation: ask the rest again
            checks = [_breaks(prop, transition, plain) for _, prop in items]
            try:
                found = explore(profile, config, properties=checks, graph_checks=False,
                                max_states=max_states, stop_on_violation=True)
            except Exception:  # noqa: BLE001 - a model crash is the explorer's to report
                break
            names = {v.property for v in found.violations}
            hit = [(i, check) for (i, _), check in zip(items, checks) if check.name in names]
            for i, check in hit:
                first = next(v for v in found.violations if v.property == check.name)
                out[i] = _violated(profile, config, results[i], first, found.seconds / len(hit))
            items = [(i, prop) for (i, prop), check in zip(items, checks)
                     if check.name not in names]
            if not hit:
                break
    return out


def _violated(profile, config, result: Result, hit, seconds: float) -> Result:
    """The result as violated, with the search's run as its counterexample."""
    data = trace_data(profile, config, hit.trace)
    steps = data["steps"]
    before = steps[-2]["state"] if len(steps) > 1 else data["initial"]
    after, changed = steps[-1]["state"], steps[-1]["changed"]
    cells = {name: {"pre": before[name], "post": after[name],
                    "changed": [c.split(".", 1)[1] for c in changed if c.split(".", 1)[0] == name]}
             for name in after}
    counterexample = {"call": steps[-1]["call"], "errno": steps[-1]["errno"],
                      "machine": profile.presenter.machine_text(config), "concrete": True,
                      "reachable": True, "trace": [s["call"] for s in steps],
                      "where": hit.where, "clause": hit.clause,
                      "initial": data["initial"], "cells": cells}
    return Result(result.property, result.transition, "violated",
                  result.seconds + seconds, counterexample, ())
