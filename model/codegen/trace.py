"""The code-generation reading: every call of a fixed configuration, traced once into a decision
tree over the cells of the state.

The profile's own concrete view is run on a state whose every integer is a `Sym` cell, with the
vocabulary's connectives (`And`, `Or`, `Not`, `Implies`, `If`) building expressions. Where the
view's Python code needs a value (a failing `require`, a `when` guard, a check of an unrolled
`each_page`, a comparison while searching a list, a state value used as an index or a bound),
the tracer decides: a truth test forks both ways, an integer takes each value it is known to
take plus "another value". The body is re-run once per decision path, so each path is straight-
line code (its guards, then its writes and errno); the paths merge into a tree. Decisions made
on a path bind what they imply (a cell equal to a constant, a cell's bounds), so later reads
fold.

A state's layout (`flatten`): every integer of the nested tuples is a cell, in order; the rest
(lengths of tuples, the types of named tuples) is its shape. A variable-length field (a list of
entries) gives one shape per length, and a call is traced per (call, shape), unless a tree of
another shape serves (`share.py`: `Watched` tuples note what a call looks into). An integer takes
the values its bounds allow, the indices of the state's tuples and the values it was told of
(`learned`); "another value" ends the path in `Unknown`. A computation with too many paths is
traced lazily, holding only the paths of the states it was shown. The Python backend learns
what a state needs (its path, with an `oracle`) and traces again; the Promela backend writes a
failed assertion there, after a compiled search has shown it every reachable state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from model.codegen.expr import ACTIVE, SWAPPED, Sym, cell, cells_of, conj, disj, ite, key, \
    negate, substitute, truth
from model.transitions import run_concrete

EAGER_PATHS = 300  # a computation with more paths is traced lazily (below)
EAGER_DECISIONS = 20_000  # or with more decisions on all its paths together


_ORDER = frozenset(("eq", "ne", "lt", "le", "gt", "ge"))


class TraceError(Exception):
    """Too many paths to trace eagerly."""


# -- layouts ---------------------------------------------------------------------------------

def _is_cell(x) -> bool:
    return isinstance(x, (int, Sym))  # bool and IntEnum are ints


def flatten(state, cells: list | None = None):
    """(shape, cells): the shape is hashable and names the structure, the cells its integers."""
    cells = [] if cells is None else cells
    if _is_cell(state):
        cells.append(state)
        return None, cells
    if isinstance(state, tuple):
        kids = tuple(flatten(x, cells)[0] for x in tuple.__iter__(state))  # unwatched
        cls = type(state)
        return (tuple if cls is tuple or cls is Watched else cls, kids), cells
    return ("k", state), cells


def build(shape, cells):
    """The state of a shape from its cells, inverse of `flatten`."""
    return _build(shape, iter(cells))


def _build(shape, it):
    if shape is None:
        return next(it)
    if shape[0] == "k":
        return shape[1]
    cls, kids = shape
    parts = [_build(k, it) for k in kids]
    return tuple(parts) if cls is tuple else cls(*parts)


@functools.cache
def size(shape) -> int:
    if shape is None:
        return 1
    if shape[0] == "k":
        return 0
    return sum(size(k) for k in shape[1])


def widest(shape) -> int:
    """The length of the longest tuple of a shape."""
    if shape is None or shape[0] == "k":
        return 0
    return max([len(shape[1]), *(widest(k) for k in shape[1])])


@functools.cache
def spans(shape) -> dict:
    """path -> (first cell, end) of every tuple of a shape (a path: the indices from the root).
    Shared between callers: not to be changed."""
    out: dict = {}
    _spans(shape, 0, (), out)
    return out


def _spans(shape, at: int, path: tuple, out: dict) -> None:
    if shape is None:
        return
    start = at
    if shape[0] != "k":
        for i, kid in enumerate(shape[1]):
            _spans(kid, at, path + (i,), out)
            at += size(kid)
        out[path] = (start, at)


def subshape(shape, path: tuple):
    """The part of a shape at a path, or None where the shape has no tuple there."""
    for i in path:
        if shape is None or shape[0] == "k" or i >= len(shape[1]):
            return None
        shape = shape[1][i]
    return shape


def paths_of(shape, prefix: str = "") -> list[str]:
    """A name per cell, from the fields of named tuples and the indices of tuples."""
    if shape is None:
        return [prefix or "cell"]
    if shape[0] == "k":
        return []
    cls, kids = shape
    names = getattr(cls, "_fields", None)
    out = []
    for i, k in enumerate(kids):
        part = names[i] if names else str(i)
        out += paths_of(k, f"{prefix}_{part}" if prefix else part)
    return out


# -- the tracer --------------------------------------------------------------------------------

class Unknown(Exception):
    """A path converted an integer to a value it was not told of."""

    def __init__(self, expr):
        super().__init__(repr(expr))
        self.expr = expr


class _Other:
    """The "another value" child of an integer decision: one object, also when unpickled."""

    def __repr__(self):
        return "OTHER"

    def __reduce__(self):
        return "OTHER"  # by reference to this module's OTHER


OTHER = _Other()
LAZY = "lazy"  # the key in `learned` of a computation traced lazily


class Tracer:
    """Decides one path: replays `prefix`, then takes the first option of each new decision."""

    def __init__(self, prefix: tuple, learned: dict, oracle=None, small: int = 0):
        self.prefix = prefix
        self.learned = learned
        self.small = small  # integers below it are tried unasked (indices of the state's tuples)
        self.oracle = oracle  # cell values of one concrete state: decide as it does, and learn
        self.decisions: list = []  # (expr, value, options)
        self.env: dict[int, int] = {}
        self.substituted: dict = {}  # substitute's memo, valid while env stays as it is
        self.facts: dict = {}
        self.bounds: dict[int, tuple] = {}  # cell -> (lo, hi), None where unbounded

    def resolve(self, x):
        if self.env:
            x = substitute(x, self.env, self.substituted)
        if isinstance(x, Sym):
            x = self.facts.get(key(x), x)
            if isinstance(x, Sym) and x.op in _ORDER and self.bounds:
                return self._compare(x)
        return x

    def interval(self, x) -> tuple:
        """Bounds of an expression from the bounds of its cells (sums and differences)."""
        if not isinstance(x, Sym):
            return int(x), int(x)
        if x.op == "cell":
            return self.bounds.get(x.args[0], (None, None))
        if x.op in ("add", "sub"):
            (alo, ahi), (blo, bhi) = self.interval(x.args[0]), self.interval(x.args[1])
            if x.op == "sub":
                blo, bhi = (None if bhi is None else -bhi), (None if blo is None else -blo)
            return (None if alo is None or blo is None else alo + blo,
                    None if ahi is None or bhi is None else ahi + bhi)
        if x.op in _ORDER or x.op in ("and", "or", "not"):
            return 0, 1
        return None, None

    def _compare(self, x):
        """A comparison its operands' bounds decide, as a bool; else x."""
        (alo, ahi), (blo, bhi) = self.interval(x.args[0]), self.interval(x.args[1])
        below = ahi is not None and blo is not None and ahi < blo  # a < b surely
        above = alo is not None and bhi is not None and alo > bhi  # a > b surely
        le = ahi is not None and blo is not None and ahi <= blo
        ge = alo is not None and bhi is not None and alo >= bhi
        op = x.op
        if op == "lt":
            return True if below else False if ge else x
        if op == "le":
            return True if le else False if above else x
        if op == "gt":
            return True if above else False if le else x
        if op == "ge":
            return True if ge else False if below else x
        if below or above:
            return op == "ne"
        return x

    def _bound(self, e) -> None:
        """Tighten a cell's bounds by a comparison with a constant that holds."""
        a, b = e.args
        op = e.op
        if isinstance(b, Sym) and not isinstance(a, Sym):
            a, b, op = b, a, SWAPPED[op]
        if not (isinstance(a, Sym) and a.op == "cell") or isinstance(b, Sym):
            return
        i = a.args[0]
        lo, hi = self.bounds.get(i, (None, None))
        if op in ("lt", "le"):
            top = b - 1 if op == "lt" else b
            hi = top if hi is None else min(hi, top)
        elif op in ("gt", "ge"):
            bottom = b + 1 if op == "gt" else b
            lo = bottom if lo is None else max(lo, bottom)
        elif op == "eq":
            lo = hi = b
        elif op == "ne":
            lo = lo + 1 if lo == b else lo
            hi = hi - 1 if hi == b else hi
        self.bounds[i] = (lo, hi)
        if lo is not None and lo == hi:
            self.env[i] = lo
            self.substituted = {}

    def _next(self, expr, options):
        if self.oracle is not None:
            value = substitute(expr, self.oracle)
            value = bool(value) if options[0] is True else int(value)
            if value not in options:
                self.learned.setdefault(key(expr), set()).add(value)
            self.decisions.append((expr, value, options))
            return value
        i = len(self.decisions)
        value = self.prefix[i] if i < len(self.prefix) else options[0]
        self.decisions.append((expr, value, options))
        return value

    def decide_bool(self, x) -> bool:
        e = self.resolve(truth(x))
        if not isinstance(e, Sym):
            return bool(e)
        value = self._next(e, (True, False))
        self._assume(e, value)
        return value

    def decide_int(self, x) -> int:
        e = self.resolve(x)
        if not isinstance(e, Sym):
            return int(e)
        lo, hi = self.interval(e)
        if lo is not None and hi is not None and hi - lo < 64:  # every value it can take
            options = tuple(range(lo, hi + 1))
        else:
            options = (*sorted(set(range(self.small)) | self.learned.get(key(e), set())), OTHER)
        value = self._next(e, options)
        if value is OTHER:
            raise Unknown(e)
        self.facts[key(e)] = value
        if e.op == "cell":
            self.env[e.args[0]] = value
            self.substituted = {}
            self.bounds[e.args[0]] = (value, value)
        return value

    def _assume(self, e, value: bool) -> None:
        """Record what a decided condition implies."""
        self.facts[key(e)] = value
        neg = negate(e)
        if isinstance(neg, Sym):
            self.facts[key(neg)] = not value
        holds = e if value else neg
        if isinstance(holds, Sym) and holds.op in SWAPPED:
            self._bound(holds)
        if e.op == ("and" if value else "or"):
            for part in e.args:
                part = self.resolve(part)
                if isinstance(part, Sym):
                    self._assume(part, value)
        if e.op == "not":
            self._assume(e.args[0], not value)


