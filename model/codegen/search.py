"""A breadth-first count of the reachable states on compiled steps (no graph, no traces).

What the explorer's unreduced count is (distinct states reached by successful calls from the
initial state), on packed states and compiled calls: for measuring the compiled reading's
speed, and for teaching it every value a reachable state needs before an export. The first
`check_first` states are held against the concrete reading (`python.check`).
"""

from __future__ import annotations

import time

from model.codegen.python import _Unknown, check, compiled_successors


def reachable(profile, config, *, max_seconds: float | None = None, check_first: int = 100,
              properties: bool = False, compiled=None) -> dict:
    """States, edges (successful calls), seconds and whether it completed; with `properties`,
    the always state properties are evaluated in every state too (`violated` names them)."""
    comp = compiled or compiled_successors(profile, config, properties)
    start = time.perf_counter()
    s0 = comp.pack(profile.initial_state(config))
    seen = {s0: None}
    frontier = [s0]
    edges = 0
    violated: set = set()
    complete = True
    checked = 0
    deadline = None if max_seconds is None else start + max_seconds
    while frontier:
        if checked < check_first:
            batch = frontier[:check_first - checked]
            check(comp, [comp.unpack(s) for s in batch])
            checked += len(batch)
        nxt = []
        for s in frontier:
            if properties:
                for i in range(len(comp.always)):
                    if not comp.holds(s, i):
                        violated.add(comp.always[i].name)
            for ci, fn in enumerate(comp.functions(s[0])):
                try:
                    out = fn(s)
                except _Unknown as why:
                    out = comp.relearn(ci, s, why)
                if out is None or out[0]:
                    continue
                edges += 1
                t = out[1]
                if t not in seen:
                    seen[t] = None
                    nxt.append(t)
            if deadline is not None and time.perf_counter() > deadline:
                complete = False
                break
        if not complete:
            break
        frontier = nxt
    seconds = time.perf_counter() - start
    return {"states": len(seen), "edges": edges, "seconds": seconds, "complete": complete,
            "traced": comp.traced, "reused": comp.reused,
            "compile_seconds": comp.compile_seconds, "fallbacks": comp.fallbacks,
            "shapes": len(comp.shapes), "violated": sorted(violated), "compiled": comp,
            "seen": seen}
