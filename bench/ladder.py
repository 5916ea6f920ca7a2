"""The benchmark: the explorer's ladder beside SPIN, proof times, conformance rate (not a test).

    python bench/ladder.py                        # everything, 120 s cap per tool per rung
    python bench/ladder.py --quick                # small rungs, 30 s caps, no gmem, no proofs
    python bench/ladder.py --pages 3 --guests 3 --cap 300 --json bench/ladder.json

One run, side by side on the same machine:
- explorer: pKVM pages 1..4 x guests 1..3 (guest 0 protected, gfns 2), symmetry on and off, and
  gmem's machines: states, edges, seconds, states per second, and bytes per stored state (the
  run's peak resident memory above its start, over its states: the state table, the arcs, the
  memo and the symmetry cache together). Each rung runs in a process of its own, so its memory
  is its own; a rung past the cap is stopped (and reports what it covered), and the larger
  rungs of its series are skipped.
- SPIN on `pkvm-model export --format promela` of each unreduced rung (`spin -a`, `gcc -O0
  -DNOREDUCE -DSAFETY`, `./pan`): stored states, which must equal the explorer's unreduced
  states, transitions (the explorer's edges plus one: pan counts the initial state), seconds,
  and its rate over the explorer's. The export runs the native search first (below), reading
  the trees the native run traced (a trace cache kept for the ladder's run); its time is
  reported apart.
- the native search (`model/codegen/native.py`: the same trees as arrays, one numba-compiled
  breadth-first search, always properties included) of each unreduced rung, in a process of its
  own, tracing afresh (`--native-cap`: its cap and the export's, when the largest rungs need
  more than the explorer's): its states must equal the explorer's; its rate over the search's
  seconds (tracing, compiling, encoding and the check of the first states excluded, reported
  apart) beside SPIN's, and the bytes it holds per state (cells, index, parent, call, due
  properties).
- the native search with the profile's symmetry (`model/codegen/orbits.py`) of each rung, in a
  process of its own, tracing afresh into a folder of its own: its states must equal the
  explorer's reduced states; its seconds all told (tracing included) and its search's.
  A native run stopped at the cap says its deepest whole breadth-first layer and how much
  larger it is than the one before (above 1: the search is short of its largest layer); the
  JSON holds every layer's size.
- `pkvm-model prove` per profile: wall seconds, obligations, the slowest obligation and the
  median (an obligation is stated for every machine size, so its time does not grow with the
  machine; the bounded checks name their machine).
- `pkvm-model conform`: calls replayed on model and reference per second.

Prints the tables and writes JSON (default bench/ladder.json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from model.codegen import native  # noqa: E402
from model.codegen.promela import ExportError, export  # noqa: E402
from model.explorer import explore  # noqa: E402
from model.profiles import get  # noqa: E402

GMEM_MACHINES = [["--slots", "1", "--gfns", "2", "--files", "1"],
                 ["--slots", "2", "--gfns", "2", "--files", "2"],
                 ["--slots", "2", "--gfns", "4", "--files", "2"]]


class _Cap(Exception):
    pass


def machine(profile, options: list[str]):
    """The configuration the profile's own machine options give."""
    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    return profile.config_from_args(parser.parse_args(options))


