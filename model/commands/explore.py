"""`pkvm-model explore`: every reachable state of a small machine, checked, with shortest traces.

Exit 0 when every property holds, 1 when one is violated (its shortest trace is shown), 2 on bad
input. `run` is split in three (configuration, exploration, report) so other commands can hook
in: `explore_args(args, on_edge=...)` runs the same exploration with an edge callback
`on_edge(src_state, call, outcome)` called on every tried call. Every command takes the
profile (`--profile`), its extensions (`--extension FILE`) and mutant (`--mutant NAME`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from model.commands.common import add_profile_arguments, load


def register(subparsers, profile) -> None:
    parser = subparsers.add_parser(
        "explore", help="explore every reachable state of a small machine",
        description="Breadth-first exploration of the reachable graph: every always property "
                    "in every state and on every call, sometimes properties witnessed, the "
                    "graph properties (for pKVM: nothing stranded, no dead end); the shortest "
                    "trace of each violation.")
    add_profile_arguments(parser, profile)
    parser.add_argument("--max-depth", type=int, metavar="D", help="stop after D steps")
    parser.add_argument("--max-states", type=int, metavar="S", help="stop after S states")
    parser.add_argument("--symmetry", action=argparse.BooleanOptionalAction, default=True,
                        help="explore one state per orbit of interchangeable pages, VMs, gfns "
                             "(the profile's symmetry; default on)")
    parser.add_argument("--all-violations", action="store_true",
                        help="keep exploring after the first violation, to find every violated "
                             "property's shortest trace (default: stop after the BFS layer of "
                             "the first one)")
    parser.add_argument("--save-graph", metavar="FILE",
                        help="write the reachable graph (.graphml, .json node-link, .dot)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--conformance", action="store_true",
                        help="replay every explored call on the profile's reference and compare "
                             "(turns symmetry off: the reduction is sound for the model only)")
    parser.set_defaults(run=run)


class _Progress:
    """A rich progress line, shown only once an exploration has run for a second."""

    def __init__(self, console):
        self.console = console
        self.start = time.perf_counter()
        self.live = None

    def __call__(self, states, edges, depth, frontier):
        if self.live is None:
            if time.perf_counter() - self.start < 1.0:
                return
            from rich.live import Live
            self.live = Live(console=self.console, transient=True, refresh_per_second=8)
            self.live.start()
        from rich.text import Text
        rate = states / max(time.perf_counter() - self.start, 1e-9)
        self.live.update(Text(f"exploring: {states:,} states, {edges:,} edges, depth {depth}, "
                              f"frontier {frontier:,}, {rate:,.0f} states/s"))

    def stop(self):
        if self.live is not None:
            self.live.stop()


def _console():
    from rich.console import Console
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    return console


def explore_args(args, on_edge=None, progress=None, loaded=None):
    """Run the exploration the arguments describe."""
    from model.cli import UsageError
    from model.explorer import explore

    profile, _base, config = loaded or load(args)
    for name in ("max_depth", "max_states"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "max_depth" else 1):
            raise UsageError(f"--{name.replace('_', '-')} out of range: {value}")
    return explore(profile, config, max_depth=args.max_depth, max_states=args.max_states,
                   symmetry=args.symmetry, on_edge=on_edge, progress=progress,
                   stop_on_violation=not args.all_violations)


def save_graph(result, path: str) -> None:
    """The reachable graph in a format other tools read: GraphML, node-link JSON or DOT."""
    import networkx as nx

    from model.cli import UsageError

    if not path.endswith((".graphml", ".json", ".dot", ".gv")):
        raise UsageError(f"--save-graph: unknown format of {path!r} (use .graphml, .json, .dot)")
    out = nx.DiGraph()
    for node in result.graph.nodes:
        out.add_node(node, depth=result.depth_of[node],
                     state=result.profile.presenter.state_label(result.config,
                                                                result.states[node]))
    for u, v, calls in result.graph.edges(data="calls"):
        out.add_edge(u, v, calls="; ".join(str(result.calls[c]) for c in calls))
    if path.endswith(".graphml"):
        nx.write_graphml(out, path)
    elif path.endswith(".json"):
        try:
            data = nx.node_link_data(out, edges="edges")
        except TypeError:  # networkx before 3.4
            data = nx.node_link_data(out)
        with open(path, "w") as f:
            json.dump(data, f)
    else:
        from model.diagram import to_dot
        with open(path, "w") as f:
            f.write(to_dot(out, label="state", edge_label="calls"))


def run(args, on_edge=None) -> int:
    from model.render import exploration_data, render_summary, render_violations

    from model.cli import UsageError

    on_edge = on_edge or getattr(args, "on_edge", None)
    checker = None
    loaded = load(args)
    profile, base, config = loaded
    if args.conformance:
        from model.conformance import EdgeChecker

        if profile.reference is None:
            raise UsageError(f"the {profile.name} profile has no reference implementation")
        args.symmetry = False
        checker = on_edge = EdgeChecker(profile, config,
                                        discipline=base.disciplined(base.config_from_args(args)))
    console = _console()
    show_progress = not args.json and sys.stdout.isatty()
    progress = _Progress(console) if show_progress else None
    try:
        result = explore_args(args, on_edge=on_edge, progress=progress, loaded=loaded)
    finally:
        if progress is not None:
            progress.stop()
    if args.save_graph:
        save_graph(result, args.save_graph)
    data = exploration_data(result)
    if checker is not None:
        data["conformance"] = {"edges_checked": checker.checked, "failing_calls": checker.failing,
                               "disagreements": [d.to_data() for d in checker.disagreements]}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console.print(render_summary(data, label=f"{subject(profile, args)}: "
                                                 f"{profile.config_text(result.config)}"))
        for renderable in render_violations(result):
            console.print(renderable)
        if checker is not None:
            console.print(f"conformance: {checker.checked} calls replayed on the reference, "
                          f"{len(checker.disagreements)} disagreements")
            for d in checker.disagreements:
                console.print(d.text())
    return 1 if result.violations or (checker is not None and checker.disagreements) else 0


def subject(profile, args) -> str:
    """What a report is about: the profile, its extensions, the mutant."""
    words = [f"{profile.name} model"]
    if args.extension:
        words.append("with " + ", ".join(args.extension))
    if getattr(args, "mutant", None):
        words.append(f"under mutant {args.mutant}")
    return " ".join(words)
