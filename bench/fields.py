"""Which state fields make the reachable set larger than a hand-written twin's (not a test).

    python bench/fields.py                              # pKVM 1x1, 2x1, 1x2, 2x2 and gmem's default
    python bench/fields.py --profile pkvm --pages 2 --guests 2
    python bench/fields.py --profile gmem --machine "--slots 2 --gfns 2 --files 2"
    python bench/fields.py --profile pkvm --twin host,hyp,ffa,pins,count,life,s2,refs,contents

For each machine the explorer's reachable set is computed without symmetry (every state, not
one per orbit), then projected: for each field of the profile's `State` (its named-tuple
fields, nothing else is assumed), how many distinct states remain when that one field is
dropped, and when it is the only one added back to the twin's fields; how many remain on the
twin's fields alone (a hand-written Promela twin keeps fewer fields: `--twin`, default per
profile in `TWINS`); and the greedy order of dropping fields, from all of them to none and from
all of them to the twin's, each step dropping the field whose loss shrinks the set most. A field
whose drop leaves the count unchanged is a function of the others on the reachable set (or
constant: its `values` is 1).

pKVM machines are bench/ladder.py's rungs (pages x guests, guest 0 protected, gfns 2); other
profiles run their default machine unless `--machine` gives the profile's own machine options.
Prints one table per machine and writes JSON (`--json PATH`, default bench/fields.json).
Bad input (an unknown profile or field, a bad machine option): one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from operator import itemgetter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from model.explorer import explore  # noqa: E402
from model.profiles import PROFILES, get  # noqa: E402

# The fields a hand-written twin of each profile keeps. pKVM: the ownership of each page (the
# host's, the hypervisor's and FF-A's view, pins, host_share_guest_count) and each guest's
# lifecycle, stage-2 leaves and refcount; not the host stage-2 entry's encoding (pte_*), the hyp
# stage-1 mapping, the page contents, the host's own records or the memcache. gmem: the VM's
# lifecycle, each file index's page state and host mapping, each gfn's attribute and leaf kind;
# not the files' and slots' bookkeeping or where a leaf points.
TWINS = {
    "pkvm": ("host", "hyp", "ffa", "pins", "count", "life", "s2", "refs"),
    "gmem": ("vm", "page", "hpte", "attr", "lkind"),
}
# Machines run when no --profile is given, as (profile, machine options).
PKVM_RUNGS = [(1, 1), (2, 1), (1, 2), (2, 2)]
DEFAULT_RUNS = [("pkvm", ["--pages", str(p), "--guests", str(g), "--protected", "1"])
                for p, g in PKVM_RUNGS] + [("gmem", [])]


class BadInput(Exception):
    """One line for the user, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage), exit 2."""

    def error(self, message):
        raise BadInput(message)


def machine(profile, options: list[str]):
    """The configuration the profile's own machine options give."""
    parser = _Parser(prog="machine options", add_help=False)
    profile.add_arguments(parser)
    try:
        return profile.config_from_args(parser.parse_args(options))
    except ValueError as err:
        raise BadInput(str(err)) from None


# -- the projections (generic: rows of per-field value numbers) --------------------------------
def rows_of(states, fields: tuple[str, ...]) -> list[tuple]:
    """Each state as a tuple of per-field value numbers (equal numbers, equal values)."""
    numbering = [{} for _ in fields]
    rows = []
    for state in states:
        row = []
        for i, value in enumerate(state):
            ids = numbering[i]
            n = ids.get(value)
            if n is None:
                n = ids[value] = len(ids)
            row.append(n)
        rows.append(tuple(row))
    return rows


def distinct(rows, columns) -> set:
    """The distinct projections of `rows` on the given column indexes."""
    columns = list(columns)
    if not columns:
        return {()} if rows else set()
    if len(columns) == 1:
        i = columns[0]
        return {(r[i],) for r in rows}
    pick = itemgetter(*columns)
    return set(map(pick, rows))


