"""Proof results as plain data and as rich renderables (a property x transition table, and
counterexamples with the changed cells marked: in red and with a `*`, which a CI log keeps).
Nothing here prints."""

from __future__ import annotations

import re

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from model.prover import INIT, Result
from model.transitions import errno_name

STYLE = {"proved": "green", "violated": "bold red", "unknown": "yellow"}
MARK = {"proved": "✓", "violated": "✗", "unknown": "?"}


def report_data(results: list[Result], transitions: list[str], properties: list[str],
                seconds: float, mutant: str | None = None, reach=(), profile: str = "pkvm",
                extensions: tuple = ()) -> dict:
    """The machine-readable report of `pkvm-model prove --json`."""
    statuses = {r.status for r in results}
    if any(not r.holds for _, r in reach):
        statuses.add("violated")  # vacuous (a reachable thing is not), or a hazard is reachable
    result = "violated" if "violated" in statuses else "unknown" if "unknown" in statuses else "proved"
    return {
        "result": result,
        "profile": profile,
        "extensions": list(extensions),
        "mutant": mutant,
        "seconds": round(seconds, 3),
        "transitions": transitions,
        "properties": properties,
        "obligations": [{"property": r.property, "transition": r.transition, "status": r.status,
                         "seconds": round(r.seconds, 3), "counterexample": r.counterexample,
                         "via": list(r.via)}
                        for r in results],
        "bmc": [{"property": r.property, "machine": machine, "depth": r.depth,
                 "witnessed": r.witnessed, "seconds": round(r.seconds, 3), "path": r.path,
                 "expected": "reachable" if r.expected else "unreachable", "holds": r.holds}
                for machine, r in reach],
    }


def render_bmc(rows: list[dict]) -> Table:
    """What bounded model checking found reachable, and by which path."""
    table = Table(title="bounded model checking (what induction cannot show)")
    for col in ("property", "machine", "depth", "expected", "reached", "path"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["property"], r["machine"], str(r["depth"]), r["expected"],
                      Text("yes" if r["witnessed"] else "no",
                           style="green" if r["holds"] else "bold red"),
                      "\n".join(r["path"]))
    return table


def render_table(data: dict, wide: bool = False) -> Table:
    """One row per transition (and the initial state), one column per property. `wide` (a log,
    a file: no width to fit) puts each property's name on one line; on a terminal the names
    break at their underscores. Nothing is ever cut: a cell too narrow folds."""
    cell = {(o["transition"], o["property"]): o for o in data["obligations"]}
    table = Table(title=f"proof obligations ({data['result']}, {data['seconds']:.1f} s)",
                  show_lines=False)
    table.add_column("transition", style="bold", overflow="fold")
    for p in data["properties"]:
        table.add_column(p if wide else p.replace("_", "\n"), justify="center",
                         overflow="fold")
    not_run = set(data.get("not_run", ()))
    for t in [INIT] + data["transitions"]:
        row = []
        for p in data["properties"]:
            o = cell.get((t, p))
            if o is None and f"{p}/{t}" in not_run:
                row.append(Text("-", style="yellow"))
            elif o is None:
                row.append(Text("·", style="dim"))
            else:
                via = "*" if o["via"] and o["status"] == "proved" else ""
                row.append(Text(f"{MARK[o['status']]} {o['seconds']:.2f}{via}",
                                style=STYLE[o["status"]]))
        table.add_row(t, *row)
    callees = sorted({c for o in data["obligations"] if o["status"] == "proved" for c in o["via"]})
    notes = []
    if callees:
        notes.append(f"* proved through the same obligation of {', '.join(callees)} "
                     "(a nested call)")
    if not_run:
        notes.append(f"- not run ({data.get('stopped', 'stopped')})")
    if notes:
        table.caption = "\n".join(notes)
    return table


def render_counterexample(o: dict, doc: str) -> Panel:
    """Pre- and post-state of the objects involved, changed cells in red and marked `*`. A
    concrete counterexample shows only what matters: the objects the call changed and those
    their cells name, and in them only the cells not as the machine starts (--json has all)."""
    cex = o["counterexample"]
    machine = cex["machine"]
    if isinstance(machine, dict):
        machine = ", ".join(f"{k} {v}" for k, v in machine.items())
    parts = [Text(f"{cex['call']} -> {errno_name(cex.get('errno'), '')}", style="bold"),
             Text(f"machine: {machine}", style="dim")]
    if cex.get("reachable"):
        parts.append(Text("reachable: the shortest run from the initial state is "
                          + "; ".join(cex.get("trace", [])), style="dim"))
    else:
        parts.append(Text("the pre-state satisfies every invariant but need not be reachable "
                          "(an induction step that fails: the protocol itself may still hold)",
                          style="dim"))
    shown, hidden = _relevant(cex)
    for key in shown:
        cells = cex["cells"][key]
        table = Table(title=key, title_justify="left", show_header=True)
        table.add_column("")
        fields = [f for f in dict.fromkeys([*cells["pre"], *cells["post"]])
                  if f in cells["changed"] or not _as_initial(cex, key, f)]
        for f in fields:
            table.add_column(f, overflow="fold")
        for label in ("pre", "post"):
            values = []
            for f in fields:
                value = cells[label].get(f, "")
                value = "\n".join(value) if isinstance(value, list) else str(value)
                changed = f in cells["changed"] and label == "post"
                values.append(Text(value + ("*" if changed else ""),
                                   style="bold red" if changed else ""))
            table.add_row(label, *values)
        parts.append(table)
    notes = ["* changed by the call"]
    if "initial" in cex:
        notes.append("cells as in the initial state are left out")
    if hidden:
        notes.append(f"not involved, left out: {', '.join(hidden)}")
    parts.append(Text("; ".join(notes), style="dim"))
    at = f" at {cex['where']}" if cex.get("where") else ""
    parts.append(Text(f"violates {o['property']}{at}: {doc}", style="bold red"))
    if cex.get("clause"):
        parts.append(Text(f"clause: {cex['clause']}", style="red"))
    return Panel(Group(*parts), title=f"counterexample: {o['property']} / {o['transition']}")


def _as_initial(cex: dict, key: str, field: str) -> bool:
    """The cell is the same before and after the call as in the machine's initial state."""
    start = cex.get("initial", {}).get(key)
    if start is None or field not in start:
        return False
    cells = cex["cells"][key]
    return cells["pre"].get(field) == cells["post"].get(field) == start[field]


def _relevant(cex: dict) -> tuple[list, list]:
    """(objects to show, objects left out). Without the initial state to compare with, all are
    shown; else the objects the call changed, the objects their shown cells name (by a cell's
    name or value), and so on."""
    names = list(cex.get("cells", {}))
    if "initial" not in cex:
        return names, []
    keep = [n for n in names if cex["cells"][n]["changed"]] or names[:1]
    i = 0
    while i < len(keep):
        cells = cex["cells"][keep[i]]
        text = " ".join(f"{f} {v}" for label in ("pre", "post") for f, v in cells[label].items()
                        if not _as_initial(cex, keep[i], f))
        words = set(re.findall(r"[A-Za-z_]+[0-9]+", text))
        keep += [n for n in names if n in words and n not in keep]
        i += 1
    return [n for n in names if n in keep], [n for n in names if n not in keep]
