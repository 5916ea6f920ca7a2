"""The Promela backend: the traced calls of one configuration as a model SPIN checks.

One global per place a cell can have (`c0`, `c1`, ...: the header names each one by its path
in the state, e.g. `s2_1_0_gfn`, the gfn of VM 1's first stage-2 leaf), so that a cell is
the same variable in every shape that has it (`shape` too when a variable-length field gives
more than one); a variable the current shape lacks is 0. Each is as narrow as the values it
takes in the reachable states. One process loops over one `atomic` block per call (a `d_step`
may be too long for SPIN), guarded by "the call succeeds" (a failing call changes nothing the
explorer follows), whose body is the call's decision tree with its writes as assignments,
written once for all the shapes on which it reads the same (the trees `share.py` shares). The
`always` state properties are asserted in every state by a never claim that only asserts (one
claim state: it adds none to SPIN's count). A way out of a tree that no reachable state takes
(a value or a path the trace was not shown) is `assert(false)`: SPIN would report it.

So that every such way is known, the export first runs the native search of the
configuration (`native.reachable`, on the Python backend's trees), which shows every tree the
paths and values the reachable states take. SPIN then counts distinct states of the same
reachable set: the process adds no state of its own (every stored state is at the loop's
head), and temporaries are `hidden`.
"""

from __future__ import annotations

import numpy as np

from model.codegen import native
from model.codegen.expr import Sym, cell, cells_of, key, substitute
from model.codegen.trace import OTHER, Branch, End, paths_of, size

INT_MAX = 2**31 - 1
_OPS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "/", "mod": "%", "and_": "&",
        "or_": "|", "xor": "^", "lshift": "<<", "rshift": ">>", "eq": "==", "ne": "!=",
        "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_COMPARE = frozenset(("eq", "ne", "lt", "le", "gt", "ge"))


class ExportError(Exception):
    """The configuration cannot be written as Promela (a value past Promela's int)."""


def expression(x, compared: bool = False) -> str:
    """Promela source of an expression. A constant past Promela's 32-bit int only appears
    compared with cells that fit in it (their widths come from the reachable states), so it is
    clamped to the int range, which keeps every comparison's answer."""
    if not isinstance(x, Sym):
        v = int(x)
        if abs(v) > INT_MAX:
            if not compared:
                raise ExportError(f"the constant {v} does not fit Promela's int")
            v = INT_MAX if v > 0 else -INT_MAX
        return str(v) if v >= 0 else f"({v})"
    op, args = x.op, x.args
    if op == "cell":
        return f"c{args[0]}"
    if op in _OPS:
        inner = op in _COMPARE
        return f"({expression(args[0], inner)} {_OPS[op]} {expression(args[1], inner)})"
    if op == "neg":
        return f"(-{expression(args[0])})"
    if op == "invert":
        return f"(~{expression(args[0])})"
    if op == "not":
        return f"(!{expression(args[0])})"
    if op in ("and", "or"):
        return "(" + (" && " if op == "and" else " || ").join(expression(a) for a in args) + ")"
    if op == "ite":
        c, a, b = (expression(a) for a in args)
        return f"({c} -> {a} : {b})"
    raise ValueError(op)


def _or(parts: list) -> str:
    parts = [p for p in parts if p != "0"]
    if "1" in parts:
        return "1"
    return "0" if not parts else parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def _and(a: str, b: str) -> str:
    if a == "0" or b == "0":
        return "0"
    return b if a == "1" else a if b == "1" else f"({a} && {b})"


def _formula(node, leaf) -> str:
    """A tree as one boolean formula, each end giving `leaf(end)`."""
    return _merged_formula([(None, node)], leaf)


def _succeeds(end: End) -> str:
    if end.kind in ("unknown", "crash"):
        return "1"  # taken into the body, where it fails an assertion
    if end.kind != "out":
        return "0"
    return "1" if not isinstance(end.errno, Sym) and end.errno == 0 else \
        "0" if not isinstance(end.errno, Sym) else f"({expression(end.errno)} == 0)"