def greedy(rows, fields: tuple[str, ...], keep: tuple[str, ...] = ()) -> list[dict]:
    """Drop, one at a time, the field (outside `keep`) whose loss leaves the fewest distinct
    states, until only `keep` is left; each step's field and count (ties: the earlier field)."""
    left = list(range(len(fields)))
    current = set(rows)  # the distinct projections on `left`, as tuples in `left`'s order
    steps = []
    while any(fields[i] not in keep for i in left):
        best = None
        for pos, i in enumerate(left):
            if fields[i] in keep:
                continue
            got = distinct(current, [j for j in range(len(left)) if j != pos])
            if best is None or len(got) < len(best[2]):
                best = (pos, i, got)
        pos, i, current = best
        del left[pos]
        steps.append({"drop": fields[i], "states": len(current)})
    return steps


def analyse(states, fields: tuple[str, ...], twin: tuple[str, ...]) -> dict:
    """Every count the report gives, for one reachable set."""
    rows = rows_of(states, fields)
    full = len(set(rows))
    index = {f: i for i, f in enumerate(fields)}
    twin_cols = [index[f] for f in twin]
    per_field = []
    for i, f in enumerate(fields):
        without = len(distinct(rows, [j for j in range(len(fields)) if j != i]))
        row = {"field": f, "values": len({r[i] for r in rows}), "without": without,
               "ratio": without / full if full else 1.0, "twin": f in twin}
        if f not in twin:
            row["twin_plus"] = len(distinct(rows, twin_cols + [i]))
        per_field.append(row)
    twin_count = len(distinct(rows, twin_cols))
    to_twin = greedy(rows, fields, keep=twin)
    # The fields that make the difference: those of the greedy path to the twin whose drop
    # shrank the set (each later one is a function of the twin's and these on the reachable set).
    counts = [full] + [s["states"] for s in to_twin]
    difference = [s["drop"] for s, before in zip(to_twin, counts) if s["states"] < before]
    return {"states": full, "fields": per_field,
            "twin": {"fields": list(twin), "states": twin_count,
                     "ratio": twin_count / full if full else 1.0},
            "difference": difference,
            "twin_and_difference": len(distinct(rows, twin_cols + [index[f] for f in difference])),
            "greedy": greedy(rows, fields), "greedy_to_twin": to_twin}


def check_fields(name: str, fields, wanted) -> None:
    for f in wanted:
        if f not in fields:
            raise BadInput(f"unknown field {f!r} of the {name} state; one of: {', '.join(fields)}")


def run(name: str, options: list[str], twin: tuple[str, ...] | None) -> dict:
    profile = get(name)
    config = machine(profile, options)
    fields = tuple(type(profile.initial_state(config))._fields)
    twin = tuple(TWINS.get(name, fields) if twin is None else twin)
    check_fields(name, fields, twin)
    start = time.perf_counter()
    result = explore(profile, config, symmetry=False, properties=[], graph_checks=False)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    data = analyse(result.states, fields, twin)
    return {"profile": name, "options": " ".join(options), "machine": profile.config_text(config),
            "complete": result.complete, "edges": result.edges, "explore_seconds": seconds,
            "project_seconds": time.perf_counter() - start, **data}


def _n(x) -> str:
    return f"{x:,}"