def _rss() -> int:
    """This process's peak resident memory. Linux keeps `ru_maxrss` across exec, so a spawned
    rung would start at its parent's peak (the parent runs the Promela exports): the memory
    map's own high-water mark (VmHWM) starts afresh, and is read where there is one."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _explore_child(name: str, options: list[str], symmetry: bool, cap: float, out) -> None:
    profile = get(name)
    config = machine(profile, options)
    base = _rss()
    start = time.perf_counter()

    def progress(*_):
        if time.perf_counter() - start > cap:
            raise _Cap

    result = explore(profile, config, symmetry=symmetry, progress=progress,
                     stops=(KeyboardInterrupt, _Cap))
    seconds = time.perf_counter() - start
    states = len(result.states)
    grown = max(0, _rss() - base)
    out.send({"machine": profile.config_text(config), "states": states, "edges": result.edges,
              "seconds": seconds, "complete": result.complete,
              "states_per_second": states / max(seconds, 1e-9),
              "bytes_per_state": grown / max(states, 1),
              "violations": [v.property for v in result.violations],
              "sometimes": f"{sum(result.sometimes.values())}/{len(result.sometimes)}",
              "group_order": result.symmetry.get("group_order"),
              "symmetry_refused": result.symmetry.get("refused")})
    out.close()


def _native_child(name: str, options: list[str], traces: str, symmetry: bool, cap: float,
                  out) -> None:
    profile = get(name)
    config = machine(profile, options)
    base = _rss()
    found = native.reachable(profile, config, properties=True, max_seconds=cap, cache=traces,
                             symmetry=symmetry)
    states = found["states"]
    out.send({"states": states, "edges": found["edges"], "seconds": found["seconds"],
              "group_order": found["group_order"],
              "search_seconds": found["search_seconds"],
              "tracing_seconds": found["compile_seconds"],
              "encode_seconds": found["encode_seconds"], "check_seconds": found["check_seconds"],
              "complete": found["complete"],
              "in_python": found["in_python"], "learned": found["learned"],
              "states_per_second": states / max(found["search_seconds"], 1e-3),
              "bytes_per_state": max(0, _rss() - base) / max(states, 1),
              "held_bytes_per_state": found["bytes_per_state"], "violated": found["violated"],
              "layers": found["layers"]})
    out.close()


def run_explorer(name: str, options: list[str], symmetry: bool, cap: float) -> dict:
    """One rung in a fresh interpreter (spawned, not forked: its peak memory is its own),
    stopped at the cap."""
    return _in_child(_explore_child, (name, options, symmetry, cap))


def run_native(name: str, options: list[str], traces: str, cap: float,
               symmetry: bool = False) -> dict:
    """The native search of one rung, in a fresh interpreter, stopped at the cap; it traces
    afresh and leaves its trees in the folder `traces` (the unreduced run's: for the export)."""
    return _in_child(_native_child, (name, options, traces, symmetry, cap))


def _in_child(target, args: tuple) -> dict:
    cap = args[-1]
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(*args, send))
    child.start()
    send.close()
    # The cap stops the search; what follows it (graph properties, traces) gets as long again.
    got = receive.poll(2 * cap + 60)
    try:
        row = receive.recv() if got else None
    except EOFError:  # the child died before it reported
        row = None
    child.join(5)
    if child.is_alive():
        child.kill()
        child.join()
    return row or {"complete": False, "stopped": "killed past twice the cap"}


def _memlim() -> int:
    """pan's memory limit in MB: two thirds of this machine's memory (pKVM 3 x 3 holds 58
    million states)."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 2 / 3) >> 20


def run_spin(profile, config, cap: float, folder: str, traces: str) -> dict:
    """SPIN on the Promela export of the machine (its trees read from `traces` where the native
    search left them), each step stopped at the cap."""
    start = time.perf_counter()
    try:
        text, facts = export(profile, config, max_seconds=cap, cache=traces)
    except ExportError as err:
        return {"complete": False, "stopped": f"export: {err}",
                "export_seconds": time.perf_counter() - start}
    out = {"export_seconds": time.perf_counter() - start,
           "export_tracing_seconds": facts["tracing_seconds"],
           "export_search_seconds": facts["search_seconds"], "cells": facts["cells"],
           "model_bytes": len(text)}
    with open(os.path.join(folder, "model.pml"), "w") as f:
        f.write(text)
    try:
        subprocess.run(["spin", "-a", "model.pml"], cwd=folder, check=True, capture_output=True,
                       timeout=cap)
        t = time.perf_counter()
        subprocess.run(["gcc", "-O0", "-DNOREDUCE", "-DSAFETY", f"-DMEMLIM={_memlim()}", "-o",
                        "pan", "pan.c"], cwd=folder, check=True, capture_output=True,
                       timeout=cap * 4)
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
        wall = time.perf_counter() - t
    except subprocess.TimeoutExpired as err:
        return {**out, "complete": False, "stopped": f"{err.cmd[0]} past the cap"}
    except subprocess.CalledProcessError as err:
        return {**out, "complete": False, "stopped": f"{err.cmd[0]}: {err.stderr[-200:]!r}"}

    def number(pattern):
        m = re.search(pattern, pan.stdout)
        return None if m is None else float(m.group(1))

    stored = number(r"([\d.e+]+) states, stored")  # large counts print as 1.2e+09
    seconds = number(r"elapsed time ([\d.e+-]+) seconds") or wall
    # pan prints its counts also when it stops at the memory limit: then it covered a part
    short = re.search(r"reached -DMEMLIM bound|out of memory", pan.stdout + pan.stderr)
    out.update({"states": None if stored is None else int(stored),
                "transitions": int(number(r"([\d.e+]+) transitions") or 0),
                "errors": int(number(r"errors: (\d+)") or 0), "seconds": seconds,
                "wall_seconds": wall, "complete": stored is not None and short is None})
    if short is not None:
        out["stopped"] = f"pan: {short.group(0)}"
    if stored is not None:
        out["states_per_second"] = stored / max(seconds, 1e-3)
    return out


def _cli(*args: str):
    """A pkvm-model command's JSON report (None if it printed none) and exit code."""
    done = subprocess.run([sys.executable, "-m", "model.cli", *args, "--json", "-q"],
                          capture_output=True, text=True)
    try:
        return json.loads(done.stdout), done.returncode
    except json.JSONDecodeError:
        return None, done.returncode


