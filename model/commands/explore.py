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
import os

from model.commands.common import add_profile_arguments, add_run_arguments, load


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
    parser.add_argument("--unreduced", action="store_true",
                        help="also count the states and edges of the unreduced graph, rebuilt "
                             "from the orbits (costs about as much as a small search again)")
    parser.add_argument("--all-violations", action="store_true",
                        help="keep exploring after the first violation, to find every violated "
                             "property's shortest trace (default: stop after the BFS layer of "
                             "the first one)")
    parser.add_argument("--save-graph", metavar="FILE",
                        help="write the reachable graph (.graphml, .json node-link, .dot)")
    parser.add_argument("--save-trace", metavar="FILE",
                        help="write the first violation's shortest trace as a scenario file "
                             "(.scn), for `pkvm-model replay` and `conform --scenarios`")
    parser.add_argument("--skip", action="append", metavar="PROPERTY",
                        help="do not check this property (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_run_arguments(parser)
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="save the search's progress to FILE every --checkpoint-minutes and "
                             "when it is stopped (Ctrl-C, --max-seconds), to go on with --resume")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="M",
                        help="minutes between two checkpoints (default 10)")
    parser.add_argument("--resume", action="store_true",
                        help="go on from the --checkpoint FILE of the same command (same "
                             "profile, extensions, mutant, machine, options and model source), "
                             "as if the search had not stopped")
    parser.add_argument("--conformance", action="store_true",
                        help="replay every explored call on the profile's reference and compare "
                             "(turns symmetry off: the reduction is sound for the model only)")
    parser.add_argument("--engine", choices=("explorer", "native"), default="explorer",
                        help="explorer (default): every property, the graph kept; native: the "
                             "compiled search on every core, for machines too large for the "
                             "explorer: the always properties of states, check-then-commit "
                             "and which transitions succeed, each violation with a shortest "
                             "trace (the report names what it did not check)")
    parser.add_argument("--trace-cache", metavar="DIR",
                        help="with --engine native: keep the traced calls in DIR, so that the "
                             "same machine from the same source traces nothing the next time")
    parser.set_defaults(run=run)


def property_names(profile) -> list[str]:
    """Every property an exploration checks, by name (what --skip accepts)."""
    return [*profile.properties, *(g.name for g in profile.graph)]


def check_skip(profile, names) -> None:
    from model.cli import UsageError

    known = property_names(profile)
    for name in names or []:
        if name not in known:
            raise UsageError(f"unknown property {name!r}; one of: {', '.join(known)}")


def without(profile, skip):
    """The profile without the skipped graph properties; the properties to check."""
    skip = set(skip or [])
    if not skip:
        return profile, None
    profile = profile.with_changes(graph=tuple(g for g in profile.graph if g.name not in skip))
    return profile, [p for name, p in profile.properties.items() if name not in skip]


def progress_callback(progress, known: int = 0):
    """The explorer's progress callback, feeding a `model.commands.progress.Progress` (which also raises
    `Stopped` at the deadline: the explorer has no other way to be stopped from outside);
    `known`: the states a resumed search began with (not counted in the rate)."""
    from model.commands.progress import rate

    def report(states, edges, depth, frontier):
        progress.update(f"{states:,} states, {edges:,} edges, depth {depth}, frontier "
                        f"{frontier:,}, {rate(states - known, progress.elapsed())} states",
                        states=states, edges=edges, depth=depth)
    return report


def checkpoint_header(profile, config, args) -> dict:
    """What a checkpoint must agree with to be resumed: the search it was taken from."""
    import hashlib

    from model.explorer.checkpoint import model_source

    def digest(path: str) -> str:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    return {"profile": profile.name, "extensions": [digest(p) for p in args.extension],
            "mutant": getattr(args, "mutant", None), "machine": profile.config_text(config),
            "symmetry": args.symmetry, "skip": sorted(getattr(args, "skip", None) or []),
            "all violations": args.all_violations, "model source": model_source()}


