"""Pictures of a protocol: a projected state machine (for pKVM, of one page), or the whole
reachable graph.

A projected view is the one a design review wants: explore a small machine, then project every
reachable state onto the profile presenter's key for that view (for pKVM's `page` view: the
views every entity has of page 0 — host, hyp, ffa, vm0, vm1, ...) and every successful call onto
its transition name. Calls that leave the key unchanged (self-loops of the projection) are left
out. The `full` view draws the reachable graph itself, one node per state; past `FULL_LIMIT`
states no reader can follow it, so it is refused with a pointer to a projected view or a
smaller machine.

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

from model.explorer import Exploration, explore

FULL_LIMIT = 150  # states: past this a drawing of the whole graph is unreadable


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
    new_nodes: set = field(default_factory=set)  # a proposal's: only the changed protocol has them
    new_edges: set = field(default_factory=set)  # (key, key, label)
    gone_nodes: set = field(default_factory=set)  # only the unchanged protocol has them
    gone_edges: set = field(default_factory=set)
    note: str = ""


# -- building ------------------------------------------------------------------------------------

def _violations(result: Exploration, state) -> list[str]:
    view = result.profile.view(result.config, state)
    return [p.name for p in result.profile.always if p.state and not p.state(view)]


def projected_diagram(result: Exploration, view: str, model: Exploration | None = None) -> Diagram:
    """Project an exploration onto the presenter's key of one view. `model`, when given, is the
    unchanged profile's exploration of the same machine: edges it lacks are drawn red (result is
    a mutant's or an extension's)."""
    config, presenter = result.config, result.profile.presenter
    d = Diagram(title=presenter.view_title(view, config))
    keys = [presenter.view_key(view, config, s) for s in result.states]
    for node, key in enumerate(keys):
        d.nodes.setdefault(key, presenter.view_label(view, config, key))
        if model is not None:
            bad = _violations(result, result.states[node])
            if bad:
                d.red_nodes.setdefault(key, set()).update(bad)
    d.initial = keys[0]
    names: dict = {}
    for u, v, calls in result.graph.edges(data="calls"):
        if keys[u] != keys[v]:
            names.setdefault((keys[u], keys[v]), set()).update(result.calls[c].name for c in calls)
    d.edges = {k: sorted(v) for k, v in names.items()}
    if model is not None:
        ok = projected_diagram(model, view)
        d.red_edges = {(u, v, n) for (u, v), ns in d.edges.items() for n in ns
                       if n not in ok.edges.get((u, v), ())}
    d.note = "calls that leave the projection unchanged are not drawn"
    return d


def view_diff(base: Exploration, changed: Exploration, view: str) -> Diagram:
    """The projection of both explorations of one machine on one view: what a proposed change
    adds (green) and takes away (grey, dashed)."""
    before, after = projected_diagram(base, view), projected_diagram(changed, view)
    d = projected_diagram(changed, view, base)
    d.title = f"{after.title}: what the change adds (green) and removes (grey, dashed)"
    d.red_edges = set()
    d.new_nodes = set(after.nodes) - set(before.nodes)
    d.gone_nodes = set(before.nodes) - set(after.nodes)
    old = {(u, v, n) for (u, v), ns in before.edges.items() for n in ns}
    new = {(u, v, n) for (u, v), ns in after.edges.items() for n in ns}
    d.new_edges, d.gone_edges = new - old, old - new
    for key in d.gone_nodes:
        d.nodes[key] = before.nodes[key]
    for u, v, n in d.gone_edges:
        d.edges.setdefault((u, v), [])
        d.edges[(u, v)] = sorted({*d.edges[(u, v)], n})
    return d


def full_diagram(result: Exploration, model: Exploration | None = None,
                 limit: int = FULL_LIMIT) -> Diagram:
    """Every state and every successful call; refused past `limit` states."""
    if len(result.states) > limit:
        raise DiagramError(_too_large(result.profile, f"{len(result.states):,}", limit))
    config = result.config
    d = Diagram(title="reachable graph")
    for node, state in enumerate(result.states):
        d.nodes[node] = result.profile.presenter.state_label(config, state)
        if model is not None:
            bad = _violations(result, state)
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


def _too_large(profile, states: str, limit: int) -> str:
    views = ", ".join(f"--view {v}" for v in profile.presenter.view_names) or "a smaller machine"
    return (f"the full graph has {states} states; past {limit} no reader can follow it: use "
            f"{views}, a smaller machine or --max-depth")


def build(profile, config, view: str, model=None, model_config=None,
          max_depth: int | None = None, limit: int = FULL_LIMIT) -> Diagram:
    """Explore (without symmetry: a diagram names pages and VMs) and draw one view.

    With `model` (the profile before a mutant or an extension changed it), `model_config` is
    the machine the model is explored on for comparison (a mutant may change the machine)."""
    if view != "full" and view not in profile.presenter.view_names:
        raise DiagramError(f"unknown view {view!r}; one of: "
                           f"{', '.join((*profile.presenter.view_names, 'full'))}")
    cap = None if view != "full" else limit + 1
    result = explore(profile, config, symmetry=False, max_depth=max_depth, max_states=cap,
                     graph_checks=False)
    base = None
    if model is not None:
        base = explore(model, model_config or config, symmetry=False, max_depth=max_depth,
                       max_states=cap, graph_checks=False)
    if view == "full":
        if len(result.states) > limit:
            raise DiagramError(_too_large(profile, f"more than {limit}", limit))
        return full_diagram(result, base, limit)
    return projected_diagram(result, view, base)


# -- output --------------------------------------------------------------------------------------

def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _ids(d: Diagram) -> dict:
    return {key: f"n{i}" for i, key in enumerate(d.nodes)}


def dot(d: Diagram) -> str:
    """Graphviz DOT text."""
    ids = _ids(d)
    out = ["digraph protocol {",
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
        if key in d.new_nodes:
            attrs += ["color=\"#1a7f37\"", "penwidth=2"] + (
                [] if key in d.red_nodes else ["fillcolor=\"#d8f5dd\""])
        if key in d.gone_nodes:
            attrs += ["color=\"#888888\"", "fillcolor=\"#f2f2f2\"", "fontcolor=\"#888888\"",
                      "style=\"rounded,filled,dashed\""]
        if key == d.initial:
            attrs.append("peripheries=2")
        out.append(f"  {ids[key]} [{', '.join(attrs)}];")
    styles = (("", ""), ("red", ', color="#c00000", fontcolor="#c00000", style=dashed'),
              ("new", ', color="#1a7f37", fontcolor="#1a7f37", penwidth=2'),
              ("gone", ', color="#888888", fontcolor="#888888", style=dashed'))
    for (u, v), labels in d.edges.items():
        groups = {"": [], "red": [], "new": [], "gone": []}
        for n in labels:
            kind = ("red" if (u, v, n) in d.red_edges else "new" if (u, v, n) in d.new_edges
                    else "gone" if (u, v, n) in d.gone_edges else "")
            groups[kind].append(n)
        for kind, style in styles:
            if groups[kind]:
                out.append(f"  {ids[u]} -> {ids[v]} [label={_q(chr(10).join(groups[kind]))}{style}];")
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