def run_prove(name: str) -> dict:
    start = time.perf_counter()
    report, code = _cli("prove", "--profile", name)
    seconds = time.perf_counter() - start
    if report is None:
        return {"seconds": seconds, "exit": code, "error": "no report"}
    obligations = report["obligations"]
    times = [r["seconds"] for r in obligations]
    slowest = max(obligations, key=lambda r: r["seconds"])
    return {"seconds": seconds, "exit": code, "result": report["result"],
            "obligations": len(obligations), "bmc": len(report["bmc"]),
            "bmc_seconds": sum(r["seconds"] for r in report["bmc"]),
            "slowest": f"{slowest['transition']} / {slowest['property']}",
            "slowest_seconds": slowest["seconds"], "median_seconds": statistics.median(times)}


def run_conform(name: str, walks: int) -> dict:
    report, code = _cli("conform", "--profile", name, "--no-explore", "--no-scenarios",
                        "--walks", str(walks))
    if report is None:
        return {"exit": code, "error": "no report"}
    walked = report["walks"]
    return {"exit": code, "calls": walked["calls"], "seconds": walked["seconds"],
            "calls_per_second": walked["calls"] / max(walked["seconds"], 1e-9),
            "disagreements": report["disagreements"]}


def _n(x, digits=0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, nargs="+", help="RAM pages (default 1 2 3 4)")
    parser.add_argument("--guests", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--cap", type=float, help="seconds per tool per rung (default 120)")
    parser.add_argument("--native-cap", type=float,
                        help="seconds for the native search and for the export, tracing "
                             "included (default: the cap)")
    parser.add_argument("--quick", action="store_true",
                        help="pages 1..2 and 30 s caps unless given, no gmem, no proofs")
    parser.add_argument("--no-spin", action="store_true", help="skip SPIN")
    parser.add_argument("--json", default="bench/ladder.json", metavar="FILE")
    args = parser.parse_args()
    args.cap = args.cap or (30.0 if args.quick else 120.0)
    args.pages = args.pages or ([1, 2] if args.quick else [1, 2, 3, 4])
    args.native_cap = args.native_cap or args.cap
    traces = tempfile.mkdtemp(prefix="ladder-traces-")
    try:
        _ladder(args, traces)
    finally:
        shutil.rmtree(traces, ignore_errors=True)


def _ladder(args, traces: str) -> None:
    spin = not args.no_spin and shutil.which("spin") is not None
    console = Console(width=max(Console().width, 200))
    data: dict = {"cap_seconds": args.cap, "native_cap_seconds": args.native_cap,
                  "cores": os.cpu_count(), "pkvm": [], "gmem": [],
                  "prove": {}, "conform": {}}

    def save():
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)

    pkvm = get("pkvm")
    capped: set = set()  # (guests, symmetry) series whose smaller rung hit the cap
    for guests in args.guests:
        for pages in args.pages:
            options = ["--pages", str(pages), "--guests", str(guests), "--protected", "1"]
            row = {"pages": pages, "guests": guests, "machine": f"{pages} x {guests}",
                   "config": pkvm.config_text(machine(pkvm, options))}
            for symmetry in (True, False):
                key = "symmetry" if symmetry else "unreduced"
                if (guests, symmetry) in capped:
                    row[key] = {"complete": False, "stopped": "skipped: a smaller rung capped"}
                    continue
                console.print(f"{row['machine']}, {key} ...", style="dim")
                row[key] = run_explorer("pkvm", options, symmetry, args.cap)
                if not row[key].get("complete"):
                    capped.add((guests, symmetry))
            if (guests, "native") not in capped:
                console.print(f"{row['machine']}, native ...", style="dim")
                row["native"] = run_native("pkvm", options, traces, args.native_cap)
                if not row["native"].get("complete"):
                    capped.add((guests, "native"))
            if (guests, "native symmetry") not in capped:
                console.print(f"{row['machine']}, native with symmetry ...", style="dim")
                with tempfile.TemporaryDirectory() as own:
                    row["native_symmetry"] = run_native("pkvm", options, own, args.native_cap,
                                                        symmetry=True)
                if not row["native_symmetry"].get("complete"):
                    capped.add((guests, "native symmetry"))
            if spin and (guests, "spin") not in capped:
                console.print(f"{row['machine']}, SPIN ...", style="dim")
                with tempfile.TemporaryDirectory() as folder:
                    row["spin"] = run_spin(pkvm, machine(pkvm, options), args.native_cap,
                                           folder, traces)
                if not row["spin"].get("complete"):
                    capped.add((guests, "spin"))
            data["pkvm"].append(row)
            save()
    if not args.quick:
        for options in GMEM_MACHINES:
            row = {"options": " ".join(options)}
            for symmetry in (True, False):
                console.print(f"gmem {row['options']}, symmetry {symmetry} ...", style="dim")
                row["symmetry" if symmetry else "unreduced"] = run_explorer(
                    "gmem", options, symmetry, args.cap)
            console.print(f"gmem {row['options']}, native ...", style="dim")
            row["native"] = run_native("gmem", options, traces, args.native_cap)
            with tempfile.TemporaryDirectory() as own:
                row["native_symmetry"] = run_native("gmem", options, own, args.native_cap,
                                                    symmetry=True)
            data["gmem"].append(row)
            save()
        for name in ("pkvm", "gmem", "toy"):
            console.print(f"prove --profile {name} ...", style="dim")
            data["prove"][name] = run_prove(name)
            save()
    for name in ("pkvm", "gmem"):
        console.print(f"conform --profile {name} ...", style="dim")
        data["conform"][name] = run_conform(name, 10 if args.quick else 40)
        save()
    _print(console, data)
    console.print(f"written to {args.json}")


