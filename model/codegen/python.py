"""The Python backend: each traced call compiled to a Python function over a packed state.

A packed state is a tuple `(shape id, cell 0, cell 1, ...)` (`Compiled.pack`); the function of
(call, shape) returns `(errno, packed successor)`, or None when the caller never makes the call,
exactly what `profile.step` answers on the unpacked state. Functions are compiled when a shape
is first met. A path that needs an integer the trace was not told of raises `_Unknown`: the
value is learned, the call traced again, and the step answered; a path the concrete reading
would crash on (or that no reachable state takes) falls back to `profile.step` itself.
`check` holds the compiled steps against `profile.step` on given states.
"""

from __future__ import annotations

import time

from model.codegen.expr import Sym, key
from model.codegen.share import mask, relocate
from model.codegen.trace import LAZY, OTHER, End, build, flatten, trace_call, \
    trace_predicate, unchanged
from model.transitions import Outcome

_PY = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "mod": "%", "and_": "&",
       "or_": "|", "xor": "^", "lshift": "<<", "rshift": ">>", "eq": "==", "ne": "!=",
       "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


_TRUTH = frozenset(("and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge"))


class _Unknown(Exception):
    def __init__(self, site: int, value: int):
        super().__init__(site, value)
        self.site, self.value = site, value


class Disagreement(AssertionError):
    """The compiled code and the concrete reading answer one call differently."""


def expression(x, ops: dict = _PY) -> str:
    """Python source of an expression; cell i is `c[i + 1]` of the packed state."""
    if not isinstance(x, Sym):
        return repr(int(x)) if not isinstance(x, bool) else repr(x)
    op, args = x.op, x.args
    if op == "cell":
        return f"c[{args[0] + 1}]"
    if op in ops:
        return f"({expression(args[0], ops)} {ops[op]} {expression(args[1], ops)})"
    if op == "neg":
        return f"(-{expression(args[0], ops)})"
    if op == "invert":
        return f"(~{expression(args[0], ops)})"
    if op == "not":
        return f"(not {expression(args[0], ops)})"
    if op in ("and", "or"):
        return "(" + f" {op} ".join(expression(a, ops) for a in args) + ")"
    if op == "ite":
        c, a, b = (expression(a, ops) for a in args)
        return f"({a} if {c} else {b})"
    raise ValueError(op)


def _weight(node) -> int:
    return 1 if isinstance(node, End) else sum(_weight(c) for _v, c in node.children)


class _Emitter:
    """Python source of one decision tree (early returns keep it shallow)."""

    def __init__(self, leaf_code):
        self.lines: list[str] = []
        self.sites: list = []  # the integer expression of each `_Unknown` site
        self.temps = 0
        self.leaf_code = leaf_code

    def emit(self, node, depth: int) -> None:
        pad = "    " * depth
        if isinstance(node, End):
            self.lines.append(pad + self.leaf_code(node))
            return
        if node.kind == "bool":
            (_t, yes), (_f, no) = sorted(node.children, key=lambda vc: not vc[0])
            cond = expression(node.expr)
            if _weight(yes) > _weight(no):
                cond, yes, no = f"not {cond}", no, yes
            self.lines.append(f"{pad}if {cond}:")
            self.emit(yes, depth + 1)
            self.emit(no, depth)
            return
        temp = f"v{self.temps}"
        self.temps += 1
        value = expression(node.expr)
        if node.expr.op in _TRUTH:
            value = f"bool({value})"
        self.lines.append(f"{pad}{temp} = {value}")
        for value, child in node.children:
            if value is not OTHER:
                self.lines.append(f"{pad}if {temp} == {value}:")
                self.emit(child, depth + 1)
        self.sites.append(node.expr)
        self.lines.append(f"{pad}raise _Unknown({len(self.sites) - 1}, {temp})")


