"""`pkvm-model mutants`: every seeded bug of the profile's catalog must be caught, by proof or
exploration."""

from __future__ import annotations

import json
import sys
import time

from rich.table import Table

from model.commands.common import add_profile_arguments, add_run_arguments
from model.commands.prove import add_prover_arguments, check_prover_arguments


def register(subparsers, profile) -> None:
    p = subparsers.add_parser("mutants", help="check that every seeded bug is caught")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    p.add_argument("--only", action="append", metavar="NAME", help="only this mutant (repeatable)")
    add_profile_arguments(p, profile, mutant=False, machine=False)
    add_prover_arguments(p)
    p.add_argument("--prove", action="store_true",
                   help="also run the prover on the mutated transition's obligations (slow)")
    add_run_arguments(p)
    p.set_defaults(run=run)


def hunt(base, name: str, budget: int, jobs: int, prove: bool = True) -> dict:
    """Explore the profile's default machine for the bug; with `prove`, also try to prove the
    mutated transition's obligations (each violated one is a kill with an unbounded
    counterexample)."""
    from model.explorer import explore
    from model.extensions import mutate
    from model.commands.refute import refute_all
    from model.prover import discharge_all, obligations

    mutant = base.mutants[name]
    profile = mutate(base, name)
    config = profile.adjust(profile.default_config())
    obs = [o for o in obligations(profile) if o.transition == mutant.transition] \
        if prove and profile.prover is not None else []
    start = time.perf_counter()
    results = discharge_all(profile, obs, discipline=profile.disciplined(config), budget=budget,
                            jobs=jobs) if obs else []
    results = refute_all(profile, results)
    proof = [f"{r.property}/{r.transition}" for r in results if r.status == "violated"]
    concrete = [f"{r.property}/{r.transition}" for r in results if r.status == "violated"
                and (r.counterexample or {}).get("concrete")]
    prove_seconds = time.perf_counter() - start
    found = explore(profile, config, stop_on_violation=True, graph_checks=True)
    explored = sorted({v.property for v in found.violations})
    shortest = min((v.length for v in found.violations), default=None)
    killers = ([("explore", p) for p in explored]
               + [("prove", r.property) for r in results if r.status == "violated"])
    return {
        "mutant": name,
        "doc": mutant.doc,
        "killed": bool(killers),
        "killed_by": killers[0][0] if killers else None,
        "property": killers[0][1] if killers else None,
        "proof": {"ran": bool(obs), "violated": proof, "concrete": concrete,
                  "unknown": [f"{r.property}/{r.transition}" for r in results
                              if r.status == "unknown"],
                  "seconds": round(prove_seconds, 3)},
        "explore": {"violated": explored, "shortest_trace": shortest,
                    "states": len(found.states), "seconds": round(found.seconds, 3)},
    }


def hunt_all(args, base, names, progress) -> tuple[list, object]:
    """Every named mutant hunted in turn; (rows, Stopped or None): a stop keeps the rows done."""
    from model.commands.common import Stopped, as_stopped

    rows = []
    try:
        for i, name in enumerate(names):
            progress.update(f"{i}/{len(names)} mutants ({sum(not r['killed'] for r in rows)} "
                            f"surviving), hunting {name}", done=i)
            rows.append(hunt(base, name, args.budget * 10**6, args.jobs, args.prove))
            progress.tick()
    except (KeyboardInterrupt, Stopped) as stop:
        return rows, as_stopped(stop)
    return rows, None


def run(args) -> int:
    from model.cli import UsageError
    from model.commands.common import check_output_path, console, load, make_progress, \
        report_header, stop_code

    check_output_path("--junit", getattr(args, "junit", None))
    base, _, _ = load(args, with_config=False)
    names = args.only or list(base.mutants)
    unknown = [n for n in names if n not in base.mutants]
    if unknown:
        raise UsageError(f"unknown mutant {unknown[0]!r}; one of: {', '.join(sorted(base.mutants))}")
    check_prover_arguments(args)
    start = time.perf_counter()
    with make_progress(args, "mutants") as progress:
        rows, stop = hunt_all(args, base, names, progress)
    survivors = [r["mutant"] for r in rows if not r["killed"]]
    machine = base.config_text(base.adjust(base.default_config()))
    data = {**report_header(base, args, machine), "prover_ran": bool(args.prove),
            "mutants": rows, "survivors": survivors,
            "seconds": round(time.perf_counter() - start, 3)}
    if stop is not None:
        data.update(stopped=stop.reason, not_run=names[len(rows):])
    if getattr(args, "junit", None):
        from model import junit
        junit.write(args.junit, [junit_suite(data)])
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        print()
    else:
        out = console()
        out.print(render(data, base.name, len(names)))
        if not args.prove:
            out.print("the prover was not run (--prove also tries to refute each mutated "
                      "transition's obligations with z3; slower)")
        if stop is not None:
            why = "interrupted" if stop.reason == "interrupted" else "stopped by --max-seconds"
            out.print(f"{why}: {len(rows)}/{len(names)} mutants hunted; not run: "
                      f"{', '.join(data['not_run'])}")
    if stop is not None:
        return stop_code(stop, found=bool(survivors))
    return 1 if survivors else 0


def render(data: dict, profile: str, total: int):
    rows, survivors = data["mutants"], data["survivors"]
    table = Table(title=f"{profile} mutant catalog: {len(rows) - len(survivors)}/{total} killed")
    for col in ("mutant", "killed by", "property", "proof finds", "exploration finds", "trace"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = "green" if r["killed"] else "bold red"
        proof = ", ".join(sorted({v.split("/")[0] for v in r["proof"]["violated"]})) or "-"
        table.add_row(r["mutant"], r["killed_by"] or "SURVIVES", r["property"] or "-",
                      proof if r["proof"]["ran"] else "not run",
                      ", ".join(r["explore"]["violated"]) or "-",
                      str(r["explore"]["shortest_trace"] or "-"), style=style)
    return table


def junit_suite(data: dict):
    """One case per mutant: a survivor is a failure."""
    from model import junit
    from model.commands.explore import junit_properties

    name = f"mutants.{data['profile']}"
    suite = junit.Suite(name, seconds=data["seconds"], properties=junit_properties(data))
    for r in data["mutants"]:
        case = junit.Case(r["mutant"], name, r["proof"]["seconds"] + r["explore"]["seconds"])
        if not r["killed"]:
            case.failure = f"survives: {r['doc']}"
            case.text = (f"mutant {r['mutant']} ({r['doc']}) is caught by no check: exploration "
                         f"of {data['machine']} ({r['explore']['states']:,} states) finds no "
                         "violation" + ("" if r["proof"]["ran"] else
                                        "; the prover was not run (--prove)"))
        suite.cases.append(case)
    for n in data.get("not_run", []):
        suite.cases.append(junit.Case(n, name, skipped=f"not run ({data['stopped']})"))
    return suite