# -- the decision tree -------------------------------------------------------------------------

@dataclass
class Branch:
    expr: object  # a condition (kind "bool") or an integer expression (kind "int")
    kind: str  # "bool": both ways; "int": the values it was told of (ints or bools), and OTHER
    children: list  # [(value, node)]


@dataclass
class End:
    """What a path ends in: kind "none" (the call is not made), "out" (errno, shape, cells),
    "value" (a property's truth), "unknown" (an integer it was not told of: `expr`), or
    "crash" (the body raised: `detail`)."""

    kind: str
    errno: object = 0
    shape: object = None
    cells: tuple = ()
    value: object = None
    expr: object = None
    detail: str = ""


def explore_paths(run, learned: dict, what: str, oracle: dict | None = None,
                  small: int = 0) -> object:
    """Every decision path of `run(tracer)`, merged into a tree.

    A computation with more than EAGER_PATHS paths (a loop whose every turn tests a state value
    doubles them) is traced lazily instead: its tree holds the paths of the states it was shown
    (`oracle`: the cells of a state the tree did not cover), every other way out of a decision
    ending in `Unknown`. An oracle's path is learned first, in either mode."""
    if oracle is not None:
        tracer = Tracer((), learned, oracle, small)
        leaf = _run(run, tracer)
        if LAZY in learned:
            learned[LAZY].append((tracer.decisions, leaf))
    if LAZY not in learned:
        try:
            return _merged(_paths(run, learned, what, small))[0]
        except TraceError:
            learned[LAZY] = [(tracer.decisions, leaf)] if oracle is not None else []
    root = None
    for decisions, leaf in learned[LAZY]:
        root = _insert(root, [(e, v, (OTHER,)) for e, v, _o in decisions], leaf)
    if root is None:
        return End("unknown", expr=True)
    for node in _branches(root):
        node.children.append((OTHER, End("unknown", expr=node.expr)))
    return root


