"""`pkvm-model explore --engine native`: a machine too large for the explorer, searched on the
compiled reading (`model/codegen/native.py`, on every core).

It checks every `always` property of a state in every reachable state (one per orbit with
symmetry), check-then-commit on every call (a failing call whose tree writes is judged on
whether its writes change the state, and walked again where what they read or write
changed), and which transitions succeed somewhere (the `..._succeeds` properties); it
gives a shortest trace per violated property, replayed call by call on concrete states and
judged again there by the property itself, so what is shown is a run of the model. It keeps no
graph and no pair of states: the profile's other step properties, its other `sometimes`
properties, the graph properties and the explorer's own checks stay the explorer's, and the
report names each one it did not check. Exit 0 when every property it checks holds, 1 when one
is violated, 2 on bad input; stopped (Ctrl-C, --max-seconds) as `explore`.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from model.explorer.results import GRAPH_CHECKS, TraceStep, Violation
from model.properties import check_then_commit, succeeds

# the explorer's options this engine has no meaning for, and why
REFUSED = {
    "conformance": ("--conformance", "the reference is replayed on the explorer's edges"),
    "checkpoint": ("--checkpoint", "the native search is not saved"),
    "resume": ("--resume", "the native search is not saved"),
    "save_graph": ("--save-graph", "the native search keeps no graph"),
    "unreduced": ("--unreduced", "the unreduced counts are summed over the explorer's graph"),
    "max_depth": ("--max-depth", "the native search is bounded by --max-seconds only"),
    "max_states": ("--max-states", "the native search is bounded by --max-seconds only"),
}


def refuse(args) -> None:
    """One line and exit 2 for an option the native engine cannot honour (before any work)."""
    from model.cli import UsageError

    if getattr(args, "engine", "explorer") != "native":
        if getattr(args, "trace_cache", None) is not None:
            raise UsageError("--trace-cache: only with --engine native")
        return
    for attr, (flag, why) in REFUSED.items():
        if getattr(args, attr, None):
            raise UsageError(f"--engine native: not with {flag} ({why})")


def judged(prop) -> bool:
    """Whether the native search judges an always property: one of a state, or
    check-then-commit (the machinery's, on the compiled trees)."""
    return prop.state is not None or prop.step is check_then_commit


def replay(profile, config, prop, paths: list[str]) -> Violation:
    """The native search's shortest path to a violation of `prop`, run again on concrete states
    from the initial one; the property must fail at its end (else the compiled reading lied).
    A step property fails on a call from the path's last state: the first in the calls' order
    that breaks it (under symmetry the search saw the renamed call, on its representative)."""
    from model.codegen.python import Disagreement
    from model.explorer.traces import blame

    calls = profile.calls(config)
    by_text = {str(c): c for c in calls}
    state, steps = profile.initial_state(config), []
    for text in paths:
        out = profile.step(config, state, by_text[text])
        if out is None or out.errno != 0:
            raise Disagreement(f"the native path to {prop.name} fails at {text}")
        steps.append(TraceStep(by_text[text], out.errno, state, out.state))
        state = out.state
    view = profile.view
    if prop.state is not None:
        if prop.state(view(config, state)):
            raise Disagreement(f"the native path to {prop.name} ends where it holds")
    else:
        for call in calls:
            out = profile.step(config, state, call)
            if out is not None and not prop.step(call.name, out.errno, view(config, state),
                                                 view(config, out.state)):
                steps.append(TraceStep(call, out.errno, state, out.state))
                break
        else:
            raise Disagreement(f"the native path to {prop.name} ends where no call breaks it")
    why = blame(SimpleNamespace(profile=profile, config=config), prop, steps)
    return Violation(prop.name, prop.doc, "state" if prop.state else "step", steps,
                     "; ".join(why.where), why.text())


def run(args, loaded: tuple, label: str) -> int:
    from model.cli import UsageError
    from model.codegen import native
    from model.codegen.python import Disagreement
    from model.commands.common import Stopped, as_stopped, console as make_console, \
        make_progress, report_header, stop_code
    from model.commands.explore import check_skip, save_trace
    from model.commands.export import check_cache_folder
    from model.commands.progress import rate
    from model.render import TRACE_FORMAT, render_trace, trace_data

    if args.trace_cache is not None:
        check_cache_folder(args.trace_cache)
    profile, _base, config = loaded
    check_skip(profile, args.skip)
    skipped = set(args.skip or [])
    progress = make_progress(args, "exploring natively")

    def report(states, edges, expanded):
        progress.update(f"{states:,} states, {edges:,} edges, {expanded:,} expanded, "
                        f"{rate(states, progress.elapsed())} states",
                        states=states, edges=edges)

    start = time.perf_counter()
    checked = [p for p in profile.always if judged(p) and p.name not in skipped]
    calls = {succeeds(name).name: name for name in profile.transitions}
    try:
        with progress:
            found = native.reachable(profile, config, properties=True, symmetry=args.symmetry,
                                     cache=args.trace_cache, progress=report,
                                     stops=(KeyboardInterrupt, Stopped))
        paths = dict(found["paths"])
        if found["broken"] is not None:
            paths.update({p.name: found["broken"]["path"] for p in checked if p.step})
        violations = [replay(profile, config, p, paths[p.name])
                      for p in checked if p.name in paths]
    except Disagreement as err:  # a tracer's bug, or Python it cannot follow (an extension)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"--engine native: the compiled reading disagrees with the concrete "
                         f"one ({first}); --engine explorer runs the concrete one") from None
    seconds = time.perf_counter() - start
    stop = None if found["stopped"] is None else as_stopped(found["stopped"])
    done = {p.name for p in profile.always if judged(p)} | set(calls)
    others = [p for p in profile.properties.values() if p.name not in done]
    unchecked = {kind: [name for name in names if name not in skipped] for kind, names in (
        ("step", [p.name for p in others if p.kind == "always"]),
        ("sometimes", [p.name for p in others if p.kind == "sometimes"]),
        ("graph", [g.name for g in profile.graph]),
        ("explorer", list(GRAPH_CHECKS)))}
    group = found["group_order"]
    data = {**report_header(profile, args, profile.config_text(config)), "engine": "native",
            "states": found["states"], "edges": found["edges"], "complete": found["complete"],
            "stopped": None if stop is None else stop.reason,
            "seconds": round(seconds, 3), "search_seconds": round(found["search_seconds"], 3),
            "states_per_second": round(found["states"] / max(found["search_seconds"], 1e-3)),
            "layers": found["layers"],
            "symmetry": {"enabled": bool(args.symmetry and group > 1), "group_order": group},
            "properties": {p.name: "violated" if any(v.property == p.name for v in violations)
                           else "holds" if found["complete"] else "not violated yet"
                           for p in checked},
            "sometimes": {name: transition in found["succeeded"]
                          for name, transition in calls.items() if name not in skipped},
            "not_checked": unchecked, "trace_format": TRACE_FORMAT,
            "violations": [{"property": v.property, "doc": v.doc, "kind": v.kind,
                            "where": v.where, "clause": v.clause, "length": v.length,
                            "trace": trace_data(profile, config, v.trace)["steps"]}
                           for v in violations]}  # as the explorer's JSON has them
    if args.save_trace:
        save_trace(SimpleNamespace(profile=profile, config=config, violations=violations),
                   args.save_trace)
    if getattr(args, "junit", None):
        from model import junit
        junit.write(args.junit, [junit_suite(profile, config, data, violations)])
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console = make_console()
        console.print(summary(data, label))
        for v in violations:
            console.print(render_trace(trace_data(profile, config, v.trace, v),
                                       title=f"{v.property}: shortest trace, {v.length} steps"))
    if stop is not None:
        return stop_code(stop, bool(violations))
    return 1 if violations else 0