def _truth(end: End) -> str:
    if end.kind != "value":
        return "0"
    return expression(end.value) if isinstance(end.value, Sym) else str(int(bool(end.value)))


class _Layout:
    """The global variable of each cell of each shape: one per path in the state."""

    def __init__(self, comp):
        self.comp = comp
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._of: dict[int, tuple] = {}

    def of(self, sid: int) -> tuple:
        """The variable of each cell of shape sid."""
        out = self._of.get(sid)
        if out is None:
            out = []
            for name in paths_of(self.comp.shapes[sid]):
                if name not in self._index:
                    self._index[name] = len(self.names)
                    self.names.append(name)
                out.append(self._index[name])
            out = self._of[sid] = tuple(out)
        return out

    def relabel(self, tree, sid: int):
        """The tree with shape sid's cells named by their variables."""
        env = {j: cell(v) for j, v in enumerate(self.of(sid))}
        memo: dict = {}

        def walk(node):
            if isinstance(node, Branch):
                return Branch(substitute(node.expr, env, memo), node.kind,
                              [(v, walk(c)) for v, c in node.children])
            return End(node.kind, errno=substitute(node.errno, env, memo), shape=node.shape,
                       cells=tuple(substitute(x, env, memo) for x in node.cells),
                       value=substitute(node.value, env, memo),
                       expr=substitute(node.expr, env, memo), detail=node.detail)
        return walk(tree)


class _Writer:
    def __init__(self, comp, layout: _Layout):
        self.comp = comp
        self.layout = layout
        self.temps = 0
        self.lines: list[str] = []
        self.constants: dict[int, set] = {}  # variable -> constants some end assigns it

    def body(self, items: list, depth: int) -> None:
        """The trees of one call on several shapes ((shape id, relabelled tree) each), written
        once where they decide alike: a shape test only where they part."""
        pad = "  " * depth
        if all(isinstance(node, End) for _sid, node in items):
            ends: dict = {}
            for sid, node in items:
                start = len(self.lines)
                self.end(node, sid, depth + 1)
                ends.setdefault(tuple(self.lines[start:]), []).append(sid)
                del self.lines[start:]
            if len(ends) == 1:
                self.lines += [line[2:] for line in next(iter(ends))]
                return
            self._by_shape(list(ends.items()), depth, lambda lines: self.lines.extend(lines))
            return
        parts = _parts(items)
        if len(parts) > 1:
            self._by_shape(parts, depth, lambda group: self.body(group, depth + 1))
            return
        node = items[0][1]
        self.lines.append(f"{pad}if")
        for value, group in _children(items):
            if value is OTHER:
                cond = "else"
            elif node.kind == "bool":
                cond = expression(node.expr) if value else "else"
            else:
                cond = f"({expression(node.expr)} == {int(value)})"
            self.lines.append(f"{pad}:: {cond} ->")
            self.body(group, depth + 1)
        self.lines.append(f"{pad}fi")

    def _by_shape(self, groups: list, depth: int, write) -> None:
        """`if` over the shapes: each group (what, shapes) written by `write(what)`."""
        pad = "  " * depth
        self.lines.append(f"{pad}if")
        for i, (what, sids) in enumerate(groups):
            test = "else" if i == len(groups) - 1 else _shapes(sids)
            self.lines.append(f"{pad}:: {test} ->")
            write(what)
        self.lines.append(f"{pad}fi")

    def end(self, end: End, sid: int, depth: int) -> None:
        pad = "  " * depth
        if end.kind in ("unknown", "crash"):
            self.lines.append(f"{pad}assert(false)")
            return
        if end.kind != "out" or not isinstance(end.errno, Sym) and end.errno != 0:
            self.lines.append(f"{pad}skip")
            return
        inner = pad
        if isinstance(end.errno, Sym):
            self.lines += [f"{pad}if", f"{pad}:: ({expression(end.errno)} == 0) ->"]
            inner = pad + "  "
        self.assign(end, sid, inner)
        if isinstance(end.errno, Sym):
            self.lines += [f"{pad}:: else -> skip", f"{pad}fi"]

    def assign(self, end: End, sid: int, pad: str) -> None:
        post = self.comp.shape_id(end.shape)
        names = self.layout.of(post)
        writes = {names[j]: x for j, x in enumerate(end.cells)
                  if not (isinstance(x, Sym) and x.op == "cell" and x.args[0] == names[j])}
        writes.update({v: 0 for v in set(self.layout.of(sid)) - set(names)})
        temps = []
        for v, x in sorted(writes.items()):
            if cells_of(x) & set(writes):
                temps.append((v, f"t{len(temps)}"))
                self.lines.append(f"{pad}t{len(temps) - 1} = {expression(x)};")
        self.temps = max(self.temps, len(temps))
        tv = dict(temps)
        for v, x in sorted(writes.items()):
            if not isinstance(x, Sym):  # a value no reachable state may take: widen for it
                self.constants.setdefault(v, set()).add(int(x))
            if v not in tv:
                self.lines.append(f"{pad}c{v} = {expression(x)};")
        for v, t in temps:
            self.lines.append(f"{pad}c{v} = {t};")
        if post != sid:
            self.lines.append(f"{pad}shape = {post};")
        if not writes and post == sid:
            self.lines.append(f"{pad}skip")


