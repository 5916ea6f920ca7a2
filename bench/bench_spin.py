"""The explorer, the compiled reading and SPIN on the Promela export, side by side (not a test).

    python bench/bench_spin.py                         # pKVM pages 1..3 x guests 1..3, 120 s a rung
    python bench/bench_spin.py --pages 1 2 --guests 1 2 --cap 60 --json bench/spin.json
    python bench/bench_spin.py --profile toy --pages 2 3 4

For each machine (one guest protected, gfns 2): the explorer's unreduced count (`explore
--no-symmetry`), the compiled search on the code-generation reading (`model/codegen/search.py`,
its compile time included), and SPIN on `pkvm-model export --format promela` of the same machine
(`spin -a`, `gcc -O0 -DNOREDUCE -DSAFETY`: at -O1 gcc takes many minutes on a large model, then
`./pan`; the export's own time, which runs the compiled search, is reported apart). Each tool
stops at the cap, and its rung says so. SPIN's stored states must equal the explorer's states;
its transitions are the explorer's edges plus one (pan counts the initial state as a
transition). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from model.codegen.promela import ExportError, export  # noqa: E402
from model.codegen.search import reachable  # noqa: E402
from model.explorer import explore  # noqa: E402
from model.profiles import get  # noqa: E402


class _Cap(Exception):
    pass


def machine(profile, *options: str):
    """The configuration the profile's own machine options give."""
    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    return profile.config_from_args(parser.parse_args(list(options)))


def run_explorer(profile, config, cap: float) -> dict:
    start = time.perf_counter()

    def progress(*_):
        if time.perf_counter() - start > cap:
            raise _Cap

    result = explore(profile, config, symmetry=False, progress=progress,
                     stops=(KeyboardInterrupt, _Cap))
    seconds = time.perf_counter() - start
    return {"states": len(result.states), "edges": result.edges, "seconds": seconds,
            "complete": result.complete}


def run_compiled(profile, config, cap: float) -> dict:
    start = time.perf_counter()
    found = reachable(profile, config, max_seconds=cap)
    return {"states": found["states"], "edges": found["edges"],
            "seconds": time.perf_counter() - start, "compile_seconds": found["compile_seconds"],
            "complete": found["complete"], "shapes": found["shapes"]}


