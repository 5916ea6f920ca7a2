"""Counterexample traces and exploration summaries: as plain data, and rendered with rich.

Two layers, kept apart: `trace_data` and `exploration_data` turn model values (states, calls,
violations) into plain JSON-able data in the kernel's vocabulary; `render_trace` and
`render_summary` turn that plain data into rich renderables. Nothing here prints: the command
decides where the renderables go.
"""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from model.explorer import Exploration, TraceStep, Violation, errno_name, unreduced_counts
from model.states import (
    POISON, Config, Life, PageState, State, describe_contents, describe_pte, views,
)
from model.transitions import TRANSITIONS

PROT_NAMES = ((4, "r"), (2, "w"), (1, "x"))


# -- plain data ---------------------------------------------------------------------------------

def _prot(prot: int) -> str:
    return "".join(ch if prot & bit else "-" for bit, ch in PROT_NAMES)


def page_snapshot(config: Config, state: State, pfn: int) -> dict:
    """Every entity's view of one page, and the metadata the kernel keeps for it."""
    out = {name: PageState(v).name for name, v in views(config, state, pfn).items()}
    out.update({
        "pte": describe_pte(state, pfn),
        "pins": int(state.pins[pfn]),
        "count": int(state.count[pfn]),
        "hyp_mapped": bool(state.hyp_mapped[pfn]),
        "contents": describe_contents(state.contents[pfn]),
    })
    return out


def vm_snapshot(config: Config, state: State, vm: int) -> dict:
    leaves = []
    for leaf in state.s2[vm]:
        if leaf.state == POISON:
            leaves.append(f"gfn{leaf.gfn}: POISON")
        else:
            span = "" if leaf.span == 1 else f"+{leaf.span}"
            leaves.append(f"gfn{leaf.gfn}{span} -> pfn{leaf.pfn} "
                          f"{PageState(leaf.state).name} {_prot(leaf.prot)}"
                          + ("" if leaf.size == 1 else f" (leaf of {leaf.size})"))
    return {"kind": "protected" if config.guests[vm] else "non-protected",
            "life": Life(state.life[vm]).name, "s2": leaves}


def _call_args(call) -> dict:
    params = TRANSITIONS[call.name].params if call.name in TRANSITIONS else ()
    return {p: a for p, a in zip(params, call.args)}


def _involved(config: Config, trace: list) -> list[int]:
    """The stored pages a trace touches: named by a call, changed by a step, or mapped by a VM."""
    pages: set[int] = set()
    for st in trace:
        args = _call_args(st.call)
        if "pfn" in args:
            pages.update(range(args["pfn"], args["pfn"] + args.get("nr", 1)))
        for state in (st.pre, st.post):
            for leaves in state.s2:
                pages.update(leaf.pfn for leaf in leaves if leaf.state != POISON)
        for p in range(config.pages):
            if any(getattr(st.pre, f)[p] != getattr(st.post, f)[p] for f in State._fields[:12]):
                pages.add(p)
    pages = {p for p in pages if 0 <= p < config.pages}
    return sorted(pages) or list(range(config.ram))


def _snapshot(config: Config, state: State, pages: list[int]) -> dict:
    return {"pages": {str(p): page_snapshot(config, state, p) for p in pages},
            "vms": {f"vm{v}": vm_snapshot(config, state, v) for v in range(len(config.guests))}}


def _changes(before: dict, after: dict) -> list[str]:
    out = []
    for p, cells in after["pages"].items():
        out += [f"pfn{p}.{k}" for k, v in cells.items() if before["pages"][p][k] != v]
    for vm, cells in after["vms"].items():
        out += [f"{vm}.{k}" for k, v in cells.items() if before["vms"][vm][k] != v]
    return out


def trace_data(config: Config, trace: list, violation: Violation | None = None) -> dict:
    """A trace as plain data: the initial state, then per step the call, the result, the state
    after it (pages involved, every VM) and which cells changed."""
    pages = _involved(config, trace)
    initial = _snapshot(config, trace[0].pre, pages) if trace else None
    steps = []
    before = initial
    for i, st in enumerate(trace, 1):
        after = _snapshot(config, st.post, pages)
        steps.append({"step": i, "call": str(st.call), "name": st.call.name,
                      "args": _call_args(st.call), "errno": st.errno,
                      "result": errno_name(st.errno), "state": after,
                      "changed": _changes(before, after)})
        before = after
    data = {"pages": pages, "initial": initial, "steps": steps}
    if violation is not None:
        data = {"property": violation.property, "doc": violation.doc, "kind": violation.kind,
                "length": violation.length, **data}
    return data


def exploration_data(result: Exploration, unreduced: bool = True) -> dict:
    """The JSON of `pkvm-model explore --json`: the summary, each violation with its trace."""
    data = result.summary(traces=lambda v: trace_data(result.config, v.trace)["steps"])
    if unreduced and result.symmetry.get("enabled"):
        data["symmetry"]["unreduced"] = unreduced_counts(result)
    return data


# -- rich ---------------------------------------------------------------------------------------

_META_LINES = (("pte",), ("pins", "count", "hyp_mapped"), ("contents",))
_CHANGED = "bold black on yellow"


