"""What an exploration returns: the graph, its states, the violations with their traces."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from functools import cached_property
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


class Arcs:
    """The reachable graph as the search grows it: one entry per (source, target) pair, in
    flat integer arrays (a networkx graph costs hundreds of bytes per edge), the calls of an
    arc as an interned tuple of call indexes."""

    def __init__(self):
        self.src, self.dst = array("i"), array("i")
        self.calls: list[tuple] = []
        self._interned: dict[tuple, tuple] = {}

    def add(self, src: int, dst: int, calls: list) -> None:
        self.src.append(src)
        self.dst.append(dst)
        key = tuple(calls)
        self.calls.append(self._interned.setdefault(key, key))

    def __len__(self) -> int:
        return len(self.src)

    def successors(self, nodes: int) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(nodes)]
        for u, v in zip(self.src, self.dst):
            out[u].append(v)
        return out

    def predecessors(self, nodes: int) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(nodes)]
        for u, v in zip(self.src, self.dst):
            out[v].append(u)
        return out

    def digraph(self, nodes: int) -> nx.DiGraph:
        graph = nx.DiGraph()
        graph.add_nodes_from(range(nodes))
        graph.add_edges_from((u, v, {"calls": c}) for u, v, c in zip(self.src, self.dst,
                                                                     self.calls))
        return graph


@dataclass
class Exploration:
    """What a bounded exploration found. Node i of `graph` is `states[i]` (a representative);
    `graph` is a networkx DiGraph built from `arcs` when first asked for."""

    profile: object
    config: object
    arcs: Arcs
    states: list
    calls: list
    depth_of: list  # per node (an array of ints, like parent and via)
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

    @cached_property
    def graph(self) -> nx.DiGraph:
        return self.arcs.digraph(len(self.states))

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