def summary(data: dict, label: str):
    """The native run's numbers, what it checked and what it left to the explorer."""
    from rich.table import Table
    from rich.text import Text

    from model.render import witnessed

    table = Table(title=Text(f"{label} (native engine)"), show_header=False, expand=False)
    table.add_column("what", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    state = "complete" if data["complete"] else \
        f"[yellow]incomplete: {data['stopped'] or 'stopped'}[/yellow]"
    table.add_row("states", f"{data['states']:,} ({state})")
    table.add_row("edges", f"{data['edges']:,} successful calls")
    table.add_row("depth", f"{len(data['layers']) - 1} (largest layer "
                           f"{max(data['layers']):,} states)")
    table.add_row("time", f"{data['seconds']:.2f} s, of which {data['search_seconds']:.2f} s "
                          f"searching ({data['states_per_second']:,} states/s)")
    sym = data["symmetry"]
    table.add_row("symmetry", f"one state per orbit (group of {sym['group_order']})"
                  if sym["enabled"] else "off")
    held = [name for name, how in data["properties"].items() if how != "violated"]
    bad = [name for name, how in data["properties"].items() if how == "violated"]
    verdict = "hold" if data["complete"] else "not violated so far"
    table.add_row("always", f"{len(held)}/{len(data['properties'])} {verdict}"
                  + (f"; [bold red]violated: {', '.join(bad)}[/bold red]" if bad else ""))
    table.add_row("sometimes (succeeds)", witnessed(data["sometimes"], data["complete"]))
    left = data["not_checked"]
    table.add_row("not checked", f"{len(left['step'])} step, {len(left['sometimes'])} "
                  f"sometimes and {len(left['graph'])} graph properties, and "
                  f"{', '.join(left['explorer'])}: the explorer's (`--engine explorer`)")
    return table


def junit_suite(profile, config, data: dict, violations: list):
    """One case per property: a violation is a failure with its trace; what this engine does
    not check is skipped, saying so."""
    from model import junit
    from model.commands.common import plain_text
    from model.render import render_trace, trace_data

    name = f"explore.{profile.name}"
    suite = junit.Suite(name, seconds=data["seconds"])
    traced = {v.property: v for v in violations}
    for prop, how in data["properties"].items():
        case = junit.Case(prop, name)
        if prop in traced:
            v = traced[prop]
            case.failure = f"violated: {v.doc} (shortest trace: {v.length} steps)"
            case.text = plain_text(render_trace(trace_data(profile, config, v.trace, v)))
        elif how != "holds":
            case.skipped = "not violated yet (search incomplete)"
        suite.cases.append(case)
    for prop, seen in data["sometimes"].items():
        case = junit.Case(prop, name)
        if not seen and data["complete"]:
            case.failure = "never witnessed in the complete search (a vacuous model?)"
        elif not seen:
            case.skipped = "not witnessed yet (search incomplete)"
        suite.cases.append(case)
    for prop in [name for names in data["not_checked"].values() for name in names]:
        case = junit.Case(prop, name)
        case.skipped = "not checked by the native engine (the explorer's)"
        suite.cases.append(case)
    return suite