def _branches(node):
    if isinstance(node, Branch):
        yield node
        for _v, child in node.children:
            yield from _branches(child)


def _run(run, tracer):
    ACTIVE.append(tracer)
    try:
        return run(tracer)
    except Unknown as why:
        return End("unknown", expr=why.expr)
    except TraceError:
        raise
    except Exception as err:  # noqa: BLE001 - a path the concrete reading would crash on
        return End("crash", detail=f"{type(err).__name__}: {err}")
    finally:
        ACTIVE.pop()


def _paths(run, learned, what, small):
    root = None
    stack = [()]
    count = decided = 0
    while stack:
        prefix = stack.pop()
        count += 1
        if count > EAGER_PATHS:
            raise TraceError(f"{what}: more than {EAGER_PATHS} paths")
        tracer = Tracer(prefix, learned, small=small)
        leaf = _run(run, tracer)
        decided += len(tracer.decisions)
        if decided > EAGER_DECISIONS:
            raise TraceError(f"{what}: more than {EAGER_DECISIONS} decisions")
        root = _insert(root, tracer.decisions, leaf)
        for i in range(len(prefix), len(tracer.decisions)):
            _expr, value, options = tracer.decisions[i]
            head = tuple(d[1] for d in tracer.decisions[:i])
            stack.extend(head + (alt,) for alt in reversed(options) if alt is not value)
    return root


