"""Counterexample traces and exploration summaries: as plain data, and rendered with rich.

Two layers, kept apart: `trace_data` and `exploration_data` turn a profile's values (states,
calls, violations) into plain JSON-able data through the profile's presenter (each state a set
of named objects, each object a set of cells); `render_trace` and `render_summary` turn that
plain data into rich renderables. Nothing here prints: the command decides where they go.
"""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from model.explorer import Exploration, Violation, unreduced_counts
from model.transitions import errno_name

_CHANGED = "bold black on yellow"
# The version of the trace JSON (docs/explorer.md): each step's call, name, args, errno,
# result, the whole state as objects with cells, and which cells changed.
TRACE_FORMAT = 1
CHANGED_MARK = "*"  # after a value the step changed, besides the colour


# -- plain data ---------------------------------------------------------------------------------

def changes(before: dict, after: dict) -> list[str]:
    """`object.cell` of every cell that differs between two snapshots."""
    return [f"{name}.{key}" for name, cells in after.items() for key, value in cells.items()
            if before.get(name, {}).get(key) != value]


def trace_data(profile, config, trace: list, violation: Violation | None = None) -> dict:
    """A trace as plain data: the initial state, then per step the call, the result, the state
    after it (the objects the presenter deems involved) and which cells changed."""
    presenter = profile.presenter
    focus = presenter.involved(config, trace)
    initial = presenter.snapshot(config, trace[0].pre, focus) if trace else None
    steps = []
    before = initial
    for i, st in enumerate(trace, 1):
        after = presenter.snapshot(config, st.post, focus)
        steps.append({"step": i, "call": str(st.call), "name": st.call.name,
                      "args": dict(zip(st.call.params, st.call.args)), "errno": st.errno,
                      "result": errno_name(st.errno, "raised"), "state": after,
                      "changed": changes(before, after)})
        before = after
    data = {"initial": initial, "steps": steps}
    if violation is not None:
        data = {"property": violation.property, "doc": violation.doc, "kind": violation.kind,
                "where": violation.where, "clause": violation.clause,
                "length": violation.length, **data}
    return data


def exploration_data(result: Exploration, unreduced: bool = False) -> dict:
    """The JSON of `pkvm-model explore --json`: the summary, each violation with its trace;
    with `unreduced`, the size of the unreduced graph (summed over the orbits: only on request,
    as it costs a large share of a reduced run)."""
    data = result.summary(traces=lambda v: trace_data(result.profile, result.config,
                                                      v.trace)["steps"])
    data["trace_format"] = TRACE_FORMAT
    data["profile"] = result.profile.name
    data["extensions"] = list(result.profile.extensions)
    if unreduced and result.symmetry.get("enabled"):
        data["symmetry"]["unreduced"] = unreduced_counts(result)
    return data


# -- rich ---------------------------------------------------------------------------------------

def _cell(cells: dict, prefix: str, changed: set) -> Text:
    """One line per cell, `key value`, changed values highlighted (a list: one line per item)."""
    text = Text()
    for i, (key, value) in enumerate(cells.items()):
        if i:
            text.append("\n")
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if isinstance(value, list):
            value = "\n  ".join(value) or "-"
        text.append(f"{key.replace('_', '-')} ", style="dim")
        if f"{prefix}.{key}" in changed:  # marked in plain text too: a CI log has no colour
            text.append(f"{value}{CHANGED_MARK}", style=_CHANGED)
        else:
            text.append(str(value))
    return text


def render_trace(data: dict, title: str | None = None):
    """One row per step: the call and its result, then every object of the state (for pKVM:
    every involved page with every entity's view and its metadata, every VM), changed cells
    highlighted."""
    table = Table(title=title, show_lines=True, expand=False,
                  caption=f"{CHANGED_MARK} the step changed this value")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("call", overflow="fold")
    table.add_column("result", no_wrap=True)
    names = list(data["initial"]) if data["initial"] else []
    for name in names:
        table.add_column(name, overflow="fold")

    def row(index, call, result, snapshot, changed):
        table.add_row(str(index), call, result,
                      *[_cell(snapshot[name], name, changed) for name in names])

    if data["initial"]:
        row(0, Text("initial state", style="dim"), Text(""), data["initial"], set())
    for st in data["steps"]:
        result = Text(st["result"], style="green" if st["errno"] == 0 else "bold red")
        row(st["step"], Text(st["call"]), result, st["state"], set(st["changed"]))
    parts = [table]
    if "property" in data:
        parts.append(_violated(data["property"], data["doc"], data.get("where"),
                               data.get("clause")))
    return Group(*parts)


