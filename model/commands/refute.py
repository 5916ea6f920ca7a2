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
from model.render import trace_data
from model.properties import Property
from model.prover import Result, proved_properties

MAX_STATES = 200_000  # the search's bound: a refutation is worth a few seconds, not minutes


def _breaks(prop: Property, transition: str) -> Property:
    """`always` step property: no call of `transition` takes a state satisfying `prop` to one
    that does not (or, for a step property, violates it)."""
    def holds(call, errno, pre, post):
        if call != transition:
            return True
        if prop.step is not None:
            return prop.step(call, errno, pre, post)
        return pre.Implies(prop.state(pre), prop.state(post))
    return Property(f"{prop.name}/{transition}", "always", prop.doc, step=holds)


def refute(profile, result: Result, max_states: int = MAX_STATES) -> Result:
    """The result, or a violation found by a bounded search on the profile's default machine."""
    if result.status == "proved" or result.transition == "init" or \
            (result.counterexample or {}).get("reachable"):
        return result
    prop = next((p for p in proved_properties(profile) if p.name == result.property), None)
    if prop is None or prop.state is None and prop.step is None:
        return result
    config = profile.adjust(profile.default_config())
    try:
        found = explore(profile, config, properties=[_breaks(prop, result.transition)],
                        stop_on_violation=True, graph_checks=False, max_states=max_states)
    except Exception:  # noqa: BLE001 - a model crash is the explorer's to report, not ours
        return result
    hits = [v for v in found.violations if v.property == f"{prop.name}/{result.transition}"]
    if not hits:
        return result
    data = trace_data(profile, config, hits[0].trace)
    steps = data["steps"]
    before = steps[-2]["state"] if len(steps) > 1 else data["initial"]
    after, changed = steps[-1]["state"], steps[-1]["changed"]
    cells = {name: {"pre": before[name], "post": after[name],
                    "changed": [c.split(".", 1)[1] for c in changed if c.split(".", 1)[0] == name]}
             for name in after}
    counterexample = {"call": steps[-1]["call"], "errno": steps[-1]["errno"],
                      "machine": profile.presenter.machine_text(config), "concrete": True,
                      "reachable": True, "trace": [s["call"] for s in steps],
                      "where": hits[0].where, "clause": hits[0].clause,
                      "initial": data["initial"], "cells": cells}
    return Result(result.property, result.transition, "violated",
                  result.seconds + found.seconds, counterexample, ())
