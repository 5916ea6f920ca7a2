"""The Promela backend: the traced calls of one configuration as a model SPIN checks.

One global per cell (`c0`, `c1`, ...: the header names each one per shape; `shape` too when a
variable-length field gives more than one), as narrow as the values it takes in the reachable
states; one process looping over one `atomic` block per call (a `d_step` may be too long for
SPIN), guarded by "the call succeeds" (a failing call changes nothing the explorer follows),
whose body is the call's decision tree with its writes as assignments. The `always` state
properties are asserted in every state by a never claim that only asserts (one claim state: it
adds none to SPIN's count). A way out of a tree that no reachable state takes (a value or a path
the trace was not shown) is `assert(false)`: SPIN would report it.

So that every such way is known, the export first runs the compiled search of the
configuration (`search.reachable`), which shows every tree the paths and values the reachable
states take. SPIN then counts distinct states of the same reachable set: the process adds no
state of its own (every stored state is at the loop's head), and temporaries are `hidden`.
"""

from __future__ import annotations

from model.codegen.expr import Sym, cells_of
from model.codegen.search import reachable
from model.codegen.trace import OTHER, End, paths_of, size

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
    if isinstance(node, End):
        return leaf(node)
    parts = []
    values = []
    for value, child in node.children:
        if value is OTHER:
            cond = " && ".join(f"({expression(node.expr)} != {int(v)})" for v in values) or "1"
        elif node.kind == "bool":
            cond = expression(node.expr) if value else f"(!{expression(node.expr)})"
        else:
            cond = f"({expression(node.expr)} == {int(value)})"
            values.append(value)
        parts.append(_and(cond, _formula(child, leaf)))
    return _or(parts)


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


class _Writer:
    def __init__(self, comp, cells: int):
        self.comp = comp
        self.cells = cells
        self.temps = 0
        self.lines: list[str] = []
        self.constants: dict[int, set] = {}  # cell -> constants some end assigns it

    def body(self, node, sid: int, depth: int) -> None:
        pad = "  " * depth
        if isinstance(node, End):
            self.end(node, sid, depth)
            return
        self.lines.append(f"{pad}if")
        values = []
        for value, child in node.children:
            if value is OTHER:
                self.lines.append(f"{pad}:: else ->")
                self.lines.append(f"{pad}  assert(false)")
                continue
            if node.kind == "bool":
                cond = expression(node.expr) if value else "else"
            else:
                cond = f"({expression(node.expr)} == {int(value)})"
                values.append(value)
            self.lines.append(f"{pad}:: {cond} ->")
            self.body(child, sid, depth + 1)
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
        writes = {j: x for j, x in enumerate(end.cells)
                  if not (isinstance(x, Sym) and x.op == "cell" and x.args[0] == j)}
        writes.update({j: 0 for j in range(len(end.cells), size(self.comp.shapes[sid]))})
        temps = []
        for j, x in sorted(writes.items()):
            if cells_of(x) & set(writes):
                temps.append((j, f"t{len(temps)}"))
                self.lines.append(f"{pad}t{len(temps) - 1} = {expression(x)};")
        self.temps = max(self.temps, len(temps))
        tj = dict(temps)
        for j, x in sorted(writes.items()):
            if not isinstance(x, Sym):  # a value no reachable state may take: widen for it
                self.constants.setdefault(j, set()).add(int(x))
            if j not in tj:
                self.lines.append(f"{pad}c{j} = {expression(x)};")
        for j, t in temps:
            self.lines.append(f"{pad}c{j} = {t};")
        if post != sid:
            self.lines.append(f"{pad}shape = {post};")
        if not writes and post == sid:
            self.lines.append(f"{pad}skip")


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


