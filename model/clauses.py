"""Which clause of a property a concrete state breaks, and at which indexes.

On values a property only answers False. To say why, it is evaluated once more on a view whose
connectives keep their operands: a failing `And` points at its first false operand, a failing
`Implies` at its consequent (its antecedent held), a failing quantifier at its first failing
index, a failing `Or` at itself (no operand held). Following those pointers down from the
property's value ends in the clause that breaks, quoted from the property's own source, with
the indexes of the quantifiers on the way ("page 1") and the antecedent it was under.
"""

from __future__ import annotations

import ast
import linecache
import os
import re
import sys
from dataclasses import dataclass, field


@dataclass
class Blame:
    where: list[str] = field(default_factory=list)  # e.g. ["entry 0, 1"], outermost first
    clause: str = ""  # the source text of the false clause
    given: str = ""  # the antecedent the clause was required under, if any
    source: str = ""  # file:line of the clause

    def text(self) -> str:
        """One line: `clause` is false, where `given` (file:line)."""
        if not self.clause:
            return ""
        given = f", where {self.given}" if self.given else ""
        return f"{self.clause} is false{given} ({self.source})"


class _Node:
    """A connective's value, with its operands and the place in the source that made it."""

    __slots__ = ("value", "op", "args", "site", "kind")

    def __init__(self, value, op, args, site, kind=""):
        self.value, self.op, self.args, self.site, self.kind = bool(value), op, args, site, kind

    def __bool__(self):
        return self.value


_POSITIONS: dict = {}


def _site(depth: int = 2):
    """(file, (line, end line, column, end column)) of the call being made `depth` frames up."""
    frame = sys._getframe(depth)
    code = frame.f_code
    positions = _POSITIONS.get(code)
    if positions is None:
        positions = _POSITIONS[code] = list(code.co_positions())
    return code.co_filename, positions[frame.f_lasti // 2]


class _Blaming:
    """A view whose connectives and quantifiers return `_Node`s; everything else is the view's."""

    def __init__(self, view):
        self._view = view

    def __getattr__(self, name):
        attr = getattr(self._view, name)
        if not (name.startswith("forall_") and callable(attr)):
            return attr
        plural = name.removeprefix("forall_")
        kind = plural[:-3] + "y" if plural.endswith("ies") else plural.removesuffix("s")

        def forall(pred):
            first: list = []

            def noting(*idx):
                held = pred(*idx)
                if not held and not first:
                    first.append((idx, held))
                return held
            return _Node(attr(noting), "forall", first, _site(), kind)
        return forall

    def And(self, *xs):
        return _Node(all(xs), "and", xs, _site())

    def Or(self, *xs):
        return _Node(any(xs), "or", xs, _site())

    def Implies(self, a, b):
        return _Node((not a) or b, "implies", (a, b), _site())


def blame_state(prop, view) -> Blame:
    """Why `prop.state` fails on `view` (an empty Blame when it holds)."""
    return _blame(prop.state(_Blaming(view)))


def blame_step(prop, call: str, errno: int, pre, post) -> Blame:
    """Why `prop.step` fails on a step (an empty Blame when it holds)."""
    return _blame(prop.step(call, errno, _Blaming(pre), _Blaming(post)))


def _blame(value) -> Blame:
    out = Blame()
    if value:
        return out
    site, arg = None, None
    while isinstance(value, _Node):
        if value.op == "and":
            arg = next(i for i, x in enumerate(value.args) if not x)
        elif value.op == "implies":
            out.given, arg = _quote(value.site, 0), 1
        elif value.op == "forall":
            idx, held = value.args[0]
            out.where.append(f"{value.kind} {', '.join(str(i) for i in idx)}")
            site, arg, value = value.site, "body", held
            continue
        else:  # an Or with no operand true: the whole disjunction is the clause
            site, arg = value.site, None
            break
        site, value = value.site, value.args[arg]
    if site is not None:
        out.clause = _quote(site, arg)
        out.source = f"{os.path.relpath(site[0])}:{_line(site, arg)}"
    return out


_TREES: dict = {}


def _call_at(site):
    """The ast.Call of the property's source at a site (None when the source is not at hand)."""
    filename, (line, end_line, col, end_col) = site
    tree = _TREES.get(filename)
    if tree is None:
        try:
            tree = _TREES[filename] = ast.parse("".join(linecache.getlines(filename)))
        except SyntaxError:
            return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (node.lineno, node.end_lineno, node.end_col_offset) \
                == (line, end_line, end_col) and node.col_offset <= col:
            return node
    return None


def _operand(site, arg):
    call = _call_at(site)
    if call is None:
        return None
    if arg is None:
        return call
    if arg == "body":
        fn = call.args[0] if call.args else None
        return fn.body if isinstance(fn, ast.Lambda) else fn
    return call.args[arg] if arg < len(call.args) else None


def _quote(site, arg) -> str:
    node = _operand(site, arg)
    if node is None:
        return "?"
    text = ast.get_source_segment("".join(linecache.getlines(site[0])), node) or "?"
    return re.sub(r"([(\[])\s+|\s+([)\]])", r"\1\2", " ".join(text.split()))


def _line(site, arg) -> int:
    node = _operand(site, arg)
    return node.lineno if node is not None else site[1][0]