def _explorer_cells(d: dict | None) -> list[str]:
    if not d:
        return ["-"] * 5
    if not d.get("complete"):
        covered = f" ({d['states']:,} states)" if "states" in d else ""
        return [f"stopped{covered}", "-", _n(d.get("seconds"), 1), "-", "-"]
    return [_n(d["states"]), _n(d["edges"]), _n(d["seconds"], 1), _n(d["states_per_second"]),
            _n(d["bytes_per_state"])]


def _covered(nat: dict) -> str:
    """What a native run stopped at the cap covered: its states, and how far its layers got
    (the deepest whole one and its size over the one before: above 1, the layers still grow
    and their peak lies ahead: pKVM 2 x 2 to 3 x 3 with symmetry hold 12% to 17% of their
    states through their first layer grown 1.6 times or less)."""
    if "states" not in nat:
        return ""
    whole = nat.get("layers", [])[:-1]  # the last one was being found
    growth = (f"; depth {len(whole) - 1}: {whole[-1] / whole[-2]:.2f}x"
              if len(whole) > 1 and whole[-2] else "")
    return f" ({nat['states']:,} states{growth})"


def _native_cells(nat: dict) -> list[str]:
    """A native run's states, "states/s (tracing s)" and held bytes per state."""
    if not nat.get("complete"):
        return [f"stopped{_covered(nat)}" if nat else "-", "-", "-"]
    return [_n(nat["states"]), f"{_n(nat['states_per_second'])} ({nat['tracing_seconds']:.1f})",
            _n(nat["held_bytes_per_state"])]


def _symmetric_cells(nat: dict, explored: dict) -> list[str]:
    """A native run with symmetry: its states, "seconds (search s)", states per search second,
    and whether its states equal the explorer's reduced states."""
    if not nat.get("complete"):
        return [f"stopped{_covered(nat)}" if nat else "-", _n(nat.get("seconds"), 1), "-", "-"]
    return [_n(nat["states"]), f"{nat['seconds']:.1f} ({nat['search_seconds']:.1f})",
            _n(nat["states_per_second"]),
            str(nat["states"] == explored["states"]) if explored.get("complete") else "-"]