def run_spin(profile, config, cap: float, folder: str) -> dict:
    start = time.perf_counter()
    try:
        text, facts = export(profile, config, max_seconds=cap)
    except ExportError as err:
        return {"complete": False, "stopped": f"export: {err}",
                "export_seconds": time.perf_counter() - start}
    out = {"export_seconds": time.perf_counter() - start, "cells": facts["cells"],
           "model_bytes": len(text)}
    path = os.path.join(folder, "model.pml")
    with open(path, "w") as f:
        f.write(text)
    try:
        subprocess.run(["spin", "-a", "model.pml"], cwd=folder, check=True, capture_output=True,
                       timeout=cap)
        t = time.perf_counter()
        subprocess.run(["gcc", "-O0", "-DNOREDUCE", "-DSAFETY", "-DMEMLIM=8192", "-o", "pan",
                        "pan.c"], cwd=folder, check=True, capture_output=True, timeout=cap * 4)
        out["gcc_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        # Steps inside an atomic block and the claim's steps count towards pan's depth: start at
        # a few times the states and double while pan says the depth was too small.
        depth = 4 * facts["states"] + 10_000
        width = min(28, max(18, (2 * facts["states"]).bit_length()))
        while True:
            pan = subprocess.run(["./pan", f"-m{depth}", f"-w{width}"], cwd=folder,
                                 capture_output=True, text=True, timeout=cap)
            if "max search depth too small" not in pan.stdout or depth > 10**9:
                break
            depth *= 2
        out["depth_limit"] = depth
        wall = time.perf_counter() - t
    except subprocess.TimeoutExpired as err:
        return {**out, "complete": False, "stopped": f"{err.cmd[0]} past the cap"}
    except subprocess.CalledProcessError as err:
        return {**out, "complete": False, "stopped": f"{err.cmd[0]}: {err.stderr[-200:]!r}"}

    def number(pattern):
        m = re.search(pattern, pan.stdout)
        return None if m is None else float(m.group(1))

    stored = number(r"(\d+) states, stored")
    out.update({"states": None if stored is None else int(stored),
                "transitions": int(number(r"(\d+) transitions") or 0),
                "errors": int(number(r"errors: (\d+)") or 0),
                "seconds": number(r"elapsed time ([\d.e+-]+) seconds") or wall,
                "wall_seconds": wall, "complete": stored is not None})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="pkvm", choices=("pkvm", "toy"))
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--guests", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--cap", type=float, default=120.0, help="seconds per tool per rung")
    parser.add_argument("--json", default="bench/spin.json", metavar="FILE")
    args = parser.parse_args()
    if shutil.which("spin") is None:
        sys.exit("spin is not installed (apt-get install spin)")
    profile = get(args.profile)
    rungs = [(p, g) for p in args.pages for g in (args.guests if args.profile == "pkvm" else [0])]
    console = Console(width=max(Console().width, 200))
    rows = []
    for pages, guests in rungs:
        config = machine(profile, "--pages", str(pages),
                         *(("--guests", str(guests)) if args.profile == "pkvm" else ()))
        name = profile.config_text(config)
        console.print(f"{name} ...", style="dim")
        row = {"machine": name, "pages": pages, "guests": guests}
        row["explorer"] = run_explorer(profile, config, args.cap)
        row["compiled"] = run_compiled(profile, config, args.cap)
        with tempfile.TemporaryDirectory() as folder:
            row["spin"] = run_spin(profile, config, args.cap, folder)
        e, s = row["explorer"], row["spin"]
        if e["complete"] and s.get("complete"):
            row["states_equal"] = e["states"] == s["states"]
            row["transitions_minus_one_equal_edges"] = s["transitions"] - 1 == e["edges"]
        rows.append(row)
        with open(args.json, "w") as f:
            json.dump({"profile": profile.name, "cap_seconds": args.cap, "rungs": rows}, f,
                      indent=2)
    table = Table(title=f"{profile.name}: explorer (no symmetry), compiled reading, SPIN on the "
                        f"export (cap {args.cap:.0f} s per tool)")
    for col in ("machine", "explorer states", "edges", "s", "states/s", "compiled s",
                "of which compile", "states/s", "export s", "SPIN states", "transitions",
                "SPIN s", "states/s", "SPIN/explorer rate", "equal"):
        table.add_column(col, justify="left" if col == "machine" else "right")

    def rate(d):
        ok = d.get("complete") and d.get("seconds")
        return f"{d['states'] / max(d['seconds'], 1e-3):,.0f}" if ok else "-"

    def count(d, k="states"):
        return f"{d[k]:,}" if d.get("complete") else f"stopped ({d.get(k, 0) or 0:,})" \
            if k in d else "stopped"

    for row in rows:
        e, c, s = row["explorer"], row["compiled"], row["spin"]
        ratio = (s["states"] / max(s["seconds"], 1e-3)) / (e["states"] / e["seconds"]) \
            if e["complete"] and s.get("complete") else None
        table.add_row(row["machine"], count(e), f"{e['edges']:,}", f"{e['seconds']:.1f}", rate(e),
                      f"{c['seconds']:.1f}" + ("" if c["complete"] else " stopped"),
                      f"{c['compile_seconds']:.1f}", rate(c),
                      f"{s['export_seconds']:.1f}", count(s) if "states" in s else
                      s.get("stopped", "stopped")[:40], f"{s.get('transitions', 0):,}",
                      f"{s['seconds']:.2f}" if s.get("complete") else "-", rate(s),
                      f"{ratio:,.0f}x" if ratio else "-",
                      str(row.get("states_equal", "-")))
    console.print(table)
    console.print(f"written to {args.json}")


if __name__ == "__main__":
    main()
