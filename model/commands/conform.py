"""`pkvm-model conform`: a profile's model held against its reference implementation, three ways.

1. every edge of the unreduced exploration of a small machine (pKVM default: 2 RAM pages, vm0
   protected, vm1 not) replayed on the reference;
2. long random walks (hypothesis) on the adapter's larger machines (pKVM: 16 pages x 5 VMs,
   1024 pages x 4 VMs with 2 MiB blocks, 16 pages x 4 VMs with narrowed counters);
3. every scenario file (the profile's shipped ones, or those of --scenarios DIR).

Exit 0 when model and reference agree everywhere, 1 on any disagreement (each shown with the
call, both errnos and a diff of the two states), 2 on bad input. With --mutant NAME the model
side runs that seeded bug: conformance must disagree.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def register(subparsers, profile) -> None:
    from model.commands.common import add_profile_arguments, add_run_arguments

    parser = subparsers.add_parser(
        "conform", help="hold the model against its reference implementation",
        description="Replays every explored edge, long random walks and scenario files on the "
                    "reference and the model side by side; reports every disagreement.")
    add_profile_arguments(parser, profile)
    parser.add_argument("--max-states", type=int, metavar="S",
                        help="stop the exploration after S states")
    parser.add_argument("--no-explore", action="store_true", help="skip the exploration")
    parser.add_argument("--walks", type=int, default=40, metavar="N",
                        help="random walks, spread over the walk machines (default 40; 0: none)")
    parser.add_argument("--walk-steps", type=int, default=300, metavar="K",
                        help="calls per walk (default 300)")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="seed of the walks (default: the same walks every run)")
    parser.add_argument("--shrink-seconds", type=float, default=20, metavar="T",
                        help="how long hypothesis may shrink a disagreeing walk before the "
                             "call-by-call minimization (default 20)")
    parser.add_argument("--scenarios", metavar="DIR",
                        help="run the *.scn files of DIR (default: the shipped scenarios)")
    parser.add_argument("--no-scenarios", action="store_true", help="skip the scenario files")
    parser.add_argument("--limit", type=int, default=10, metavar="D",
                        help="stop the exploration after D disagreements (default 10)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_run_arguments(parser)
    parser.set_defaults(run=run)


def _scenario_paths(profile, args) -> list[Path]:
    from model.cli import UsageError
    from model.conformance import shipped_scenarios

    if args.no_scenarios:
        return []
    if args.scenarios is None:
        return shipped_scenarios(profile)
    folder = Path(args.scenarios)
    if not folder.is_dir():
        raise UsageError(f"--scenarios: {args.scenarios} is not a directory")
    paths = sorted(folder.glob("*.scn"))
    if not paths:
        raise UsageError(f"--scenarios: no *.scn file in {args.scenarios}")
    return paths


def _load_scenarios(c, profile, args, paths) -> tuple[list, list]:
    """The scenarios to run, and those skipped because they call a transition the extensions
    removed (`{"path", "calls"}`: the file reads fine on the unchanged profile); any other
    malformed file stops the command before anything runs."""
    from model.cli import UsageError
    from model.profiles import get

    scenarios, skipped = [], []
    for path in paths:
        try:
            scenarios.append(c.load_scenario(profile, path))
        except c.ScenarioError as err:
            try:
                plain = c.load_scenario(get(args.profile), path) if args.extension else None
            except c.ScenarioError:
                plain = None
            if plain is None:
                raise UsageError(str(err)) from None
            removed = sorted({step.call.name for step in plain.steps if isinstance(step, c.CallLine)
                              and step.call.name not in profile.transitions})
            if not removed:
                raise UsageError(str(err)) from None
            skipped.append({"path": plain.path, "calls": removed})
    return scenarios, skipped


def _skip_reason(skipped: dict) -> str:
    return f"calls {', '.join(skipped['calls'])}, which the extensions remove"


def conform(args, progress=None) -> dict:
    """Run the three ways the arguments ask for; plain data (see `render`). `progress` (a
    `model.commands.progress.Progress`) sees each way go by, and may raise `Stopped`."""
    from model import conformance as c
    from model.cli import UsageError
    from model.commands.common import load
    from model.commands.progress import Progress

    progress = progress or Progress("conform", enabled=False)
    if args.no_explore and args.no_scenarios and not args.walks:
        raise UsageError("--no-explore, --no-scenarios and --walks 0 leave nothing to check")
    profile, base, config = load(args)
    if profile.reference is None:
        raise UsageError(f"the {profile.name} profile has no reference implementation")
    for name, low in (("walks", 0), ("walk_steps", 1), ("limit", 1), ("max_states", 1),
                      ("shrink_seconds", 0)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    discipline = base.disciplined(base.config_from_args(args))  # a mutant may drop it
    scenarios, skipped = _load_scenarios(c, profile, args, _scenario_paths(profile, args))

    out: dict = {"profile": profile.name, "extensions": list(profile.extensions),
                 "mutant": args.mutant, "reference": profile.reference.name}
    if not args.no_explore:
        from model.commands.explore import progress_callback

        progress.update("exploring", way="exploration")
        report = c.explore_conformance(profile, config, discipline=discipline,
                                       limit=args.limit, max_states=args.max_states,
                                       progress=progress_callback(progress))
        out["exploration"] = {**report.to_data(), "texts": _texts(report.disagreements)}
    if args.walks:
        machines = [profile.adjust(m) for m in profile.reference.walk_configs]
        if not discipline:
            machines = [profile.undisciplined(m) for m in machines]
        out["walks"] = _walks(c, profile, machines, args, discipline, progress)
    if scenarios or skipped:
        start = time.perf_counter()
        reports = []
        for i, s in enumerate(scenarios):
            progress.update(f"scenario {i + 1}/{len(scenarios)}", way="scenarios")
            reports.append(c.run_scenario(profile, s, config=profile.adjust(s.config)))
        out["scenarios"] = {
            "files": len(reports), "lines": sum(r.lines for r in reports),
            "calls": sum(r.calls for r in reports),
            "seconds": round(time.perf_counter() - start, 3),
            "per_file": [{"path": r.path, "lines": r.lines, "calls": r.calls,
                          "disagreements": len(r.disagreements),
                          "texts": _texts(r.disagreements)} for r in reports],
            "disagreements": [d.to_data() for r in reports for d in r.disagreements],
            "texts": _texts([d for r in reports for d in r.disagreements]),
            "skipped": skipped,
        }
    out["disagreements"] = sum(len(out[w]["disagreements"]) for w in ("exploration", "walks", "scenarios")
                               if w in out)
    return out


def _walks(c, profile, machines, args, discipline, progress) -> dict:
    """The walks of `model.conformance.walk`, one machine at a time (the same walks: the same
    share of walks and the same seed per machine), so the progress line and a stop can come
    between machines."""
    start = time.perf_counter()
    calls, found, done = 0, [], 0
    for index, machine in enumerate(machines):
        share = args.walks // len(machines) + (1 if index < args.walks % len(machines) else 0)
        if share == 0:
            continue
        progress.update(f"walks: machine {index + 1}/{len(machines)}, {done}/{args.walks} walks "
                        f"done, {calls:,} calls", way="walks", walks_done=done)
        report = c.walk(profile, [machine], walks=share, steps=args.walk_steps,
                        discipline=discipline,
                        seed=None if args.seed is None else args.seed + index,
                        shrink_seconds=args.shrink_seconds, stop_at_first=args.mutant is not None)
        calls += report.calls
        done += share
        found += report.disagreements
        if found and args.mutant is not None:
            break
    return {"walks": args.walks, "calls": calls, "seconds": round(time.perf_counter() - start, 3),
            "machines": [profile.presenter.machine_text(m) for m in machines],
            "disagreements": [d.to_data() for d in found], "texts": _texts(found)}


def _texts(disagreements) -> list[str]:
    """One text per kind of disagreement (the first found: the shortest trace), with a count of
    the others like it."""
    groups: dict = {}
    for d in disagreements:
        groups.setdefault(d.signature(), []).append(d)
    out = []
    for same in groups.values():
        text = same[0].text()
        if len(same) > 1:
            text += f"\n  ({len(same) - 1} more like it)"
        out.append(text)
    return out


def run(args) -> int:
    from model.commands.common import Stopped, as_stopped, check_output_path, load, make_progress, \
        report_header

    check_output_path("--junit", getattr(args, "junit", None))
    progress = make_progress(args, "conform")
    stop = None
    try:
        with progress:
            data = conform(args, progress)
    except (KeyboardInterrupt, Stopped) as err:
        stop = as_stopped(err)
        data = None
    profile, _base, config = load(args)
    header = report_header(profile, args, profile.config_text(config))
    if stop is not None:
        return stopped(args, header, progress, stop)
    data = {**header, **data}
    if getattr(args, "junit", None):
        from model import junit
        junit.write(args.junit, [junit_suite(data)])
    if args.json:
        print(json.dumps({k: {f: v for f, v in way.items() if f != "texts"} if isinstance(way, dict)
                          else way for k, way in data.items()}, indent=2))
    else:
        print(render(data))
    return 1 if data["disagreements"] else 0


def stopped(args, header: dict, progress, stop) -> int:
    """What a stopped conformance run covered: the way it was in and its last counts."""
    from model.commands.common import stop_code

    counts = dict(progress.counts)
    why = "interrupted" if stop.reason == "interrupted" else "stopped by --max-seconds"
    way = counts.pop("way", "start")
    data = {**header, "stopped": stop.reason, "in": way, **counts,
            "seconds": round(progress.elapsed(), 3), "disagreements": None}
    if getattr(args, "junit", None):
        from model import junit
        suite = junit.Suite(f"conform.{header['profile']}", seconds=progress.elapsed())
        suite.cases.append(junit.Case(way, suite.name, skipped=f"not finished ({stop.reason})"))
        junit.write(args.junit, [suite])
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        seen = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items()
                         if isinstance(v, int))
        print(f"conformance of the {header['profile']} model: {why} after "
              f"{data['seconds']:.1f} s, during the {way}" + (f" ({seen})" if seen else "")
              + "; disagreements are reported only by a finished run")
    return stop_code(stop, found=False)


def junit_suite(data: dict):
    """One case per scenario file, one for the exploration, one per walk machine."""
    from model import junit
    from model.commands.explore import junit_properties

    name = f"conform.{data['profile']}"
    suite = junit.Suite(name, properties=junit_properties(data))
    if "exploration" in data:
        e = data["exploration"]
        case = junit.Case(f"exploration {e['machine']}", name, e["seconds"])
        if e["disagreements"]:
            case.failure = f"{len(e['disagreements'])} disagreement(s) on explored edges"
            case.text = "\n\n".join(e["texts"])
        suite.cases.append(case)
    if "walks" in data:
        w = data["walks"]
        case = junit.Case(f"random walks ({w['walks']} on {len(w['machines'])} machines)", name,
                          w["seconds"])
        if w["disagreements"]:
            case.failure = f"{len(w['disagreements'])} disagreement(s) in random walks"
            case.text = "\n\n".join(w["texts"])
        suite.cases.append(case)
    for f in data.get("scenarios", {}).get("per_file", []):
        case = junit.Case(f"scenario {f['path']}", name)
        if f["disagreements"]:
            case.failure = f"{f['disagreements']} disagreement(s)"
            case.text = "\n\n".join(f["texts"])
        suite.cases.append(case)
    for f in data.get("scenarios", {}).get("skipped", []):
        suite.cases.append(junit.Case(f"scenario {f['path']}", name, skipped=_skip_reason(f)))
    suite.seconds = sum(c.seconds for c in suite.cases)
    return suite


def render(data: dict) -> str:
    """The report as text: one line per way, then every disagreement."""
    subject = f"mutant {data['mutant']}" if data["mutant"] else "model"
    lines = [f"conformance of the {data['profile']} {subject} against {data['reference']}"]
    texts = []
    if "exploration" in data:
        e = data["exploration"]
        lines.append(f"  exploration  {e['machine']}: {e['states']:,} states, "
                     f"{e['edges_checked']:,} edges checked ({e['failing_calls']:,} failing calls "
                     f"bit-for-bit unchanged), {e['seconds']:.1f} s"
                     f"{'' if e['complete'] else ' (stopped early)'}: "
                     f"{len(e['disagreements'])} disagreement(s)")
        texts += e["texts"]
    if "walks" in data:
        w = data["walks"]
        lines.append(f"  walks        {w['walks']} walks on {len(w['machines'])} machines: "
                     f"{w['calls']:,} calls, {w['seconds']:.1f} s: "
                     f"{len(w['disagreements'])} disagreement(s)")
        texts += w["texts"]
    if "scenarios" in data:
        s = data["scenarios"]
        lines.append(f"  scenarios    {s['files']} files, {s['lines']} lines ({s['calls']} calls), "
                     f"{s['seconds']:.1f} s: {len(s['disagreements'])} disagreement(s)")
        for f in s["skipped"]:
            lines.append(f"  skipped      {f['path']}: {_skip_reason(f)}")
        texts += s["texts"]
    verdict = "agree" if not data["disagreements"] else f"disagree {data['disagreements']} time(s)"
    lines.append(f"model and reference {verdict}")
    return "\n".join(lines + [""] + [t + "\n" for t in texts] if texts else lines)

