"""`pkvm-model mutants`: every seeded bug of the catalog must be caught, by proof or exploration."""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table

from model.commands.prove import add_prover_arguments, check_prover_arguments


def register(subparsers) -> None:
    p = subparsers.add_parser("mutants", help="check that every seeded bug is caught")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    p.add_argument("--only", action="append", metavar="NAME", help="only this mutant (repeatable)")
    add_prover_arguments(p)
    p.add_argument("--prove", action="store_true",
                   help="also run the prover on the mutated transition's obligations (slow)")
    p.set_defaults(run=run)


def hunt(name: str, budget: int, jobs: int, prove: bool = True) -> dict:
    """Explore 2 pages x 2 guests for the bug; with `prove`, also try to prove the mutated
    transition's obligations (each violated one is a kill with an unbounded counterexample)."""
    from model.explorer import explore
    from model.mutants import MUTANTS, mutant_config, mutant_transitions
    from model.prover import discharge_all, obligations
    from model.states import Config

    mutant = MUTANTS[name]
    transitions = mutant_transitions(name)
    config = mutant_config(name, Config(ram=2, gfns=2, guests=(True, False)))
    obs = [o for o in obligations(transitions) if o.transition == mutant.transition and prove]
    start = time.perf_counter()
    results = discharge_all(obs, mutant=name, discipline=config.host_discipline,
                            budget=budget, jobs=jobs)
    proof = [f"{r.property}/{r.transition}" for r in results if r.status == "violated"]
    prove_seconds = time.perf_counter() - start
    found = explore(config, transitions=transitions, stop_on_violation=True, graph_checks=True)
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
        "proof": {"violated": proof, "seconds": round(prove_seconds, 3)},
        "explore": {"violated": explored, "shortest_trace": shortest,
                    "states": len(found.states), "seconds": round(found.seconds, 3)},
    }


def run(args) -> int:
    from model.cli import UsageError
    from model.mutants import MUTANTS

    names = args.only or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        raise UsageError(f"unknown mutant {unknown[0]!r}; one of: {', '.join(sorted(MUTANTS))}")
    check_prover_arguments(args)
    start = time.perf_counter()
    rows = [hunt(n, args.budget * 10**6, args.jobs, args.prove) for n in names]
    survivors = [r["mutant"] for r in rows if not r["killed"]]
    if args.json:
        json.dump({"mutants": rows, "survivors": survivors,
                   "seconds": round(time.perf_counter() - start, 3)}, sys.stdout, indent=1)
        print()
    else:
        table = Table(title=f"mutant catalog: {len(rows) - len(survivors)}/{len(rows)} killed")
        for col in ("mutant", "killed by", "property", "proof finds", "exploration finds", "trace"):
            table.add_column(col)
        for r in rows:
            style = "green" if r["killed"] else "bold red"
            table.add_row(r["mutant"], r["killed_by"] or "SURVIVES", r["property"] or "-",
                          ", ".join(sorted({v.split("/")[0] for v in r["proof"]["violated"]})) or "-",
                          ", ".join(r["explore"]["violated"]) or "-",
                          str(r["explore"]["shortest_trace"] or "-"), style=style)
        Console().print(table)
    return 1 if survivors else 0