def _insert(root, decisions, leaf):
    """The tree with one more path (iterative: a path may hold thousands of decisions)."""
    if not decisions:
        return leaf
    holder = [root]
    slot = (holder, 0)
    for expr, value, options in decisions:
        parent, at = slot
        node = parent[at]
        if node is None:
            node = parent[at] = Branch(expr, "bool" if options == (True, False) else "int", [])
        for i, (v, _child) in enumerate(node.children):
            if v == value and type(v) is type(value):
                break
        else:
            node.children.append((value, None))
            i = len(node.children) - 1
        slot = (_ChildSlot(node.children, i), 0)
    parent, at = slot
    parent[at] = leaf
    return holder[0]


class _ChildSlot:
    """The child of a (value, child) pair, as an assignable slot."""

    def __init__(self, children, i):
        self.children, self.i = children, i

    def __getitem__(self, _at):
        return self.children[self.i][1]

    def __setitem__(self, _at, node):
        self.children[self.i] = (self.children[self.i][0], node)


def _leaf_signature(leaf: End) -> tuple:
    return ("L", leaf.kind, key(leaf.errno), leaf.shape, tuple(key(c) for c in leaf.cells),
            key(leaf.value), key(leaf.expr), leaf.detail)


def _merged(node) -> tuple:
    """(the tree with every truth test whose two sides end the same way collapsed, its
    signature: a hashable structural value, equal for equal trees), bottom-up, so that each
    subtree's signature is built once."""
    if isinstance(node, End):
        return node, _leaf_signature(node)
    kids = [(v, _merged(c)) for v, c in node.children]
    node.children = [(v, c) for v, (c, _s) in kids]
    if node.kind == "bool" and len(kids) == 2 and kids[0][1][1] == kids[1][1][1]:
        return kids[0][1]
    return node, ("B", key(node.expr), node.kind, tuple((v, s) for v, (_c, s) in kids))


# -- the reading -------------------------------------------------------------------------------

class _Vocabulary:
    """The connectives as expressions (a truth test on them would fork needlessly)."""

    And = staticmethod(conj)
    Or = staticmethod(disj)
    Not = staticmethod(negate)
    If = staticmethod(ite)

    @staticmethod
    def Implies(a, b):
        return disj(negate(a), b)


_TRACED: dict = {}


def traced_view(profile, config, state):
    """The profile's concrete view of a state of Sym cells, speaking in expressions."""
    view = profile.view(config, state)
    base = type(view)
    cls = _TRACED.get(base)
    if cls is None:
        cls = _TRACED[base] = type(f"Traced{base.__name__}", (_Vocabulary, base), {})
    view.__class__ = cls
    return view


class Watched(tuple):
    """A plain tuple of the symbolic state that notes its path in `notes` whenever the traced
    code looks into it (its length, an element, an iteration, a comparison). A call that never
    looks into one answers alike whatever it holds: its tree serves every shape that differs
    only there (`model/codegen/share.py`)."""

    def _note(self):
        self.notes.add(self.path)

    def __reversed__(self):
        self._note()
        return reversed(tuple(tuple.__iter__(self)))

    def __radd__(self, other):  # `plain + watched`: Python asks the subclass first
        self._note()
        return tuple.__add__(tuple(other), tuple(tuple.__iter__(self)))


def _noting(name):
    plain = getattr(tuple, name)

    def look(self, *args):
        self._note()
        return plain(self, *args)
    look.__name__ = name
    return look


def _comparing(name):
    plain = getattr(tuple, name)

    def compare(self, other):
        self._note()
        if isinstance(other, Watched):
            other._note()
        return plain(self, other)
    compare.__name__ = name
    return compare


for _name in ("__getitem__", "__len__", "__iter__", "__contains__", "__hash__", "__add__",
              "__mul__", "__rmul__", "index", "count"):
    setattr(Watched, _name, _noting(_name))
for _name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
    setattr(Watched, _name, _comparing(_name))