def _violated(prop: str, doc: str, where: str | None, clause: str | None, note: str = "") -> Panel:
    """The red box under a trace: the property, where it breaks, and which clause."""
    at = f" (at {where})" if where else ""
    text = Text.assemble(("violated: ", "bold red"), (prop, "bold"), at, f" — {doc}",
                         (note, "dim"))
    if clause:
        text.append(f"\nclause: {clause}")
    return Panel(text, border_style="red", expand=False)


def witnessed(sometimes: dict, complete: bool) -> str:
    """How many `sometimes` properties a search witnessed, and which it did not (never, or not
    yet when it stopped early)."""
    missing = [name for name, seen in sometimes.items() if not seen]
    never = "never" if complete else "not yet (search incomplete)"
    return f"{len(sometimes) - len(missing)}/{len(sometimes)} witnessed" + (
        f"; [red]{never}: {', '.join(missing)}[/red]" if missing else "")


def render_summary(data: dict, label: str = "exploration"):
    """The numbers of an exploration: counts, speed, symmetry, sometimes, graph properties."""
    table = Table(title=Text(label), show_header=False, expand=False)
    table.add_column("what", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    stopped = {"violation": "stopped after the first violation's layer",
               "max_depth": "bounded by --max-depth", "max_states": "bounded by --max-states",
               "interrupted": "interrupted", "time limit": "stopped by --max-seconds"}
    complete = "complete" if data["complete"] else \
        f"[yellow]incomplete: {stopped.get(data.get('stopped'), 'bounded')}[/yellow]"
    table.add_row("states", f"{data['states']:,}")
    table.add_row("edges", f"{data['edges']:,} successful calls ({data['tried']:,} tried)")
    table.add_row("depth", f"{data['depth']} ({complete})")
    rate = data["states_per_second"]
    table.add_row("time", f"{data['seconds']:.2f} s" + (f", {rate:,} states/s" if rate else ""))
    sym = data["symmetry"]
    if sym.get("enabled"):
        kinds = [k for k, on in sym.items() if on is True and k != "enabled"] or ["none applies"]
        text = f"{', '.join(kinds)} (group of {sym['group_order']})"
        if sym.get("unreduced", {}).get("states") is not None:
            text += f"; unreduced {sym['unreduced']['states']:,} states, " \
                    f"{sym['unreduced']['edges']:,} edges"
        table.add_row("symmetry", text)
    elif sym.get("refused"):
        table.add_row("symmetry", f"[yellow]refused: {sym['refused']}[/yellow]")
    else:
        table.add_row("symmetry", "off")
    table.add_row("sometimes", witnessed(data["sometimes"], data["complete"]))
    graph = dict(data["graph"])
    if graph.pop("checked", False):
        for name, bad in graph.items():
            table.add_row(name.removeprefix("graph_").replace("_", " "),
                          "[green]holds[/green]" if not bad else f"[red]{bad:,} states break it[/red]")
    else:
        table.add_row("graph properties", "not checked (exploration incomplete)")
    if data["violations"]:
        names = ", ".join(f"{v['property']} ({v['length']} steps)" for v in data["violations"])
        table.add_row("violations", f"[bold red]{names}[/bold red]")
    else:
        table.add_row("violations", "[green]none[/green]")
    return table


def render_violations(result: Exploration, limit: int | None = None) -> list:
    """A rendered trace per violation (the first `limit` of them)."""
    out = []
    shown: dict[tuple, str] = {}
    for v in result.violations[:limit]:
        key = tuple((s.call, s.errno) for s in v.trace)
        if key in shown:  # the same run breaks several properties: name them, draw it once
            out.append(_violated(v.property, v.doc, v.where, v.clause,
                                 f" (same trace as {shown[key]})"))
            continue
        shown[key] = v.property
        out.append(render_trace(trace_data(result.profile, result.config, v.trace, v),
                                title=f"{v.property}: shortest trace, {v.length} steps"))
    return out
