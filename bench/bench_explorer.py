"""Explorer throughput, with and without symmetry reduction, side by side (not a test).

    python bench/bench_explorer.py                 # pKVM up to 2 pages x 2 guests, gfns 2
    python bench/bench_explorer.py --quick         # smaller machines only
    python bench/bench_explorer.py --profile toy   # the toy profile's ladder of pages

Prints one row per (machine, symmetry): states, edges, seconds, states/s, the memo's hit rate,
peak memory of the run, and for reduced runs the unreduced counts rebuilt from the orbits.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from model.explorer import explore, unreduced_counts  # noqa: E402
from model.profiles import get  # noqa: E402
from model.profiles.pkvm.states import Config  # noqa: E402
from model.profiles.toy.protocol import Config as ToyConfig  # noqa: E402

MACHINES = {
    "pkvm": {
        "1 page x 2 guests, gfns 1": Config(ram=1, guests=(True, False), gfns=1),
        "1 page x 2 guests, gfns 2": Config(ram=1, guests=(True, False), gfns=2),
        "2 pages x 2 guests, gfns 1": Config(ram=2, guests=(True, False), gfns=1),
        "2 pages x 2 guests, gfns 2 (large)": Config(ram=2, guests=(True, False), gfns=2),
    },
    "toy": {f"{n} pages{' (large)' if n == 6 else ''}": ToyConfig(pages=n) for n in (2, 4, 6)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the large machine")
    parser.add_argument("--profile", default="pkvm", choices=sorted(MACHINES))
    args = parser.parse_args()
    profile = get(args.profile)
    table = Table(title=f"pkvm-model explore --profile {profile.name}: throughput")
    for col in ("machine", "symmetry", "states", "edges", "seconds", "states/s", "memo hits",
                "unreduced states", "unreduced edges", "violations", "sometimes", "graph"):
        table.add_column(col, justify="left" if col in ("machine", "symmetry") else "right")
    console = Console(width=max(Console().width, 180))
    for name, config in MACHINES[profile.name].items():
        if args.quick and "large" in name:
            continue
        for symmetry in (True, False):
            gc.collect()
            start = time.perf_counter()
            result = explore(profile, config, symmetry=symmetry)
            seconds = time.perf_counter() - start
            unreduced = unreduced_counts(result) if symmetry else {"states": "", "edges": ""}
            stepper_rate = ""
            if result.stepper is not None:
                st = result.stepper
                stepper_rate = f"{st.hits / max(st.hits + st.misses, 1):.0%}"
            witnessed = sum(result.sometimes.values())
            table.add_row(
                name, "on" if symmetry else "off", f"{len(result.states):,}", f"{result.edges:,}",
                f"{seconds:.1f}", f"{len(result.states) / seconds:,.0f}", stepper_rate,
                f"{unreduced['states']:,}" if symmetry else "",
                f"{unreduced['edges']:,}" if symmetry else "",
                str(len(result.violations)), f"{witnessed}/{len(result.sometimes)}",
                "holds" if not any(v for k, v in result.graph_checks.items() if k != "checked")
                else "BROKEN")
            console.print(f"{name}, symmetry {'on' if symmetry else 'off'}: "
                          f"{len(result.states):,} states in {seconds:.1f} s", style="dim")
            del result
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(table)
    console.print(f"peak resident memory of the whole run: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
