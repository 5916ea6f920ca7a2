"""`pkvm-model prove`: every proof obligation of a profile, for machines of every size."""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console

from model.commands.common import add_profile_arguments, load
from model.prover import BUDGET


def register(subparsers, profile) -> None:
    p = subparsers.add_parser("prove", help="prove every invariant inductive with z3 (unbounded)")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    add_profile_arguments(p, profile, machine=False)
    p.add_argument("--transition", action="append", metavar="NAME",
                   help="only the obligations of this transition (repeatable)")
    add_prover_arguments(p)
    p.add_argument("--allow-unknown", action="store_true",
                   help="exit 0 when nothing is violated, even if z3 settled some obligation "
                        "neither way (they are still listed as unknown)")
    p.add_argument("--no-bmc", action="store_true",
                   help="skip the bounded reachability checks (what induction cannot show)")
    p.set_defaults(run=run)


def add_prover_arguments(p) -> None:
    """--budget and --jobs, shared with `pkvm-model mutants --prove`."""
    p.add_argument("--budget", type=int, default=BUDGET // 10**6, metavar="MILLIONS",
                   help="z3 resource limit per query, in millions of z3's deterministic "
                        f"resource units (default {BUDGET // 10**6}); unlike a clock, the "
                        "same on a loaded machine")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="processes (default 2)")


def check_prover_arguments(args) -> None:
    from model.cli import UsageError

    if args.budget <= 0 or args.jobs < 1:
        raise UsageError("--budget must be positive and --jobs at least 1")


def run(args) -> int:
    from model.bmc import run_checks
    from model.cli import UsageError
    from model.proof_report import render_bmc, render_counterexample, render_table, report_data
    from model.prover import discharge_all, obligations, proved_properties

    profile, _base, _config = load(args, with_config=False)
    if profile.prover is None:
        raise UsageError(f"the {profile.name} profile has no symbolic reading to prove with")
    check_prover_arguments(args)
    names = list(profile.transitions)
    for t in args.transition or []:
        if t not in profile.transitions:
            raise UsageError(f"unknown transition {t!r}; one of: {', '.join(names)}")
    if args.transition:
        names = [t for t in names if t in args.transition]
    discipline = profile.disciplined(profile.adjust(profile.default_config()))
    obs = [o for o in obligations(profile) if o.transition in names or
           (o.transition == "init" and not args.transition)]
    start = time.perf_counter()
    results = discharge_all(profile, obs, discipline=discipline, budget=args.budget * 10**6,
                            jobs=args.jobs)
    properties = list(dict.fromkeys(o.property for o in obs))
    reach = [] if args.no_bmc or args.transition else run_checks(profile)
    data = report_data(results, names, properties, time.perf_counter() - start, args.mutant,
                       reach, profile.name, profile.extensions)
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        print()
    else:
        console = Console()
        console.print(render_table(data))
        if data["bmc"]:
            console.print(render_bmc(data["bmc"]))
        docs = {p.name: p.doc for p in proved_properties(profile)}
        for o in data["obligations"]:
            if o["status"] == "violated":
                console.print(render_counterexample(o, docs[o["property"]]))
        counts = {s: sum(o["status"] == s for o in data["obligations"])
                  for s in ("proved", "violated", "unknown")}
        console.print(f"{counts['proved']} proved, {counts['violated']} violated, "
                      f"{counts['unknown']} unknown, in {data['seconds']:.1f} s "
                      f"({profile.prover.universe} unbounded)")
    if data["result"] == "unknown" and args.allow_unknown:
        return 0
    return 0 if data["result"] == "proved" else 1