def _parts(items: list) -> list:
    """Items grouped by their first decision (ends apart): [(items, shapes)]."""
    groups: dict = {}
    for sid, node in items:
        head = ("end",) if isinstance(node, End) else (node.kind, key(node.expr))
        groups.setdefault(head, []).append((sid, node))
    return [(group, [sid for sid, _node in group]) for group in groups.values()]


def _children(items: list) -> list:
    """[(value, items)] of items that share their first decision, values in first-seen
    order; a shape without a value takes its OTHER child there (or, with none, it cannot take
    the value: an assertion)."""
    values: list = []
    for _sid, node in items:
        for value, _child in node.children:
            if not any(value == v and type(value) is type(v) for v in values):
                values.append(value)
    values.sort(key=lambda v: v is OTHER)  # `else` last
    out = []
    for value in values:
        group = []
        for sid, node in items:
            child = next((c for v, c in node.children if v == value and type(v) is
                          type(value)), None)
            if child is None:
                child = next((c for v, c in node.children if v is OTHER),
                             End("unknown", expr=node.expr))
            group.append((sid, child))
        out.append((value, group))
    return out


def _merged_formula(items: list, leaf) -> str:
    """The trees of several shapes ((shape id, tree) each) as one formula, each end giving
    `leaf(end)`, a shape test only where they part."""
    parts = _parts(items)
    if len(parts) > 1:
        return _or([_and(_shapes(sids), _merged_formula(group, leaf)) for group, sids in parts])
    node = items[0][1]
    if isinstance(node, End):
        by: dict = {}
        for sid, end in items:
            by.setdefault(leaf(end), []).append(sid)
        if len(by) == 1:
            return next(iter(by))
        return _or([_and(_shapes(sids), f) for f, sids in by.items()])
    out = []
    values = []
    for value, group in _children(items):
        if value is OTHER:
            cond = " && ".join(f"({expression(node.expr)} != {int(v)})" for v in values) or "1"
        elif node.kind == "bool":
            cond = expression(node.expr) if value else f"(!{expression(node.expr)})"
        else:
            cond = f"({expression(node.expr)} == {int(value)})"
            values.append(value)
        out.append(_and(cond, _merged_formula(group, leaf)))
    return _or(out)


def _shapes(group: list, sids: list | None = None) -> str:
    """The test that the current shape is one of a group ("1" when it is all of `sids`)."""
    if sids is not None and len(group) == len(sids):
        return "1"
    return _or([f"(shape == {sid})" for sid in group])


def _width(lo: int, hi: int) -> str:
    if 0 <= lo and hi <= 1:
        return "bit"
    if 0 <= lo and hi <= 255:
        return "byte"
    if -32768 <= lo and hi <= 32767:
        return "short"
    if -INT_MAX <= lo and hi <= INT_MAX:
        return "int"
    raise ExportError(f"a cell takes values {lo}..{hi}, past Promela's int")


