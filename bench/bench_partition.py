"""Exploration partitioned across processes by state hash, measured beside one process (not a test).

    python bench/bench_partition.py                     # pKVM 2 pages x 2 guests, 1 and 2 workers
    python bench/bench_partition.py --profile toy --workers 1 2 4

The design of docs/distributed.md, run on one machine: every state has one owner, the worker
`owner(state) = stable hash % N`; the search goes breadth-first in lock step, one BFS layer a
round. In a round each worker expands its own frontier with the memoised stepper, sends each
successor to its owner (one batch per peer, over a pipe), and keeps those it receives that it
has not seen: its next frontier. The round ends when every worker has told the coordinator the
size of its new frontier; the search ends when all are empty. Counts are the unreduced graph's
(symmetry off) and must equal the one-process explorer's, which the bench checks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from model.explorer import Stepper, explore  # noqa: E402
from model.profiles import get  # noqa: E402


def owner(state, workers: int) -> int:
    """A hash that is the same in every process and every run (Python's `hash` of a str is not)."""
    return zlib.crc32(repr(state).encode()) % workers


def _worker(name: str, rank: int, workers: int, peers: list, control) -> None:
    profile = get(name)
    config = profile.adjust(profile.default_config())
    calls = profile.calls(config)
    stepper = Stepper(profile, config, calls)
    s0 = profile.initial_state(config)
    seen = set()
    frontier = []
    if owner(s0, workers) == rank:
        seen.add(s0)
        frontier.append(s0)
    edges = 0
    while True:
        out: list[list] = [[] for _ in range(workers)]
        for s in frontier:
            stepper.begin(s)
            for ci in range(len(calls)):
                outcome = stepper(ci)
                if outcome is None or outcome.errno:
                    continue
                edges += 1
                out[owner(outcome.state, workers)].append(outcome.state)
        incoming = out[rank]
        others = [peer for peer in range(workers) if peer != rank]
        # Sent from a thread while this one receives: two large batches crossing would each
        # wait for the other's reader otherwise.
        sending = threading.Thread(target=lambda: [peers[p].send(out[p]) for p in others])
        sending.start()
        for peer in others:
            incoming += peers[peer].recv()
        sending.join()
        frontier = []
        for t in incoming:
            if t not in seen:
                seen.add(t)
                frontier.append(t)
        control.send(len(frontier))
        if not control.recv():
            break
    control.send((len(seen), edges))


def partitioned(name: str, workers: int) -> dict:
    """States and edges of the unreduced graph, found by `workers` processes."""
    ctx = mp.get_context("fork")
    pipes = {}
    for a in range(workers):
        for b in range(a + 1, workers):
            pipes[a, b], pipes[b, a] = ctx.Pipe()
    controls = [ctx.Pipe() for _ in range(workers)]
    start = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(name, r, workers,
                                               [pipes.get((r, p)) for p in range(workers)],
                                               controls[r][1]))
             for r in range(workers)]
    for p in procs:
        p.start()
    rounds = 0
    while True:
        sizes = [c[0].recv() for c in controls]
        rounds += 1
        going = any(sizes)
        for c in controls:
            c[0].send(going)
        if not going:
            break
    counts = [c[0].recv() for c in controls]
    for p in procs:
        p.join()
    return {"workers": workers, "states": sum(s for s, _ in counts),
            "edges": sum(e for _, e in counts), "rounds": rounds,
            "per_worker": [s for s, _ in counts], "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="pkvm")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    profile = get(args.profile)
    config = profile.adjust(profile.default_config())
    start = time.perf_counter()
    base = explore(profile, config, symmetry=False, graph_checks=False)
    rows = [{"workers": "explorer", "states": len(base.states), "edges": base.edges,
             "rounds": base.depth + 1, "per_worker": [len(base.states)],
             "seconds": time.perf_counter() - start}]
    rows += [partitioned(args.profile, n) for n in args.workers]
    print(f"{args.profile}: {profile.config_text(config)} (symmetry off)")
    print(f"{'workers':>9} {'states':>9} {'edges':>10} {'rounds':>6} {'seconds':>8}  per worker")
    for r in rows:
        same = "" if (r["states"], r["edges"]) == (rows[0]["states"], rows[0]["edges"]) \
            else "  DIFFERS FROM THE EXPLORER"
        print(f"{r['workers']:>9} {r['states']:>9,} {r['edges']:>10,} {r['rounds']:>6} "
              f"{r['seconds']:>8.1f}  {r['per_worker']}{same}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