class Compiled:
    """The compiled steps (and `always` state properties) of one profile and configuration."""

    def __init__(self, profile, config, properties: bool = False, cache=None):
        self.profile, self.config = profile, config
        self.calls = profile.calls(config)
        self.shapes: list = []
        self._shape_ids: dict = {}
        self.table: dict[int, list] = {}  # shape id -> function per call
        self.invariants: dict[int, list] = {}  # shape id -> function per always property
        self.learned: dict = {}  # (slot, shape id) -> {expression key: values}
        self.trees: dict = {}  # (slot, shape id) -> its decision tree, as last made
        self.sources: dict = {}  # (slot, shape id) -> (source, sites) of its Python function
        self.made: list = []  # (slot, shape id) of every tree made or remade, in order
        self.shared: dict[int, list] = {}  # slot -> (untouched paths, mask, shape id, tree)
        self.lazy: set = set()  # transitions (and properties) traced lazily somewhere
        self.cache = cache  # a `TraceCache`, or None
        if cache is not None:
            self.lazy |= cache.lazy
        self.traced = self.reused = self.cached = 0  # trees traced, shared, read from the cache
        self.fallbacks = 0
        self.compile_seconds = 0.0
        self.always = [p for p in profile.always if p.state] if properties else []

    # -- packing -----------------------------------------------------------------------------
    def shape_id(self, shape) -> int:
        sid = self._shape_ids.get(shape)
        if sid is None:
            sid = self._shape_ids[shape] = len(self.shapes)
            self.shapes.append(shape)
        return sid

    def pack(self, state) -> tuple:
        shape, cells = flatten(state)
        return (self.shape_id(shape), *(int(c) for c in cells))

    def unpack(self, packed: tuple):
        return build(self.shapes[packed[0]], packed[1:])

    # -- compiling ---------------------------------------------------------------------------
    def functions(self, sid: int) -> list:
        """The function of every call on a shape (the Python search's fast path)."""
        fns = self._row(self.table, sid, len(self.calls))
        if None in fns:
            for ci, fn in enumerate(fns):
                if fn is None:
                    fns[ci] = self._compile(ci, sid)
        return fns

    def function(self, slot: int, sid: int):
        """The function of one call (slot >= 0) or always property (slot -1 - i) on a shape,
        compiled when first asked for."""
        if slot >= 0:
            fns, at = self._row(self.table, sid, len(self.calls)), slot
        else:
            fns, at = self._row(self.invariants, sid, len(self.always)), -1 - slot
        fn = fns[at]
        if fn is None:
            fn = fns[at] = self._compile(slot, sid)
        return fn

    @staticmethod
    def _row(table: dict, sid: int, n: int) -> list:
        fns = table.get(sid)
        if fns is None:
            fns = table[sid] = [None] * n
        return fns

    def trees_of(self, sid: int) -> None:
        """Every call's and always property's tree on a shape, without Python functions (what
        the native search encodes)."""
        start = time.perf_counter()
        for slot in range(-len(self.always), len(self.calls)):
            self.tree(slot, sid)
        self.compile_seconds += time.perf_counter() - start

    def tree(self, slot: int, sid: int, oracle: dict | None = None):
        """The decision tree of a call (slot >= 0) or an always property (slot -1 - i) on a
        shape; with an oracle (the cells of a state it did not cover), made again to learn."""
        tree = None if oracle is not None else self.trees.get((slot, sid))
        if tree is None:
            tree = self.trees[(slot, sid)] = self._made(slot, sid, oracle)
            self.made.append((slot, sid))
        return tree

    def _made(self, slot: int, sid: int, oracle: dict | None):
        """Read from the cache, traced on this shape, or the tree of a shape that differs only
        where the call never looks."""
        shape = self.shapes[sid]
        if oracle is None and self.cache is not None:
            hit = self.cache.get(self._key(slot), shape)
            if hit is not None:
                self.cached += 1
                self.learned[(slot, sid)], tree = hit
                return tree
        learned = self.learned.setdefault((slot, sid), {})
        if self._name(slot) in self.lazy:  # too many paths for another call or shape of it:
            # not tried eagerly again (a failed eager trace costs hundreds of paths)
            learned.setdefault(LAZY, [])
        if oracle is None:
            for paths, masked, source, tree in self.shared.get(slot, ()):
                if mask(shape, paths) == masked:
                    self.reused += 1
                    return relocate(tree, self.shapes[source], shape, paths)
        untouched: list = []
        if slot >= 0:
            tree = trace_call(self.profile, self.config, self.calls[slot], shape, learned,
                              oracle, untouched)
        else:
            prop = self.always[-1 - slot]
            tree = trace_predicate(self.profile, self.config, prop.state, shape, learned,
                                   f"property {prop.name}", oracle, untouched)
        self.traced += 1
        if LAZY in learned:
            self.lazy.add(self._name(slot))
        else:  # a lazy tree holds only the paths of the states it was shown: not shared
            paths = untouched[0]
            self.shared.setdefault(slot, []).insert(0, (paths, mask(shape, paths), sid, tree))
        return tree

    def _key(self, slot: int) -> str:
        return str(self.calls[slot]) if slot >= 0 else f"always {self.always[-1 - slot].name}"

    def save(self) -> None:
        """Every tree made, with what it learned, into the cache (if there is one)."""
        if self.cache is not None:
            self.cache.save({(self._key(slot), self.shapes[sid]): (self.learned[(slot, sid)],
                                                                    tree)
                             for (slot, sid), tree in self.trees.items()}, self.lazy)

    def _name(self, slot: int):
        return self.calls[slot].name if slot >= 0 else slot

    def _compile(self, slot: int, sid: int, oracle: dict | None = None):
        start = time.perf_counter()
        tree = self.tree(slot, sid, oracle)
        emitter = _Emitter(self._leaf_code(sid) if slot >= 0 else _value_code)
        emitter.emit(tree, 1)
        name = f"call{slot}" if slot >= 0 else f"prop{-1 - slot}"
        source = f"def {name}(c):\n" + "\n".join(emitter.lines) + "\n"
        scope = {"_Unknown": _Unknown, "_fallback": self._fallback(slot)}
        exec(compile(source, f"<codegen {name} shape {sid}>", "exec"), scope)
        self.sources[(slot, sid)] = (source, emitter.sites)
        self.compile_seconds += time.perf_counter() - start
        return scope[name]

    def learn(self, slot: int, packed: tuple) -> None:
        """The tree of a call (or always property) made again with one state's cells as an
        oracle: it learns the state's path, without compiling a Python function."""
        start = time.perf_counter()
        self.tree(slot, packed[0], dict(enumerate(packed[1:])))
        self.compile_seconds += time.perf_counter() - start

    def relearn(self, slot: int, packed: tuple, why: _Unknown):
        """A compiled function met a value it was not told of: learn it, compile the function
        again, and answer (learning as often as the state needs)."""
        sid = packed[0]
        table = self.table[sid] if slot >= 0 else self.invariants[sid]
        at = slot if slot >= 0 else -1 - slot
        oracle = dict(enumerate(packed[1:]))
        while True:
            if why.site >= 0:  # an integer site; -1: a path a lazy trace was not shown yet
                sites = self.sources[(slot, sid)][1]
                self.learned[(slot, sid)].setdefault(key(sites[why.site]), set()).add(
                    why.value)
            table[at] = self._compile(slot, sid, oracle)
            try:
                return table[at](packed)
            except _Unknown as again:
                why = again

    def _leaf_code(self, sid: int):
        def code(leaf: End) -> str:
            if leaf.kind == "none":
                return "return None"
            if leaf.kind == "unknown":
                return "raise _Unknown(-1, 0)"
            if leaf.kind == "crash":
                return "return _fallback(c)"
            errno = expression(leaf.errno)
            if unchanged(leaf, self.shapes[sid]):
                return f"return ({errno}, c)"
            cells = "".join(f", {expression(x)}" for x in leaf.cells)
            return f"return ({errno}, ({self.shape_id(leaf.shape)}{cells}))"
        return code

    def _fallback(self, slot: int):
        """The concrete reading, for a path the trace left to it."""
        def fallback(c):
            self.fallbacks += 1
            state = self.unpack(c)
            if slot < 0:
                return bool(self.always[-1 - slot].state(self.profile.view(self.config, state)))
            out = self.profile.step(self.config, state, self.calls[slot])
            return None if out is None else (out.errno, self.pack(out.state))
        return fallback

    # -- stepping ----------------------------------------------------------------------------
    def step(self, packed: tuple, ci: int):
        """(errno, packed successor) or None, as `profile.step` on the unpacked state."""
        try:
            return self.function(ci, packed[0])(packed)
        except _Unknown as why:
            return self.relearn(ci, packed, why)

    def holds(self, packed: tuple, i: int) -> bool:
        """Whether always property i holds in the state."""
        try:
            return bool(self.function(-1 - i, packed[0])(packed))
        except _Unknown as why:
            return bool(self.relearn(-1 - i, packed, why))

    def outcome(self, packed: tuple, ci: int) -> Outcome | None:
        out = self.step(packed, ci)
        return None if out is None else Outcome(out[0], self.unpack(out[1]))


