"""`pkvm-model prove`: every proof obligation of a profile, for machines of every size.

Obligations run in forked processes (a few of a transition's together), `--jobs` at a time;
each one finished moves the progress line (done/total, proved/violated/unknown, rate). Ctrl-C
or --max-seconds stops the workers and reports the obligations finished so far (those not run
are shown as such).
"""

from __future__ import annotations

import json
import os
import sys
import time

from model.commands.common import add_profile_arguments, add_run_arguments, load
from model.prover import BUDGET


def register(subparsers, profile) -> None:
    p = subparsers.add_parser("prove", help="prove every invariant inductive with z3 (unbounded)")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    add_profile_arguments(p, profile, machine=False)
    p.add_argument("--transition", action="append", metavar="NAME",
                   help="only the obligations of this transition, or `init` for the initial "
                        "state's (repeatable)")
    p.add_argument("--skip", action="append", metavar="PROPERTY",
                   help="do not prove this property (the others still assume it; repeatable)")
    add_prover_arguments(p)
    p.add_argument("--allow-unknown", action="store_true",
                   help="exit 0 when nothing is violated, even if z3 settled some obligation "
                        "neither way (they are still listed as unknown)")
    p.add_argument("--no-bmc", action="store_true",
                   help="skip the bounded reachability checks (what induction cannot show)")
    p.add_argument("--no-refute", action="store_true",
                   help="do not search the default machine for a reachable counterexample to an "
                        "obligation z3 leaves unknown or refutes only inductively")
    add_run_arguments(p)
    p.set_defaults(run=run)


