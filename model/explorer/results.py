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
    """The reachable graph as the search grows it, in flat integer arrays (a networkx graph
    costs hundreds of bytes per edge): one entry per (source, target) pair, added source by
    source in increasing order, so a source's arcs are the run `start[u]:start[u + 1]` (5
    bytes an arc while fewer than 256 distinct sets of calls label them: its target and the id
    of its interned tuple of call indexes, as narrow as the ids so far allow)."""

    def __init__(self):
        self.start = array("i", [0])  # per source node, where its arcs begin; then the end
        self.dst = array("i")
        self.call_ids = array("B")
        self.call_sets: list[tuple] = []
        self._ids: dict[tuple, int] = {}

    def add(self, src: int, dst: int, calls: list) -> None:
        start = self.start
        if src + 2 < len(start):
            raise ValueError(f"arcs of node {src} after those of node {len(start) - 2}")
        while len(start) <= src + 1:  # sources without arcs before this one
            start.append(start[-1])
        start[src + 1] += 1
        self.dst.append(dst)
        key = tuple(calls)
        cid = self._ids.get(key)
        if cid is None:
            cid = self._ids[key] = len(self.call_sets)
            self.call_sets.append(key)
            if cid in (256, 65536):  # the ids outgrow their width
                self.call_ids = array("H" if cid == 256 else "I", self.call_ids)
        self.call_ids.append(cid)

    def __len__(self) -> int:
        return len(self.dst)

    def truncate(self, arcs: int, sources: int) -> None:
        """Forget every arc from number `arcs` on, and the sources from `sources` on (the
        lengths of `dst` and `start` before them)."""
        del self.dst[arcs:], self.call_ids[arcs:], self.start[sources:]
        self.start[-1] = arcs

    def triples(self):
        """(source, target, call indexes) of every arc, in order."""
        start, dst, ids, sets = self.start, self.dst, self.call_ids, self.call_sets
        for u in range(len(start) - 1):
            for i in range(start[u], start[u + 1]):
                yield u, dst[i], sets[ids[i]]

    def successors(self, nodes: int) -> tuple[array, array]:
        """Compressed rows (offsets, targets): the successors of u are
        targets[offsets[u]:offsets[u + 1]], 4 bytes an arc (lists of ints cost ten times that)."""
        offsets = array("i", self.start)
        while len(offsets) <= nodes:
            offsets.append(offsets[-1])
        return offsets, self.dst

    def predecessors(self, nodes: int) -> tuple[array, array]:
        """The same rows for the reversed arcs (built in place: no temporary copy of a row)."""
        start, dst = self.start, self.dst
        offsets = array("i", [0]) * (nodes + 1)
        for v in dst:
            offsets[v + 1] += 1
        for n in range(nodes):
            offsets[n + 1] += offsets[n]
        fill = offsets[:nodes]
        sources = array("i", [0]) * len(dst)
        for u in range(len(start) - 1):
            for i in range(start[u], start[u + 1]):
                v = dst[i]
                sources[fill[v]] = u
                fill[v] += 1
        return offsets, sources

    def digraph(self, nodes: int) -> nx.DiGraph:
        graph = nx.DiGraph()
        graph.add_nodes_from(range(nodes))
        graph.add_edges_from((u, v, {"calls": c}) for u, v, c in self.triples())
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
    # violation, witnessed, interrupted (then `interruption` is the exception that stopped it)
    interruption: BaseException | None = field(default=None, repr=False)
    # The search's own bookkeeping, for traces and counts.
    parent: list = field(default_factory=list, repr=False)  # BFS tree: parent node, -1 at root
    via: list = field(default_factory=list, repr=False)  # index of the call from the parent
    sym: object = field(default=None, repr=False)
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
