"""What an exploration returns: the graph, its states, the violations with their traces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import networkx as nx

from model.transitions import Call

# Checks every protocol gets from the explorer, beside its own properties.
GRAPH_CHECKS = {
    "errno_known": "a failing call returns a negative errno the kernel knows",
    "call_completes": "every call runs to completion in the model (a crash is a model bug)",
}

class TraceStep(NamedTuple):
    """One step of a trace: the call, the kernel's answer (None: the model's code raised), the
    states before and after."""

    call: Call
    errno: int | None
    pre: object
    post: object


@dataclass
class Violation:
    property: str
    doc: str
    kind: str  # "state", "step" or "graph"
    trace: list  # list of TraceStep, shortest from the initial state
    where: str = ""  # the indexes at which the property fails, e.g. "page 1"
    clause: str = ""  # the clause of the property that is false there, quoted from its source

    @property
    def length(self) -> int:
        return len(self.trace)


@dataclass
class Exploration:
    """What a bounded exploration found. Node i of `graph` is `states[i]` (a representative)."""

    profile: object
    config: object
    graph: nx.DiGraph
    states: list
    calls: list
    depth_of: list
    depth: int
    complete: bool
    seconds: float
    edges: int  # successful (state, call) pairs, parallel ones counted
    tried: int  # calls tried, failing ones included
    violations: list
    sometimes: dict
    symmetry: dict
    graph_checks: dict
    witnesses: dict = field(default_factory=dict)
    stopped: str | None = None  # why an incomplete search ended: max_depth, max_states,
    # violation, interrupted (then `interruption` is the exception that stopped it)
    interruption: BaseException | None = field(default=None, repr=False)
    # The search's own bookkeeping, for traces and counts.
    parent: list = field(default_factory=list, repr=False)  # BFS tree: parent node, -1 at root
    via: list = field(default_factory=list, repr=False)  # index of the call from the parent
    sym: object = field(default=None, repr=False)
    stepper: object = field(default=None, repr=False)
    props: dict = field(default_factory=dict, repr=False)

    def summary(self, traces: Callable | None = None) -> dict:
        """Plain JSON-able data; `traces(violation)` turns each trace into data (default: calls)."""
        to_data = traces or (lambda v: [str(s.call) for s in v.trace])
        return {
            "states": len(self.states),
            "edges": self.edges,
            "tried": self.tried,
            "depth": self.depth,
            "complete": self.complete,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "states_per_second": round(len(self.states) / self.seconds) if self.seconds else None,
            "violations": [{"property": v.property, "doc": v.doc, "kind": v.kind,
                            "where": v.where, "clause": v.clause, "length": v.length, "trace": to_data(v)}
                           for v in self.violations],
            "sometimes": dict(self.sometimes),
            "symmetry": dict(self.symmetry),
            "graph": dict(self.graph_checks),
        }