def add_prover_arguments(p) -> None:
    """--budget and --jobs, shared with `pkvm-model mutants --prove`."""
    p.add_argument("--budget", type=int, default=BUDGET // 10**6, metavar="MILLIONS",
                   help="z3 resource limit per query, in millions of z3's deterministic "
                        f"resource units (default {BUDGET // 10**6}); unlike a clock, the "
                        "same on a loaded machine")
    p.add_argument("--jobs", type=int, default=min(2, cores()), metavar="N",
                   help=f"processes, at most the cores (default {min(2, cores())})")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_prover_arguments(args) -> None:
    from model.cli import UsageError

    if args.budget <= 0:
        raise UsageError(f"--budget must be positive (millions of z3 resource units), "
                         f"got {args.budget}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs > cores():
        raise UsageError(f"--jobs {args.jobs} is more than the {cores()} cores this process may "
                         "use (more would only slow each proof down)")


# -- the command --------------------------------------------------------------------------------

def selected(profile, args):
    """(transition names, obligations) that --transition and --skip leave."""
    from model.cli import UsageError
    from model.prover import INIT, obligations, proved_properties

    names = list(profile.transitions)
    for t in args.transition or []:
        if t not in profile.transitions and t != INIT:
            raise UsageError(f"unknown transition {t!r}; one of: {INIT}, {', '.join(names)}")
    known = [p.name for p in proved_properties(profile)]
    for p in getattr(args, "skip", None) or []:
        if p not in known:
            raise UsageError(f"unknown property {p!r}; one of: {', '.join(known)}")
    wanted = set(args.transition or [INIT, *names])
    names = [t for t in names if t in wanted]
    skip = set(getattr(args, "skip", None) or [])
    obs = [o for o in obligations(profile) if o.transition in wanted and o.property not in skip]
    return names, obs


def prove_data(args, progress) -> dict:
    """Run the proofs the arguments ask for; the report as plain data (`stopped` set when
    Ctrl-C or the deadline ended it early: then only the finished obligations are in it)."""
    from model.bmc import checks as bmc_checks
    from model.cli import UsageError
    from model.commands.common import Stopped, as_stopped, report_header
    from model.proof_report import report_data
    from model.commands.progress import rate
    from model.commands.refute import refute_all
    from model.prover import discharge_with

    profile, _base, _config = load(args, with_config=False)
    if profile.prover is None:
        raise UsageError(f"the {profile.name} profile has no symbolic reading to prove with")
    check_prover_arguments(args)
    names, obs = selected(profile, args)
    discipline = profile.disciplined(profile.adjust(profile.default_config()))
    wanted = {(o.property, o.transition) for o in obs}
    finished: dict = {}
    tally = {"proved": 0, "violated": 0, "unknown": 0}

    def on_result(r):
        if (r.property, r.transition) in wanted and (r.property, r.transition) not in finished:
            finished[(r.property, r.transition)] = r
            tally[r.status] += 1
        done = len(finished)
        progress.update(f"{done}/{len(obs)} obligations ({tally['proved']} proved, "
                        f"{tally['violated']} violated, {tally['unknown']} unknown), "
                        f"{rate(done, progress.elapsed())}", done=done, total=len(obs))

    start = time.perf_counter()
    stopped = None
    results, reach = [], []
    try:
        # the bounded checks (what induction cannot show) run among the obligations, early:
        # they are among the longest tasks
        side = [] if args.no_bmc or args.transition else bmc_checks(profile)
        results, reach = discharge_with(profile, obs, side, discipline=discipline,
                                        budget=args.budget * 10**6, jobs=args.jobs,
                                        on_result=on_result, tick=progress.tick)
        if not args.no_refute and any(r.status != "proved" for r in results):
            progress.update("searching the default machine for what z3 could not show concretely")
            results = refute_all(profile, results)
    except (KeyboardInterrupt, Stopped) as stop:
        stopped = as_stopped(stop)
        done = {(r.property, r.transition) for r in results}
        results = results or [finished[k] for k in sorted(finished)]
    properties = list(dict.fromkeys(o.property for o in obs))
    data = report_data(results, names, properties, time.perf_counter() - start, args.mutant,
                       reach, profile.name, profile.extensions)
    data = {**report_header(profile, args, f"unbounded ({profile.prover.universe})"), **data}
    data["skipped"] = list(getattr(args, "skip", None) or [])
    if stopped is not None:
        data["stopped"] = stopped.reason
        if data["result"] != "violated":
            data["result"] = "incomplete"
        data["not_run"] = [f"{p}/{t}" for p, t in sorted(wanted - set(finished))
                           if not results or (p, t) not in done]
        data["total"] = len(obs)
        data["_stop"] = stopped
    return data


def run(args) -> int:
    from model.commands.common import check_output_path, console as make_console, make_progress, \
        stop_code
    from model.proof_report import render_bmc, render_counterexample, render_table
    from model.prover import proved_properties

    check_output_path("--junit", getattr(args, "junit", None))
    progress = make_progress(args, "proving")
    with progress:
        data = prove_data(args, progress)
    stop = data.pop("_stop", None)
    if getattr(args, "junit", None):
        from model import junit
        junit.write(args.junit, [junit_suite(data, args)])
    profile, _, _ = load(args, with_config=False)
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        print()
    else:
        console = make_console()
        console.print(render_table(data, wide=not console.is_terminal))
        if data["bmc"]:
            console.print(render_bmc(data["bmc"]))
        docs = {p.name: p.doc for p in proved_properties(profile)}
        for o in data["obligations"]:
            if o["status"] == "violated":
                console.print(render_counterexample(o, docs[o["property"]]))
        console.print(summary_line(data, profile))
    if stop is not None:
        return stop_code(stop, found=data["result"] == "violated")
    if data["result"] == "unknown" and args.allow_unknown:
        return 0
    return 0 if data["result"] == "proved" else 1


def counts(data: dict) -> dict:
    return {s: sum(o["status"] == s for o in data["obligations"])
            for s in ("proved", "violated", "unknown")}


def summary_line(data: dict, profile) -> str:
    c = counts(data)
    line = (f"{c['proved']} proved, {c['violated']} violated, {c['unknown']} unknown, in "
            f"{data['seconds']:.1f} s ({profile.prover.universe} unbounded)")
    if data.get("skipped"):
        line += f"; skipped: {', '.join(data['skipped'])}"
    if data.get("stopped"):
        why = "interrupted" if data["stopped"] == "interrupted" else "stopped by --max-seconds"
        line = (f"{why}: {len(data['obligations'])}/{data['total']} obligations finished; "
                + line + f"; not run: {len(data['not_run'])}")
    return line


def junit_suite(data: dict, args):
    """One case per proof obligation (a violated one carries its counterexample), one per
    bounded reachability check."""
    from model import junit
    from model.commands.common import plain_text
    from model.commands.explore import junit_properties
    from model.proof_report import render_counterexample

    name = f"prove.{data['profile']}"
    suite = junit.Suite(name, seconds=data["seconds"], properties=junit_properties(data))
    for o in data["obligations"]:
        case = junit.Case(f"{o['property']} / {o['transition']}", name, o["seconds"])
        if o["status"] == "violated":
            case.failure = f"{o['property']} is not preserved by {o['transition']}"
            case.text = plain_text(render_counterexample(o, o["property"]))
        elif o["status"] == "unknown":
            if args.allow_unknown:
                case.skipped = "z3 settled it neither way (--allow-unknown)"
            else:
                case.failure = "unknown: z3 settled it neither way within --budget"
        suite.cases.append(case)
    for key in data.get("not_run", []):
        p, t = key.split("/")
        suite.cases.append(junit.Case(f"{p} / {t}", name, skipped=f"not run ({data['stopped']})"))
    for r in data["bmc"]:
        case = junit.Case(f"reachable: {r['property']} ({r['machine']})", name, r["seconds"])
        if not r["holds"]:
            case.failure = (f"never reached within depth {r['depth']}: the model may be vacuous"
                            if r["expected"] == "reachable" else
                            f"reached within depth {r['depth']}, which must not happen")
        suite.cases.append(case)
    return suite