def _cell(cells: dict, prefix: str, changed: set, lines) -> Text:
    """One line per group of keys, `key value` pairs, changed values highlighted."""
    text = Text()
    for i, keys in enumerate(lines):
        if i:
            text.append("\n")
        for j, key in enumerate(keys):
            if j:
                text.append("  ")
            value = cells[key]
            if isinstance(value, bool):
                value = "yes" if value else "no"
            text.append(f"{key.replace('_', '-')} ", style="dim")
            text.append(str(value), style=_CHANGED if f"{prefix}.{key}" in changed else "")
    return text


def render_trace(data: dict, title: str | None = None):
    """One row per step: the call and its result, then every involved page (every entity's
    view, host stage-2 entry, pins, count, contents) and every VM, changed cells highlighted."""
    table = Table(title=title, show_lines=True, expand=False)
    table.add_column("#", justify="right")
    table.add_column("call")
    table.add_column("result")
    for p in data["pages"]:
        table.add_column(f"pfn {p}")
    table.add_column("VMs")
    vm_names = list(data["initial"]["vms"]) if data["initial"] else []

    def row(index, call, result, snapshot, changed):
        cells = []
        for p in data["pages"]:
            page = snapshot["pages"][str(p)]
            lines = [(k,) for k in ("host", "hyp", "ffa")]
            lines += [(k,) for k in page if k.startswith("vm")] + list(_META_LINES)
            cells.append(_cell(page, f"pfn{p}", changed, lines))
        vms = Text()
        for i, vm in enumerate(vm_names):
            if i:
                vms.append("\n")
            info = snapshot["vms"][vm]
            vms.append(f"{vm} ({info['kind']}) ", style="dim")
            vms.append(info["life"], style=_CHANGED if f"{vm}.life" in changed else "")
            s2 = "\n  ".join(info["s2"]) or "stage-2 empty"
            vms.append("\n  " + s2, style=_CHANGED if f"{vm}.s2" in changed else "")
        table.add_row(str(index), call, result, *cells, vms)

    if data["initial"]:
        row(0, Text("initial state", style="dim"), Text(""), data["initial"], set())
    for st in data["steps"]:
        result = Text(st["result"], style="green" if st["errno"] == 0 else "bold red")
        row(st["step"], Text(st["call"]), result, st["state"], set(st["changed"]))
    parts = [table]
    if "property" in data:
        parts.append(Panel(Text.assemble(("violated: ", "bold red"), (data["property"], "bold"),
                                         f" — {data['doc']}"),
                           border_style="red", expand=False))
    return Group(*parts)


def render_summary(data: dict, label: str = "exploration"):
    """The numbers of an exploration: counts, speed, symmetry, sometimes, graph properties."""
    table = Table(title=Text(label), show_header=False, expand=False)
    table.add_column("what", style="dim")
    table.add_column("value")
    stopped = {"violation": "stopped after the first violation's layer",
               "max_depth": "bounded by --max-depth", "max_states": "bounded by --max-states"}
    complete = "complete" if data["complete"] else \
        f"[yellow]incomplete: {stopped.get(data.get('stopped'), 'bounded')}[/yellow]"
    table.add_row("states", f"{data['states']:,}")
    table.add_row("edges", f"{data['edges']:,} successful calls ({data['tried']:,} tried)")
    table.add_row("depth", f"{data['depth']} ({complete})")
    rate = data["states_per_second"]
    table.add_row("time", f"{data['seconds']:.2f} s" + (f", {rate:,} states/s" if rate else ""))
    sym = data["symmetry"]
    if sym.get("enabled"):
        kinds = [k for k in ("pages", "guests", "gfns") if sym.get(k)] or ["none applies"]
        text = f"{', '.join(kinds)} (group of {sym['group_order']})"
        if sym.get("unreduced", {}).get("states") is not None:
            text += f"; unreduced {sym['unreduced']['states']:,} states, " \
                    f"{sym['unreduced']['edges']:,} edges"
        table.add_row("symmetry", text)
    elif sym.get("refused"):
        table.add_row("symmetry", f"[yellow]refused: {sym['refused']}[/yellow]")
    else:
        table.add_row("symmetry", "off")
    missing = [k for k, v in data["sometimes"].items() if not v]
    never = "never" if data["complete"] else "not yet (search incomplete)"
    table.add_row("sometimes", f"{len(data['sometimes']) - len(missing)}/{len(data['sometimes'])}"
                  " witnessed" + (f"; [red]{never}: {', '.join(missing)}[/red]" if missing else ""))
    graph = data["graph"]
    if graph.get("checked"):
        stranded = "[green]yes[/green]" if graph["nothing_stranded"] else \
            f"[red]no: {graph['stranded_states']:,} states strand a page[/red]"
        table.add_row("nothing stranded", stranded)
        dead = graph["dead_ends"]
        table.add_row("dead ends", "[green]none[/green]" if not dead else f"[red]{dead:,}[/red]")
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
            out.append(Panel(Text.assemble(("violated: ", "bold red"), (v.property, "bold"),
                                           f" — {v.doc}",
                                           (f" (same trace as {shown[key]})", "dim")),
                             border_style="red", expand=False))
            continue
        shown[key] = v.property
        out.append(render_trace(trace_data(result.config, v.trace, v),
                                title=f"{v.property}: shortest trace, {v.length} steps"))
    return out


__all__ = ["TraceStep", "exploration_data", "page_snapshot", "render_summary", "render_trace",
           "render_violations", "trace_data"]
