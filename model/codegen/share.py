"""Trees shared between shapes: a call traced on one shape serves every shape that differs from
it only inside tuples the call never looked into.

A shape names the lengths of a state's variable-length tuples (pKVM's stage-2 leaves of each
VM), so tracing per (call, shape) traces a call again for every length of every VM's leaves,
although most calls read one VM's. The tracer notes which plain tuples of the pre-state a
call's paths looked into (`trace.Watched`) and checks that the others are carried over in place
and read nowhere else (`trace._looked_into`). On a shape that agrees with the traced one outside
those tuples the call takes the same decisions on the same cells: its tree is the traced one
with its cells renumbered and the untouched tuples copied over as they are in the new shape.
"""

from __future__ import annotations

from model.codegen.expr import cell, substitute
from model.codegen.trace import Branch, End, build, flatten, size, spans, subshape


def mask(shape, paths: frozenset):
    """The shape with the tuple at each path replaced by a placeholder; None if a path is not a
    plain tuple of this shape."""
    for path in paths:
        node = subshape(shape, path)
        if node is None or node[0] is not tuple:
            return None
    return _masked(shape, paths, ())


def _masked(shape, paths, path):
    if path in paths:
        return ("*",)
    if shape is None or shape[0] == "k":
        return shape
    return (shape[0], tuple(_masked(k, paths, path + (i,)) for i, k in enumerate(shape[1])))


def renumbering(shape, other, paths: frozenset) -> dict:
    """Cell i of `shape` -> the same cell of `other`, outside the tuples at `paths`."""
    env: dict = {}
    _pair(shape, other, paths, (), [0], [0], env)
    return env


def _pair(a, b, paths, path, ia, ib, env) -> None:
    if path in paths:
        ia[0] += size(a)
        ib[0] += size(b)
    elif a is None:
        env[ia[0]] = cell(ib[0])
        ia[0] += 1
        ib[0] += 1
    elif a[0] != "k":
        for i, (x, y) in enumerate(zip(a[1], b[1])):
            _pair(x, y, paths, path + (i,), ia, ib, env)


def relocate(tree, shape, other, paths: frozenset):
    """The tree of a call traced on `shape`, for the states of `other` (same mask)."""
    env = renumbering(shape, other, paths)
    at = spans(other)
    copies = {path: build(subshape(other, path), [cell(i) for i in range(*at[path])])
              for path in paths}
    memo: dict = {}

    def move(x):
        return substitute(x, env, memo)

    def walk(node):
        if isinstance(node, Branch):
            return Branch(move(node.expr), node.kind, [(v, walk(c)) for v, c in node.children])
        if node.kind != "out":
            return End(node.kind, errno=move(node.errno), value=move(node.value),
                       expr=move(node.expr), detail=node.detail)
        post = build(node.shape, [move(x) for x in node.cells])
        for path, copy in copies.items():
            post = _put(post, path, copy)
        post_shape, cells = flatten(post)
        return End("out", errno=move(node.errno), shape=post_shape, cells=tuple(cells))

    return walk(tree)


def _put(state, path: tuple, value):
    """The state with the part at `path` replaced by value."""
    if not path:
        return value
    i, rest = path[0], path[1:]
    parts = list(state)
    parts[i] = _put(parts[i], rest, value)
    return tuple(parts) if type(state) is tuple else type(state)(*parts)
