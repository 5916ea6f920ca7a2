"""`pkvm-model mutants`: every seeded bug of the profile's catalog must be caught, by proof or
exploration."""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table

from model.commands.common import add_profile_arguments
from model.commands.prove import add_prover_arguments, check_prover_arguments


def register(subparsers, profile) -> None:
    p = subparsers.add_parser("mutants", help="check that every seeded bug is caught")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    p.add_argument("--only", action="append", metavar="NAME", help="only this mutant (repeatable)")
    add_profile_arguments(p, profile, mutant=False, machine=False)
    add_prover_arguments(p)
    p.add_argument("--prove", action="store_true",
                   help="also run the prover on the mutated transition's obligations (slow)")
    p.set_defaults(run=run)


def hunt(base, name: str, budget: int, jobs: int, prove: bool = True) -> dict:
    """Explore the profile's default machine for the bug; with `prove`, also try to prove the
    mutated transition's obligations (each violated one is a kill with an unbounded
    counterexample)."""
    from model.explorer import explore
    from model.extensions import mutate
    from model.prover import discharge_all, obligations

    mutant = base.mutants[name]
    profile = mutate(base, name)
    config = profile.adjust(profile.default_config())
    obs = [o for o in obligations(profile) if o.transition == mutant.transition] \
        if prove and profile.prover is not None else []
    start = time.perf_counter()
    results = discharge_all(profile, obs, discipline=profile.disciplined(config), budget=budget,
                            jobs=jobs) if obs else []
    proof = [f"{r.property}/{r.transition}" for r in results if r.status == "violated"]
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
        "proof": {"ran": bool(obs), "violated": proof, "seconds": round(prove_seconds, 3)},
        "explore": {"violated": explored, "shortest_trace": shortest,
                    "states": len(found.states), "seconds": round(found.seconds, 3)},
    }


def run(args) -> int:
    from model.cli import UsageError
    from model.commands.common import load

    base, _, _ = load(args, with_config=False)
    names = args.only or list(base.mutants)
    unknown = [n for n in names if n not in base.mutants]
    if unknown:
        raise UsageError(f"unknown mutant {unknown[0]!r}; one of: {', '.join(sorted(base.mutants))}")
    check_prover_arguments(args)
    start = time.perf_counter()
    rows = [hunt(base, n, args.budget * 10**6, args.jobs, args.prove) for n in names]
    survivors = [r["mutant"] for r in rows if not r["killed"]]
    if args.json:
        json.dump({"profile": base.name, "extensions": list(base.extensions), "mutants": rows,
                   "survivors": survivors, "seconds": round(time.perf_counter() - start, 3)},
                  sys.stdout, indent=1)
        print()
    else:
        table = Table(title=f"{base.name} mutant catalog: {len(rows) - len(survivors)}/{len(rows)} killed")
        for col in ("mutant", "killed by", "property", "proof finds", "exploration finds", "trace"):
            table.add_column(col)
        for r in rows:
            style = "green" if r["killed"] else "bold red"
            proof = ", ".join(sorted({v.split("/")[0] for v in r["proof"]["violated"]})) or "-"
            table.add_row(r["mutant"], r["killed_by"] or "SURVIVES", r["property"] or "-",
                          proof if r["proof"]["ran"] else "(not run: --prove)",
                          ", ".join(r["explore"]["violated"]) or "-",
                          str(r["explore"]["shortest_trace"] or "-"), style=style)
        Console().print(table)
    return 1 if survivors else 0