def _watched(shape, it, path, notes, out):
    if shape is None:
        return next(it)
    if shape[0] == "k":
        return shape[1]
    cls, kids = shape
    parts = [_watched(k, it, path + (i,), notes, out) for i, k in enumerate(kids)]
    if cls is not tuple:
        return cls(*parts)
    node = Watched(parts)
    node.path, node.notes = path, notes
    out.append(node)
    return node


def symbolic_state(shape, notes: set | None = None, watched: list | None = None):
    """The state of a shape whose cells are Syms; with `notes`, its plain tuples are `Watched`
    (each appended to `watched`)."""
    cells = iter([cell(i) for i in range(size(shape))])
    if notes is None:
        return _build(shape, cells)
    return _watched(shape, cells, (), notes, [] if watched is None else watched)


def _at(state, path):
    for i in path:
        if not isinstance(state, tuple) or i >= tuple.__len__(state):
            return None
        state = tuple.__getitem__(state, i)
    return state


def _looked_into(shape, tree, notes: set, moved: set) -> frozenset:
    """The outermost plain tuples of the pre-state a tree never looked into: noted by none of
    its paths, left in place in every post-state, their cells read nowhere but there."""
    pre = spans(shape)
    tuples = {path for path in pre if path and subshape(shape, path)[0] is tuple}
    seen = set(notes) | moved
    while True:
        quiet = {p for p in tuples if not any(s[:len(p)] == p for s in seen)}
        outer = {p for p in quiet if not any(p[:k] in quiet for k in range(1, len(p)))}
        read = _cells_read(tree, outer)
        now = {p for p in outer if any(pre[p][0] <= c < pre[p][1] for c in read)}
        if not now:
            return frozenset(outer)
        seen |= now


def _cells_read(node, untouched: set) -> set:
    """The cells a tree reads, but for a post-state's copies of the `untouched` tuples."""
    out: set = set()
    copies: dict = {}  # post shape -> the spans of its untouched tuples (ends share shapes)
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, Branch):
            cells_of(node.expr, out)
            stack.extend(child for _v, child in node.children)
            continue
        cells_of(node.errno, out)
        cells_of(node.value, out)
        cells_of(node.expr, out)
        if node.kind == "out":
            copied = copies.get(node.shape)
            if copied is None:
                copied = copies[node.shape] = [span for path, span in spans(node.shape).items()
                                               if path in untouched]
            for j, x in enumerate(node.cells):
                if not any(lo <= j < hi for lo, hi in copied):
                    cells_of(x, out)
    return out


def trace_call(profile, config, call, shape, learned: dict, oracle: dict | None = None,
               untouched: list | None = None):
    """The decision tree of one call on every state of one shape; with `untouched`, the
    outermost plain tuples of the pre-state it never looked into are appended there."""
    t = profile.transitions[call.name]
    disciplined = profile.disciplined(config)
    notes: set | None = None if untouched is None else set()
    watched: list = []
    moved: set = set()
    pre = symbolic_state(shape, notes, watched)

    def run(tracer):
        view = traced_view(profile, config, pre)
        errno = run_concrete(view, t, call.args, disciplined)
        if errno is None:
            return End("none")
        post = view.post()
        moved.update(w.path for w in watched if _at(post, w.path) is not w)
        post_shape, cells = flatten(post)
        return End("out", errno=tracer.resolve(errno), shape=post_shape,
                    cells=tuple(tracer.resolve(c) for c in cells))

    tree = explore_paths(run, learned, f"{call} on shape {hash(shape) & 0xffff:04x}", oracle,
                         widest(shape))
    if untouched is not None:
        untouched.append(_looked_into(shape, tree, notes, moved))
    return tree


def trace_predicate(profile, config, predicate, shape, learned: dict, what: str,
                    oracle: dict | None = None, untouched: list | None = None):
    """The decision tree of a state predicate (an `always` property) on one shape (`untouched`
    as for `trace_call`)."""
    notes: set | None = None if untouched is None else set()
    pre = symbolic_state(shape, notes)

    def run(tracer):
        return End("value", value=tracer.resolve(truth(predicate(traced_view(profile, config,
                                                                               pre)))))

    tree = explore_paths(run, learned, what, oracle, widest(shape))
    if untouched is not None:
        untouched.append(_looked_into(shape, tree, notes, set()))
    return tree


def unchanged(leaf: End, shape) -> bool:
    """Whether an "out" end keeps every cell of its pre-state shape as it was."""
    return leaf.shape == shape and all(
        isinstance(c, Sym) and c.op == "cell" and c.args[0] == i for i, c in enumerate(leaf.cells))