def _print(console, data: dict) -> None:
    table = Table(title=f"pKVM explorer ladder (pages x guests, guest 0 protected, gfns 2; cap "
                        f"{data['cap_seconds']:.0f} s per tool per rung, {data['cores']} cores)")
    for col in ("machine", "sym states", "edges", "s", "states/s", "B/state",
                "unreduced states", "edges", "s", "states/s", "B/state",
                "SPIN states", "transitions", "SPIN s", "states/s", "SPIN/explorer", "equal",
                "native states/s (tracing s)",
                "SPIN/native", "native B/state", "native equal",
                "native sym states", "s (search s)", "states/s", "equal"):
        table.add_column(col, justify="left" if col == "machine" else "right")
    for row in data["pkvm"]:
        u, s = row.get("unreduced") or {}, row.get("spin") or {}
        spin_cells = ["-"] * 6
        if s.get("complete"):
            ratio = s["states_per_second"] / u["states_per_second"] if u.get("complete") else None
            equal = (u["states"] == s["states"] and u["edges"] + 1 == s["transitions"]) \
                if u.get("complete") else None
            spin_cells = [_n(s["states"]), _n(s["transitions"]), _n(s["seconds"], 2),
                          _n(s["states_per_second"]), "-" if ratio is None else f"{ratio:.1f}x",
                          "-" if equal is None else str(equal)]
        elif s:
            spin_cells[0] = s.get("stopped", "stopped")[:30]
        nat = row.get("native") or {}
        states, rate, held = _native_cells(nat)
        if nat.get("complete"):
            spin_cells += [rate, f"{s['states_per_second'] / nat['states_per_second']:.1f}x"
                           if s.get("complete") else "-", held,
                           str((nat["states"], nat["edges"]) == (u["states"], u["edges"]))
                           if u.get("complete") else "-"]
        else:
            spin_cells += [states, "-", "-", "-"]
        table.add_row(row["machine"], *_explorer_cells(row.get("symmetry")),
                      *_explorer_cells(u), *spin_cells,
                      *_symmetric_cells(row.get("native_symmetry") or {},
                                        row.get("symmetry") or {}))
    console.print(table)
    if data["gmem"]:
        table = Table(title="gmem explorer")
        for col in ("machine", "sym states", "edges", "s", "states/s", "B/state",
                    "unreduced states", "edges", "s", "states/s", "B/state", "native states",
                    "states/s (tracing s)", "native B/state",
                    "native sym states", "s (search s)", "states/s", "equal"):
            table.add_column(col, justify="left" if col == "machine" else "right")
        for row in data["gmem"]:
            table.add_row(row["options"], *_explorer_cells(row.get("symmetry")),
                          *_explorer_cells(row.get("unreduced")),
                          *_native_cells(row.get("native") or {}),
                          *_symmetric_cells(row.get("native_symmetry") or {},
                                            row.get("symmetry") or {}))
        console.print(table)
    if data["prove"]:
        table = Table(title="pkvm-model prove (wall, all obligations and bounded checks)")
        for col in ("profile", "s", "result", "obligations", "slowest obligation", "its s",
                    "median s", "bounded checks", "their CPU s"):
            table.add_column(col, justify="left" if col in ("profile", "slowest obligation")
                             else "right")
        for name, d in data["prove"].items():
            table.add_row(name, _n(d["seconds"], 1), d.get("result", d.get("error")),
                          str(d.get("obligations")), d.get("slowest", ""),
                          _n(d.get("slowest_seconds"), 2), _n(d.get("median_seconds"), 3),
                          str(d.get("bmc")), _n(d.get("bmc_seconds"), 1))
        console.print(table)
    table = Table(title="pkvm-model conform (random walks only)")
    for col in ("profile", "calls", "s", "calls/s", "disagreements"):
        table.add_column(col, justify="left" if col == "profile" else "right")
    for name, d in data["conform"].items():
        table.add_row(name, _n(d.get("calls")), _n(d.get("seconds"), 1),
                      _n(d.get("calls_per_second")), str(d.get("disagreements", d.get("error"))))
    console.print(table)


if __name__ == "__main__":
    main()