def checkpointing(args, profile, config) -> dict:
    """The explorer's checkpoint arguments (`checkpoint`, `checkpoint_every`, `resume`) the
    command's options ask for; each snapshot written is recorded in `args.saved_checkpoint`
    (its states and next node)."""
    from model.cli import UsageError
    from model.commands.common import check_output_path
    from model.explorer.checkpoint import CheckpointError, load, save

    path = getattr(args, "checkpoint", None)
    if path is None:
        if getattr(args, "resume", False):
            raise UsageError("--resume: which search? give its --checkpoint FILE")
        return {}
    if args.conformance:
        raise UsageError("--checkpoint: not with --conformance (the reference's side is not "
                         "saved)")
    if not 0 < args.checkpoint_minutes <= 7 * 24 * 60:
        raise UsageError(f"--checkpoint-minutes out of range: {args.checkpoint_minutes:g}")
    check_output_path("--checkpoint", path)
    header = checkpoint_header(profile, config, args)
    state_type = type(profile.initial_state(config))
    resume = None
    if args.resume:
        try:
            resume = load(path, header, state_type)
        except CheckpointError as err:
            raise UsageError(f"--resume: {err}") from None
    elif os.path.exists(path):
        raise UsageError(f"--checkpoint {path}: exists (--resume to go on from it, or remove "
                         "it)")

    def write(snapshot) -> None:
        save(path, header, snapshot, state_type)
        args.saved_checkpoint = (len(snapshot.states), snapshot.next)

    return {"checkpoint": write, "checkpoint_every": 60 * args.checkpoint_minutes,
            "resume": resume}


def explore_args(args, on_edge=None, progress=None, loaded=None, stops=(), checkpoints=None):
    """Run the exploration the arguments describe (`stops`, and `checkpoints` from
    `checkpointing`: see `model.explorer.explore`)."""
    from model.cli import UsageError
    from model.explorer import explore

    profile, _base, config = loaded or load(args)
    for name in ("max_depth", "max_states"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "max_depth" else 1):
            raise UsageError(f"--{name.replace('_', '-')} out of range: {value}")
    check_skip(profile, getattr(args, "skip", None))
    profile, properties = without(profile, getattr(args, "skip", None))
    return explore(profile, config, max_depth=args.max_depth, max_states=args.max_states,
                   symmetry=args.symmetry, on_edge=on_edge, progress=progress,
                   stop_on_violation=not args.all_violations, properties=properties,
                   stops=stops, **(checkpoints or {}))


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


def check_outputs(args) -> None:
    """Output paths are checked before a run that may take minutes, not after it."""
    from model.cli import UsageError
    from model.commands.common import check_output_path

    if args.save_graph is not None:
        check_output_path("--save-graph", args.save_graph)
        if not args.save_graph.endswith((".graphml", ".json", ".dot", ".gv")):
            raise UsageError(f"--save-graph: unknown format of {args.save_graph!r} "
                             "(use .graphml, .json, .dot)")
    check_output_path("--junit", getattr(args, "junit", None))
    if getattr(args, "save_trace", None) is not None:
        check_output_path("--save-trace", args.save_trace)
        if not args.save_trace.endswith(".scn"):
            raise UsageError(f"--save-trace {args.save_trace}: a scenario file ends in .scn")


def save_trace(result, path: str) -> None:
    """The first violation's trace as a scenario (nothing is written when nothing is violated)."""
    from model.conformance import scenario_text

    if not result.violations:
        return
    v = result.violations[0]
    comment = (f"{v.property} violated: {v.doc}\nshortest trace found by pkvm-model explore "
               f"({result.profile.name}, {', '.join(result.profile.extensions) or 'no extension'})")
    with open(path, "w") as f:
        f.write(scenario_text(result.profile, result.config, v.trace, comment))


