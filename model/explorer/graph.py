"""Properties of the complete reachable graph, and the size of the unreduced one.

A profile states each graph property as a predicate on concrete states (`GraphProperty`):
"return" (from every reachable state a target state is reachable: nothing stranded) and
"progress" (every reachable state has a successor other than itself unless it is final).
"""

from __future__ import annotations

from array import array

from model.explorer.results import Arcs, Exploration

ORBIT_LIMIT = 20_000  # group orders past which unreduced counts are not rebuilt from orbits


def unreduced_counts(result: Exploration) -> dict:
    """States and edges of the full (unreduced) graph, summed over the orbits of the nodes.

    Exact when the reduction is sound: every state of an orbit has the same number of
    successful calls, and the full graph holds the whole orbit of every node."""
    sym = result.sym
    if sym.trivial:
        return {"states": len(result.states), "edges": result.edges}
    if sym.order > ORBIT_LIMIT:  # enumerating every renaming of every state would take too long
        return {"states": None, "edges": None}
    states = edges = 0
    out_calls = [0] * len(result.states)
    for u, _v, calls in result.arcs.triples():
        out_calls[u] += len(calls)
    for node, state in enumerate(result.states):
        size = sym.orbit_size(state)
        states += size
        edges += size * out_calls[node]
    return {"states": states, "edges": edges}


def _can_reach(pred: tuple[array, array], targets: list[int], nodes: int) -> bytearray:
    """Per node, 1 if it has a path to one of the targets (reverse reachability)."""
    offsets, sources = pred
    seen = bytearray(nodes)
    for t in targets:
        seen[t] = 1
    stack = list(targets)
    while stack:
        v = stack.pop()
        for u in sources[offsets[v]:offsets[v + 1]]:
            if not seen[u]:
                seen[u] = 1
                stack.append(u)
    return seen


def graph_properties(profile, config, arcs: Arcs, states: list, found: dict) -> dict:
    """Check each of the profile's graph properties; the first failing node of each goes in
    `found`. Returns the counts: per property, how many states break it."""
    out = {"checked": True}
    nodes = len(states)
    pred = succ = None
    for prop in profile.graph:
        if prop.kind == "return":
            pred = pred or arcs.predecessors(nodes)
            home = [n for n, s in enumerate(states) if prop.target(config, s)]
            back = _can_reach(pred, home, nodes)
            bad = [n for n in range(nodes) if not back[n]]
        else:
            succ = succ or arcs.successors(nodes)
            offsets, targets = succ
            bad = [n for n in range(nodes)
                   if not any(v != n for v in targets[offsets[n]:offsets[n + 1]])
                   and not prop.target(config, states[n])]
        if bad:
            found[prop.name] = bad[0]
        out[prop.name] = len(bad)
    return out