def show(console, d: dict) -> None:
    full, twin = d["states"], d["twin"]
    console.print(f"[bold]{d['profile']}: {d['machine']}[/bold]: {_n(full)} reachable states "
                  f"without symmetry, {_n(d['edges'])} edges (explore {d['explore_seconds']:.1f} "
                  f"s, projections {d['project_seconds']:.1f} s)")
    if not d["complete"]:
        console.print("[red]the search did not finish: these are the states it covered[/red]")
    table = Table()
    for col in ("field", "twin", "values", "states without it", "ratio", "twin + it"):
        table.add_column(col, justify="left" if col == "field" else "right")
    for f in d["fields"]:
        table.add_row(f["field"], "yes" if f["twin"] else "", _n(f["values"]), _n(f["without"]),
                      f"{f['ratio']:.4f}",
                      _n(f["twin_plus"]) if "twin_plus" in f else "")
    console.print(table)
    console.print(f"twin ({','.join(twin['fields'])}): {_n(twin['states'])} states "
                  f"({twin['ratio']:.4f} of {_n(full)}); the difference: "
                  f"{', '.join(d['difference']) or 'none'} (twin + these: "
                  f"{_n(d['twin_and_difference'])})")
    for key, title in (("greedy_to_twin", "greedy, all fields -> the twin's"),
                       ("greedy", "greedy, all fields -> none")):
        path = " -> ".join(f"-{','.join(names)} {_n(count)}"
                           for names, count in _runs_of(d[key])) or "nothing to drop"
        console.print(f"{title}: {_n(full)} -> {path}")
    console.print()


def _runs_of(steps):
    """Consecutive greedy steps that leave the same count, as one (fields, count)."""
    out = []
    for step in steps:
        if out and out[-1][1] == step["states"]:
            out[-1][0].append(step["drop"])
        else:
            out.append(([step["drop"]], step["states"]))
    return out


def main(argv=None) -> int:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", help=f"one of {', '.join(PROFILES)} (default: pKVM "
                                          f"{', '.join(f'{p}x{g}' for p, g in PKVM_RUNGS)} "
                                          "and gmem's default machine)")
    parser.add_argument("--pages", type=int, nargs="+", help="pKVM RAM pages (default 1 2)")
    parser.add_argument("--guests", type=int, nargs="+", help="pKVM guests (default 1 2)")
    parser.add_argument("--machine", action="append", metavar="OPTIONS",
                        help="the profile's own machine options as one string (repeatable)")
    parser.add_argument("--twin", metavar="F,F,...",
                        help="the twin's fields (default per profile: " + "; ".join(
                            f"{k} {','.join(v)}" for k, v in TWINS.items()) + ")")
    parser.add_argument("--json", default="bench/fields.json", metavar="PATH")
    try:
        args = parser.parse_args(argv)
        runs = _runs(args)
        twin = None if args.twin is None else tuple(f.strip() for f in args.twin.split(",")
                                                    if f.strip())
        for name, options in runs:  # every machine and field checked before any search
            profile = get(name)
            fields = type(profile.initial_state(machine(profile, options)))._fields
            check_fields(name, fields, twin or ())
    except BadInput as err:
        print(f"fields.py: error: {err}", file=sys.stderr)
        return 2
    console = Console(width=max(Console().width, 120))
    data = {"cores": os.cpu_count(), "runs": []}
    for name, options in runs:
        console.print(f"{name} {' '.join(options)} ...", style="dim")
        d = run(name, options, twin)
        data["runs"].append(d)
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)
        show(console, d)
    console.print(f"written to {args.json}")
    return 0


def _runs(args) -> list[tuple[str, list[str]]]:
    if args.profile is None:
        if args.pages or args.guests or args.machine or args.twin:
            raise BadInput("--pages, --guests, --machine and --twin need --profile")
        return DEFAULT_RUNS
    if args.profile not in PROFILES:
        raise BadInput(f"unknown profile {args.profile!r}; one of: {', '.join(PROFILES)}")
    if args.machine:
        if args.pages or args.guests:
            raise BadInput("--machine replaces --pages and --guests")
        return [(args.profile, shlex.split(m)) for m in args.machine]
    if args.profile == "pkvm":
        return [("pkvm", ["--pages", str(p), "--guests", str(g), "--protected", "1"])
                for g in (args.guests or [1, 2]) for p in (args.pages or [1, 2])]
    if args.pages or args.guests:
        raise BadInput(f"--pages and --guests are pKVM's; give {args.profile}'s own options "
                       "with --machine")
    return [(args.profile, [])]


if __name__ == "__main__":
    sys.exit(main())