def run(args, on_edge=None) -> int:
    from model.cli import UsageError
    from model.commands.common import Stopped, as_stopped, console as make_console, make_progress, \
        report_header, stop_code
    from model.render import exploration_data, render_summary, render_violations

    on_edge = on_edge or getattr(args, "on_edge", None)
    checker = None
    from model.commands import explore_native
    explore_native.refuse(args)
    check_outputs(args)
    loaded = load(args)
    if getattr(args, "engine", "explorer") == "native":
        profile, _base, config = loaded
        return explore_native.run(args, loaded, f"{subject(profile, args)}: "
                                                f"{profile.config_text(config)}")
    profile, base, config = loaded
    if args.conformance:
        from model.conformance import EdgeChecker

        if profile.reference is None:
            raise UsageError(f"the {profile.name} profile has no reference implementation")
        args.symmetry = False
        checker = on_edge = EdgeChecker(profile, config,
                                        discipline=base.disciplined(base.config_from_args(args)))
    checkpoints = checkpointing(args, profile, config)
    resumed = checkpoints.get("resume")
    resumed_at = (len(resumed.states), resumed.next) if resumed is not None else None
    console = make_console()
    label = f"{subject(profile, args)}: {profile.config_text(config)}"
    progress = make_progress(args, "exploring")
    try:
        with progress:
            result = explore_args(args, on_edge=on_edge,
                                  progress=progress_callback(
                                      progress, resumed_at[0] if resumed_at else 0),
                                  loaded=loaded, stops=(KeyboardInterrupt, Stopped),
                                  checkpoints=checkpoints)
    except (KeyboardInterrupt, Stopped) as stop:
        stop = as_stopped(stop)
        return stopped_report(args, profile, config, label, progress, stop, console)
    stop = None
    if result.interruption is not None:  # the search kept what it found before the stop
        stop = as_stopped(result.interruption)
    elsewhere = []
    witness_stop = None  # a stop during the search for witnesses: the search itself is whole
    if stop is None and result.complete and checker is None:
        elsewhere, witness_stop = witness_elsewhere(args, profile, config, result,
                                                    progress.elapsed())
    if args.save_graph and stop is None:
        save_graph(result, args.save_graph)
    if args.save_trace:
        save_trace(result, args.save_trace)
    data = {**report_header(profile, args, profile.config_text(config)),
            **exploration_data(result, unreduced=args.unreduced)}
    if elsewhere:
        data["witness machines"] = elsewhere
        for run in elsewhere:
            data["sometimes"].update(dict.fromkeys(run["witnessed"], True))
    if stop is not None:
        data["stopped"] = stop.reason
    if resumed_at is not None:
        data["resumed"] = {"states": resumed_at[0], "next node": resumed_at[1]}
    saved = getattr(args, "saved_checkpoint", None)
    if saved is not None:
        data["checkpoint"] = {"file": args.checkpoint, "states": saved[0], "next node": saved[1]}
    if checker is not None:
        data["conformance"] = {"edges_checked": checker.checked, "failing_calls": checker.failing,
                               "disagreements": [d.to_data() for d in checker.disagreements]}
    if getattr(args, "junit", None):
        from model import junit
        junit.write(args.junit, [junit_suite(result, data, args)])
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console.print(render_summary(data, label=label))
        for run in elsewhere:
            console.print(witness_text(run))
        for renderable in render_violations(result):
            console.print(renderable)
        if stop is not None:
            why = "interrupted" if stop.reason == "interrupted" else \
                f"stopped by --max-seconds {args.max_seconds:g}"
            console.print(f"{label}: {why} after {result.seconds:.1f} s: "
                          f"{len(result.states):,} states, {result.edges:,} edges, depth "
                          f"{result.depth} reached; incomplete: "
                          f"{len(result.violations)} violations found so far"
                          + (" (above, each with its shortest trace)" if result.violations else ""))
        if stop is not None and saved is not None:
            console.print(f"progress saved to {args.checkpoint} ({saved[0]:,} states): go on "
                          f"with the same command and --resume")
        if checker is not None:
            console.print(f"conformance: {checker.checked} calls replayed on the reference, "
                          f"{len(checker.disagreements)} disagreements")
            for d in checker.disagreements:
                console.print(d.text())
    found = bool(result.violations or (checker is not None and checker.disagreements))
    if stop is not None or witness_stop is not None:
        return stop_code(stop or witness_stop, found)
    return 1 if found else 0


def witness_elsewhere(args, profile, config, result, elapsed: float):
    """The `sometimes` properties a complete search left unwitnessed, searched for on the
    profile's witness machines (`Profile.witness_machines`: gmem's host faults need a VM
    without private memory), each breadth-first until it has witnessed them all: a vacuity check
    of the model, not a verification of those machines (their invariants are not checked;
    `check` explores them whole). Each run's record, and the stop that ended one, if any."""
    from model.cli import build_parser
    from model.commands.common import Stopped, as_stopped, progress_enabled
    from model.commands.config_file import _subparsers
    from model.commands.progress import Progress
    from model.explorer import explore

    missing = [name for name, seen in result.sometimes.items() if not seen]
    runs, stop = [], None
    parser = _subparsers(build_parser(profile.name))["explore"] if missing else None
    for extra in profile.witness_machines if missing else ():
        other = argparse.Namespace(**vars(args))  # the options extra does not give stay
        parser.parse_args(["--profile", args.profile, *extra], namespace=other)
        try:
            machine = profile.config_from_args(other)
            machine.validate()
        except ValueError as err:  # the user's machine and the witness options disagree
            runs.append({"options": list(extra), "searched for": missing, "witnessed": [],
                         "skipped": str(err)})
            continue
        if machine == config:
            continue
        limit = None if args.max_seconds is None else max(0.0, args.max_seconds - elapsed)
        with Progress("witnessing", enabled=progress_enabled(args), max_seconds=limit) as tick:
            found = explore(profile, machine, symmetry=args.symmetry, graph_checks=False,
                            properties=[profile.properties[name] for name in missing],
                            stop_when_witnessed=True, stops=(KeyboardInterrupt, Stopped),
                            progress=progress_callback(tick), max_states=args.max_states,
                            max_depth=args.max_depth)
            elapsed += tick.elapsed()
        witnessed = [name for name in missing if found.sometimes[name]]
        runs.append({"machine": profile.config_text(machine), "options": list(extra),
                     "searched for": missing, "witnessed": witnessed,
                     "states": len(found.states), "depth": found.depth,
                     "seconds": round(found.seconds, 3)})
        if found.interruption is not None:
            stop = as_stopped(found.interruption)
            runs[-1]["stopped"] = stop.reason
            break
        missing = [name for name in missing if name not in witnessed]
        if not missing:
            break
    return runs, stop


