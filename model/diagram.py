"""Pictures of the protocol: the state machine of one page, or the whole reachable graph.

The `page` view is the one a design review wants: explore a small machine, then project every
reachable state onto the views every entity has of page 0 — (host, hyp, ffa, vm0, vm1, ...) —
and every successful call onto its transition name. Calls that leave page 0's views unchanged
(self-loops of the projection) are left out. The `full` view draws the reachable graph itself,
one node per state; past `FULL_LIMIT` states no reader can follow it, so it is refused with a
pointer to the page view or a smaller machine.

With a mutant, the graph drawn is the mutant's; nodes holding a state that violates an `always`
property (states reachable only under the mutant: the model never violates one) are red, and
edges the model's protocol never takes are red and dashed.

Outputs: DOT text (graphviz), SVG and PNG by running graphviz's `dot` (Debian package
`graphviz`), and Mermaid flowchart text for Markdown reviews. Nothing here prints.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

import networkx as nx

from model.concrete import Concrete
from model.explorer import Exploration, explore
from model.properties import ALWAYS
from model.states import Config, Life, PageState, PteKind, State, describe_contents, views

FULL_LIMIT = 150  # states: past this a drawing of the whole graph is unreadable
ABBREV = {PageState.OWNED: "O", PageState.SHARED_OWNED: "SO", PageState.SHARED_BORROWED: "SB",
          PageState.NOPAGE: "-", PageState.POISON: "X"}


class DiagramError(Exception):
    """The diagram cannot be drawn as asked (too large, no graphviz): said in one line."""


@dataclass
class Diagram:
    """A drawable graph: nodes with labels, edges with labels, and which of them are red."""

    title: str
    nodes: dict = field(default_factory=dict)  # key -> label (multi-line text)
    edges: dict = field(default_factory=dict)  # (key, key) -> sorted list of edge labels
    initial: object = None
    red_nodes: dict = field(default_factory=dict)  # key -> violated property names
    red_edges: set = field(default_factory=set)
    note: str = ""


# -- labels --------------------------------------------------------------------------------------

def page_views(config: Config, state: State, pfn: int = 0) -> tuple:
    """(host, hyp, ffa, vm0, vm1, ...) views of one page, as PageState names."""
    return tuple(PageState(v).name for v in views(config, state, pfn).values())


def entities(config: Config) -> list[str]:
    return ["host", "hyp", "ffa"] + [f"vm{v}" for v in range(len(config.guests))]


def page_label(config: Config, key: tuple) -> str:
    """Who holds the page and how, one entity per line (entities with NOPAGE left out)."""
    lines = [f"{name} {view}" for name, view in zip(entities(config), key) if view != "NOPAGE"]
    return "\n".join(lines) or "nobody"


def state_label(config: Config, state: State) -> str:
    """A compact one-state label: per RAM page the views (O, SO, SB, -) of host/hyp/ffa/vms,
    non-default metadata; per VM its lifecycle when not running."""
    parts = []
    for p in range(config.ram):
        v = "/".join(ABBREV[PageState(x)] for x in views(config, state, p).values())
        extra = []
        if state.pins[p]:
            extra.append(f"pin{state.pins[p]}")
        if state.count[p]:
            extra.append(f"cnt{state.count[p]}")
        if state.pte_kind[p] == PteKind.VALID:
            extra.append("id")
        if state.contents[p]:
            extra.append(describe_contents(state.contents[p]))
        parts.append(f"p{p} {v}" + (" " + " ".join(extra) if extra else ""))
    for vm, life in enumerate(state.life):
        if life != Life.RUNNING:
            parts.append(f"vm{vm} {Life(life).name}")
    return "\n".join(parts)


# -- building ------------------------------------------------------------------------------------

def _violations(config: Config, state: State) -> list[str]:
    view = Concrete(config, state)
    return [p.name for p in ALWAYS if p.state and not p.state(view)]


def page_diagram(result: Exploration, model: Exploration | None = None, pfn: int = 0) -> Diagram:
    """Project an exploration onto the views of one page. `model`, when given, is the model's
    exploration of the same machine: edges it lacks are drawn red (result is a mutant's)."""
    config = result.config
    kinds = ", ".join(f"vm{v} {'protected' if p else 'non-protected'}"
                      for v, p in enumerate(config.guests))
    d = Diagram(title=f"the state machine of one page (pfn {pfn}; {kinds})")
    keys = [page_views(config, s, pfn) for s in result.states]
    for node, key in enumerate(keys):
        d.nodes.setdefault(key, page_label(config, key))
        if model is not None:
            bad = _violations(config, result.states[node])
            if bad:
                d.red_nodes.setdefault(key, set()).update(bad)
    d.initial = keys[0]
    names: dict = {}
    for u, v, calls in result.graph.edges(data="calls"):
        if keys[u] != keys[v]:
            names.setdefault((keys[u], keys[v]), set()).update(result.calls[c].name for c in calls)
    d.edges = {k: sorted(v) for k, v in names.items()}
    if model is not None:
        ok = page_diagram(model, None, pfn)
        d.red_edges = {(u, v, n) for (u, v), ns in d.edges.items() for n in ns
                       if n not in ok.edges.get((u, v), ())}
    d.note = "calls that leave the page's views unchanged are not drawn"
    return d


def full_diagram(result: Exploration, model: Exploration | None = None,
                 limit: int = FULL_LIMIT) -> Diagram:
    """Every state and every successful call; refused past `limit` states."""
    if len(result.states) > limit:
        raise DiagramError(
            f"the full graph has {len(result.states):,} states; past {limit} no reader can "
            "follow it: use --view page, a smaller machine (--pages 1 --guests 1 --gfns 1) "
            "or --max-depth")
    config = result.config
    d = Diagram(title="reachable graph")
    for node, state in enumerate(result.states):
        d.nodes[node] = state_label(config, state)
        if model is not None:
            bad = _violations(config, state)
            if bad:
                d.red_nodes[node] = set(bad)
    d.initial = 0
    model_edges = None
    if model is not None:
        model_states = {s: i for i, s in enumerate(model.states)}
        model_edges = set(model.graph.edges)
    for u, v, calls in result.graph.edges(data="calls"):
        labels = sorted({str(result.calls[c]) for c in calls})
        d.edges[(u, v)] = labels
        if model_edges is not None:
            mu = model_states.get(result.states[u])
            mv = model_states.get(result.states[v])
            if mu is None or mv is None or (mu, mv) not in model_edges:
                d.red_edges.update((u, v, n) for n in labels)
    return d


def build(config: Config, view: str = "page", transitions=None, model_config: Config | None = None,
          max_depth: int | None = None, limit: int = FULL_LIMIT) -> Diagram:
    """Explore (without symmetry: a diagram names pages and VMs) and draw one view.

    With `transitions` (a mutant's protocol), `model_config` is the machine the model is
    explored on for comparison (a mutant may change the configuration)."""
    cap = None if view == "page" else limit + 1
    model = explore(model_config or config, symmetry=False, max_depth=max_depth,
                    max_states=cap, graph_checks=False)
    result = model
    if transitions is not None:
        result = explore(config, transitions=transitions, symmetry=False, max_depth=max_depth,
                         max_states=cap, graph_checks=False)
    if view == "page":
        return page_diagram(result, model if transitions is not None else None)
    if view == "full":
        if len(result.states) > limit:
            raise DiagramError(
                f"the full graph has more than {limit} states; past {limit} no reader can "
                "follow it: use --view page, a smaller machine (--pages 1 --guests 1 --gfns 1) "
                "or --max-depth")
        return full_diagram(result, model if transitions is not None else None, limit)
    raise DiagramError(f"unknown view {view!r}")


# -- output --------------------------------------------------------------------------------------

def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _ids(d: Diagram) -> dict:
    return {key: f"n{i}" for i, key in enumerate(d.nodes)}


def dot(d: Diagram) -> str:
    """Graphviz DOT text."""
    ids = _ids(d)
    out = ["digraph pkvm {",
           "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, labelloc=t, "
           f"label={_q(d.title + (chr(10) + d.note if d.note else ''))}];",
           "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", "
           "fontname=\"Helvetica\", fontsize=11];",
           "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];"]
    for key, label in d.nodes.items():
        attrs = [f"label={_q(label)}"]
        if key in d.red_nodes:
            bad = ", ".join(sorted(d.red_nodes[key]))
            attrs = [f"label={_q(label + chr(10) + 'violates: ' + bad)}", "color=\"#c00000\"",
                     "fillcolor=\"#ffd6d6\"", "fontcolor=\"#8b0000\"", "penwidth=2"]
        if key == d.initial:
            attrs.append("peripheries=2")
        out.append(f"  {ids[key]} [{', '.join(attrs)}];")
    for (u, v), labels in d.edges.items():
        good = [n for n in labels if (u, v, n) not in d.red_edges]
        bad = [n for n in labels if (u, v, n) in d.red_edges]
        if good:
            out.append(f"  {ids[u]} -> {ids[v]} [label={_q(chr(10).join(good))}];")
        if bad:
            out.append(f"  {ids[u]} -> {ids[v]} [label={_q(chr(10).join(bad))}, "
                       "color=\"#c00000\", fontcolor=\"#c00000\", style=dashed];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_dot(graph: nx.DiGraph, label: str, edge_label: str) -> str:
    """DOT text of a labelled networkx graph (for --save-graph)."""
    d = Diagram(title="reachable graph")
    for node, data in graph.nodes(data=True):
        d.nodes[node] = str(data.get(label, node))
    d.initial = 0 if 0 in d.nodes else None
    for u, v, data in graph.edges(data=True):
        d.edges[(u, v)] = str(data.get(edge_label, "")).split("; ")
    return dot(d)


def mermaid(d: Diagram) -> str:
    """Mermaid flowchart text, for Markdown reviews."""
    ids = _ids(d)

    def text(s: str) -> str:
        return s.replace('"', "'").replace("\n", "<br/>")

    out = ["flowchart LR"]
    for key, label in d.nodes.items():
        if key in d.red_nodes:
            label += "\nviolates: " + ", ".join(sorted(d.red_nodes[key]))
        shape = ('(("', '"))') if key == d.initial else ('["', '"]')
        out.append(f"  {ids[key]}{shape[0]}{text(label)}{shape[1]}")
    link = 0
    red_links = []
    for (u, v), labels in d.edges.items():
        good = [n for n in labels if (u, v, n) not in d.red_edges]
        bad = [n for n in labels if (u, v, n) in d.red_edges]
        for group, red in ((good, False), (bad, True)):
            if group:
                arrow = "-.->" if red else "-->"
                out.append(f"  {ids[u]} {arrow}|\"{text(chr(10).join(group))}\"| {ids[v]}")
                if red:
                    red_links.append(link)
                link += 1
    if d.red_nodes:
        out.append("  classDef bad fill:#ffd6d6,stroke:#c00000,color:#8b0000")
        out.append("  class " + ",".join(ids[k] for k in d.red_nodes) + " bad")
    if red_links:
        out.append(f"  linkStyle {','.join(map(str, red_links))} stroke:#c00000,color:#c00000")
    if d.note:
        out.insert(0, f"%% {d.title}: {d.note}")
    return "\n".join(out) + "\n"


def render(dot_text: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT text, by graphviz's `dot`."""
    exe = shutil.which("dot")
    if exe is None:
        raise DiagramError("graphviz's `dot` is not installed (Debian: apt-get install graphviz)")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=300)
    if proc.returncode != 0:
        raise DiagramError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def output(d: Diagram, fmt: str) -> bytes:
    """The diagram in one of: dot, svg, png, mermaid."""
    if fmt == "dot":
        return dot(d).encode()
    if fmt == "mermaid":
        return mermaid(d).encode()
    if fmt in ("svg", "png"):
        return render(dot(d), fmt)
    raise DiagramError(f"unknown format {fmt!r}")