def export(profile, config, *, max_seconds: float | None = None,
           cache: str | None = None) -> tuple[str, dict]:
    """(Promela source, facts: states and edges of the native search, cells, shapes); `cache`:
    a folder of traced trees (`model/codegen/cache.py`)."""
    found = native.reachable(profile, config, properties=True, max_seconds=max_seconds,
                             cache=cache)
    if not found["complete"]:
        raise ExportError(f"the native search of this machine did not finish in "
                          f"{max_seconds} s: every path SPIN may take is not known yet")
    search = found["search"]
    comp = search.comp
    if found["violated"]:
        raise ExportError(f"{', '.join(found['violated'])} violated in a reachable state: "
                          "explore it with `pkvm-model explore`")
    rows = search.rows[:search.n]
    sids = sorted(int(sid) for sid in np.unique(rows[:, 0]))
    for sid in sids:
        comp.trees_of(sid)
    layout = _Layout(comp)
    writer = _Writer(comp, layout)
    options = []
    body: list[str] = []
    for ci, call in enumerate(comp.calls):
        items = [(sid, layout.relabel(comp.trees[(ci, sid)], sid)) for sid in sids]
        items = [(sid, tree) for sid, tree in items if _formula(tree, _succeeds) != "0"]
        if not items:
            continue
        on = _shapes([sid for sid, _tree in items], sids)
        body += ["  :: atomic {", f"    {_and(on, _merged_formula(items, _succeeds))} ->"]
        writer.lines = []
        writer.body(items, 2)
        body += writer.lines
        body.append(f"  }} /* {call} */")
        options.append(ci)
    always = {}
    for sid in sids:
        if comp.always:
            parts = [_formula(layout.relabel(comp.trees[(-1 - i, sid)], sid), _truth)
                     for i in range(len(comp.always))]
            always[sid] = " && ".join(parts)
    cells = len(layout.names)
    lo, hi = [0] * cells, [0] * cells
    for sid in sids:
        mine = rows[rows[:, 0] == sid, 1:1 + size(comp.shapes[sid])]
        for v, low, high in zip(layout.of(sid), mine.min(axis=0), mine.max(axis=0)):
            lo[v], hi[v] = min(lo[v], int(low)), max(hi[v], int(high))
    for v, values in writer.constants.items():
        lo[v], hi[v] = min(lo[v], *values), max(hi[v], *values)
    init = search.packed(0)
    start = dict(zip(layout.of(init[0]), init[1:]))
    out = [f"/* pkvm-model export --format promela --profile {profile.name}",
           f"   machine: {profile.config_text(config)}",
           f"   {found['states']} states, {found['edges']} successful calls reachable "
           f"(native search); {len(options)} of {len(comp.calls)} calls can succeed",
           f"   {len(sids)} shapes reachable; the variables (0 where the shape has no such cell):",
           *(f"   c{v} = {name}" for v, name in enumerate(layout.names)),
           "*/"]
    if len(sids) > 1:
        out.append(f"{_width(min(sids), max(sids))} shape = {init[0]};")
    else:
        out.append(f"hidden byte shape = {init[0]};")
    for v in range(cells):
        out.append(f"{_width(lo[v], hi[v])} c{v} = {start.get(v, 0)};")
    for t in range(writer.temps):
        out.append(f"hidden int t{t};")
    for sid, formula in always.items():
        out.append(f"#define always_{sid} ({formula})")
    out += ["", "active proctype main() {", "  do", *body, "  od", "}", ""]
    if comp.always:
        every = " && ".join(f"(shape != {sid} || always_{sid})" for sid in always)
        out += ["/* the always state properties, in every state (a claim that only asserts: it "
                "adds no state) */", f"never {{ do :: assert({every}) od }}", ""]
    facts = {"states": found["states"], "edges": found["edges"], "cells": cells,
             "shapes": len(sids), "calls": len(comp.calls), "seconds": found["seconds"],
             "tracing_seconds": found["compile_seconds"],
             "search_seconds": found["search_seconds"],
             "properties": [p.name for p in comp.always]}
    return "\n".join(out), facts