def witness_text(run: dict) -> str:
    if "skipped" in run:
        return f"witness machine {' '.join(run['options'])} skipped: {run['skipped']}"
    names = ", ".join(run["witnessed"]) or "none"
    stopped = f", stopped: {run['stopped']}" if "stopped" in run else ""
    return (f"witnessed on {run['machine']} ({' '.join(run['options'])}): {names} "
            f"({run['states']:,} states, depth {run['depth']}, {run['seconds']:.1f} s"
            f"{stopped}; searched for witnesses only)")


def stopped_report(args, profile, config, label, progress, stop, console) -> int:
    """What an exploration stopped outside its search covered (while loading, or while its
    traces were replayed): the last counts the explorer reported, and no violation."""
    from model.commands.common import report_header, stop_code

    counts = {"states": 0, "edges": 0, "depth": 0, **progress.counts}
    why = "interrupted" if stop.reason == "interrupted" else \
        f"stopped by --max-seconds {args.max_seconds:g}"
    data = {**report_header(profile, args, profile.config_text(config)), **counts,
            "complete": False, "stopped": stop.reason, "seconds": round(progress.elapsed(), 3),
            "violations": None}
    if getattr(args, "junit", None):
        from model import junit
        suite = junit.Suite(f"explore.{profile.name}", seconds=progress.elapsed(),
                            properties=junit_properties(data))
        suite.cases = [junit.Case(name, f"explore.{profile.name}",
                                  skipped=f"not settled: exploration {stop.reason}")
                       for name in property_names(profile)]
        junit.write(args.junit, [suite])
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console.print(f"{label}: {why} after {data['seconds']:.1f} s: {counts['states']:,} "
                      f"states, {counts['edges']:,} edges, depth {counts['depth']} reached "
                      "(incomplete)")
    return stop_code(stop, found=False)


def junit_properties(data: dict) -> dict:
    keys = ("tool_version", "z3_version", "profile", "extensions", "mutant", "machine")
    return {k: data.get(k) if not isinstance(data.get(k), list) else ", ".join(data[k])
            for k in keys}


def junit_suite(result, data: dict, args):
    """One case per property the exploration checks: a violation is a failure with its trace;
    a sometimes property never witnessed is a failure on a complete search, skipped otherwise."""
    from model import junit
    from model.commands.common import plain_text
    from model.render import render_trace, trace_data

    name = f"explore.{result.profile.name}"
    suite = junit.Suite(name, seconds=result.seconds, properties=junit_properties(data))
    violated = {v.property: v for v in result.violations}
    graph = data["graph"]
    for prop in property_names(result.profile) + [n for n in violated
                                                  if n not in property_names(result.profile)]:
        case = junit.Case(prop, name)
        kind = result.props[prop].kind if prop in result.props else "graph"
        if prop in violated:
            v = violated[prop]
            case.failure = f"violated: {v.doc} (shortest trace: {v.length} steps)"
            case.text = plain_text(render_trace(trace_data(result.profile, result.config,
                                                           v.trace, v)))
        elif kind == "sometimes" and not data["sometimes"].get(prop, True):
            if result.complete:
                case.failure = "never witnessed in the complete exploration (a vacuous model?)"
            else:
                case.skipped = "not witnessed yet (exploration incomplete)"
        elif kind == "graph" and not graph.get("checked"):
            case.skipped = "not checked (exploration incomplete)"
        elif prop not in result.props and kind != "graph":
            case.skipped = "skipped (--skip)"
        suite.cases.append(case)
    return suite


def subject(profile, args) -> str:
    """What a report is about: the profile, its extensions, the mutant."""
    words = [f"{profile.name} model"]
    if args.extension:
        words.append("with " + ", ".join(args.extension))
    if getattr(args, "mutant", None):
        words.append(f"under mutant {args.mutant}")
    return " ".join(words)