def export(profile, config, *, max_seconds: float | None = None) -> tuple[str, dict]:
    """(Promela source, facts: states and edges of the compiled search, cells, shapes)."""
    found = reachable(profile, config, properties=True, max_seconds=max_seconds)
    if not found["complete"]:
        raise ExportError(f"the compiled search of this machine did not finish in "
                          f"{max_seconds} s: every path SPIN may take is not known yet")
    comp = found["compiled"]
    if found["violated"]:
        raise ExportError(f"{', '.join(found['violated'])} violated in a reachable state: "
                          "explore it with `pkvm-model explore`")
    seen = list(found["seen"])
    cells = max(size(s) for s in comp.shapes)
    lo, hi = [0] * cells, [0] * cells
    for state in seen:
        for j, v in enumerate(state[1:]):
            if v < lo[j]:
                lo[j] = v
            elif v > hi[j]:
                hi[j] = v
    sids = sorted({s[0] for s in seen})
    for sid in range(len(comp.shapes)):
        comp.predicates(sid)
    writer = _Writer(comp, cells)
    options = []
    for ci, call in enumerate(comp.calls):
        guard = []
        start = len(writer.lines)
        writer.lines.append("  :: atomic {")
        writer.lines.append("    GUARD ->")
        if len(sids) > 1:
            writer.lines.append("    if")
        for sid in sids:
            tree = comp.sources[(ci, sid)][2]
            ok = _formula(tree, _succeeds)
            on = f"(shape == {sid})" if len(sids) > 1 else "1"
            guard.append(_and(on, ok))
            if len(sids) > 1:
                writer.lines.append(f"    :: (shape == {sid}) ->")
            writer.body(tree, sid, 3)
        if len(sids) > 1:
            writer.lines += ["    :: else -> skip", "    fi"]
        writer.lines.append(f"  }} /* {call} */")
        g = _or(guard)
        if g == "0":
            del writer.lines[start:]
            continue
        writer.lines[start + 1] = f"    {g} ->"
        options.append(ci)
    for j, values in writer.constants.items():
        lo[j], hi[j] = min(lo[j], *values), max(hi[j], *values)
    init = seen[0]
    names = {sid: paths_of(comp.shapes[sid]) for sid in sids}
    out = [f"/* pkvm-model export --format promela --profile {profile.name}",
           f"   machine: {profile.config_text(config)}",
           f"   {found['states']} states, {found['edges']} successful calls reachable "
           f"(compiled search); {len(options)} of {len(comp.calls)} calls can succeed",
           "   cells by shape:"]
    for sid in sids:
        out.append(f"   shape {sid}: " + ", ".join(f"c{j}={n}" for j, n in
                                                   enumerate(names[sid])))
    out.append("*/")
    if len(sids) > 1:
        out.append(f"{_width(min(sids), max(sids))} shape = {init[0]};")
    else:
        out.append(f"hidden byte shape = {init[0]};")
    for j in range(cells):
        out.append(f"{_width(lo[j], hi[j])} c{j} = {init[1 + j] if j < len(init) - 1 else 0};")
    for t in range(writer.temps):
        out.append(f"hidden int t{t};")
    for sid in range(len(comp.shapes)):
        if comp.always:
            parts = [_formula(comp.sources[(-1 - i, sid)][2], _truth)
                     for i in range(len(comp.always))]
            out.append(f"#define always_{sid} ({' && '.join(parts)})")
    out += ["", "active proctype main() {", "  do", *writer.lines, "  od", "}", ""]
    if comp.always:
        every = " && ".join(f"(shape != {sid} || always_{sid})"
                            for sid in range(len(comp.shapes)))
        out += ["/* the always state properties, in every state (a claim that only asserts: it "
                "adds no state) */", f"never {{ do :: assert({every}) od }}", ""]
    facts = {"states": found["states"], "edges": found["edges"], "cells": cells,
             "shapes": len(sids), "calls": len(comp.calls), "seconds": found["seconds"],
             "compile_seconds": found["compile_seconds"],
             "properties": [p.name for p in comp.always]}
    return "\n".join(out), facts