def _value_code(leaf: End) -> str:
    if leaf.kind == "value":
        return f"return {expression(leaf.value)}"
    if leaf.kind == "unknown":
        return "raise _Unknown(-1, 0)"
    return "return _fallback(c)"


def compiled_successors(profile, config, properties: bool = False) -> Compiled:
    """The compiled steps of a configuration (what an explorer calls instead of `profile.step`):
    `pack` a state, then `step(packed, i)` answers call i (`functions(packed[0])[i](packed)`
    is the fast path, raising `_Unknown` for `relearn`)."""
    config.validate()
    return Compiled(profile, config, properties)


def check(compiled: Compiled, states) -> int:
    """Every call on every state, compiled against `profile.step`; the number of answers
    compared. Disagreement names the first call and state that differ."""
    profile, config = compiled.profile, compiled.config
    n = 0
    for state in states:
        packed = compiled.pack(state)
        for ci, call in enumerate(compiled.calls):
            want = profile.step(config, state, call)
            got = compiled.outcome(packed, ci)
            n += 1
            if (want is None) != (got is None) or want is not None and (
                    want.errno != got.errno or want.state != got.state):
                raise Disagreement(f"{call} on {state}: concrete {want}, compiled {got}")
        for i, prop in enumerate(compiled.always):
            want = bool(prop.state(profile.view(config, state)))
            got = compiled.holds(packed, i)
            if want != got:
                raise Disagreement(f"property {prop.name} on {state}: concrete {want}, "
                                   f"compiled {got}")
    return n
