"""Expressions over the cells of one state: what a traced body computes, before it is printed.

A `Sym` is an immutable tree (hashable, compared by structure) over `cell` leaves and Python
integers. Arithmetic and comparisons build trees, folding constants at once, so that a body run
on a state of `Sym` cells computes its answer as an expression. The one thing an expression
cannot do is become a Python bool or int: that asks the active tracer (`model/codegen/trace.py`)
to decide, which is where the generated code branches.
"""

from __future__ import annotations

import operator

BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "floordiv": operator.floordiv, "mod": operator.mod, "and_": operator.and_,
    "or_": operator.or_, "xor": operator.xor, "lshift": operator.lshift, "rshift": operator.rshift,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
    "gt": operator.gt, "ge": operator.ge,
}
UNARY = {"neg": operator.neg, "invert": operator.invert}
COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
NEGATED = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "le": "gt", "gt": "le"}
SWAPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "gt": "lt", "le": "ge", "ge": "le"}

ACTIVE: list = []  # the tracer deciding truth tests and int conversions (innermost last)


class Sym:
    """One expression node: `op` and `args` (Syms or ints)."""

    __slots__ = ("op", "args", "_hash")

    def __init__(self, op: str, args: tuple):
        self.op = op
        self.args = args
        self._hash = hash((op, *(a._hash if isinstance(a, Sym) else a for a in args)))

    def __hash__(self):
        """A state value as a dict key or set member names one value: the tracer decides it."""
        return hash(ACTIVE[-1].decide_int(self))

    def same(self, other) -> bool:
        """Structural equality (`==` builds an expression instead)."""
        return isinstance(other, Sym) and self._hash == other._hash and self.op == other.op \
            and len(self.args) == len(other.args) \
            and all(a is b or (a.same(b) if isinstance(a, Sym) else
                               not isinstance(b, Sym) and a == b and type(a) is type(b))
                    for a, b in zip(self.args, other.args))

    def __repr__(self):
        return f"{self.op}{self.args}" if self.op != "cell" else f"c{self.args[0]}"

    def __reduce__(self):
        """Rebuilt from op and args (the hash of a str differs from one process to the next)."""
        return Sym, (self.op, self.args)

    # -- becoming a Python value: the tracer decides ----------------------------------------
    def __bool__(self):
        return ACTIVE[-1].decide_bool(self)

    def __index__(self):
        return ACTIVE[-1].decide_int(self)

    __int__ = __index__

    def __iter__(self):
        raise TypeError("iteration over a state value")


class _Key:
    """A Sym as a dict key by structure (Sym.__eq__ builds an expression)."""

    __slots__ = ("sym",)

    def __init__(self, sym):
        self.sym = sym

    def __reduce__(self):
        return _Key, (self.sym,)

    def __hash__(self):
        return self.sym._hash

    def __eq__(self, other):
        return isinstance(other, _Key) and same(self.sym, other.sym)


def key(x):
    return _Key(x) if isinstance(x, Sym) else (type(x) is bool, x)  # True and 1 differ here


def same(a, b) -> bool:
    if isinstance(a, Sym):
        return a.same(b)
    return not isinstance(b, Sym) and a == b


def cell(i: int) -> Sym:
    return Sym("cell", (i,))


def _norm(x):
    """Plain ints for constants (IntEnum and bool members print and compare as numbers)."""
    return x if isinstance(x, Sym) else int(x)


def binary(op: str, a, b):
    if not isinstance(a, Sym) and not isinstance(b, Sym):
        return BINARY[op](a, b)
    a, b = _norm(a), _norm(b)
    if op in COMPARISONS and same(a, b):
        return op in ("eq", "le", "ge")
    if op in ("add", "sub", "or_", "xor") and not isinstance(b, Sym) and b == 0:
        return a
    if op == "add" and not isinstance(a, Sym) and a == 0:
        return b
    if op == "mul" and not isinstance(b, Sym) and b == 1:
        return a
    return Sym(op, (a, b))


def unary(op: str, a):
    if not isinstance(a, Sym):
        return UNARY[op](a)
    return Sym(op, (a,))


def truth(x):
    """x as a boolean expression (Python truthiness: non-zero)."""
    if not isinstance(x, Sym):
        return bool(x)
    if x.op in COMPARISONS or x.op in ("and", "or", "not"):
        return x
    return Sym("ne", (x, 0))


def negate(x):
    if not isinstance(x, Sym):
        return not x
    x = truth(x)
    if x.op in NEGATED:
        return Sym(NEGATED[x.op], x.args)
    if x.op == "not":
        return x.args[0]
    return Sym("not", (x,))


def _junction(xs, absorbing: bool, op: str):
    """A conjunction (absorbing False) or disjunction (absorbing True), constants folded."""
    out = []
    for x in xs:
        x = truth(x)
        if x is absorbing:
            return absorbing
        if x is not (not absorbing):
            out.append(x)
    return (not absorbing) if not out else out[0] if len(out) == 1 else Sym(op, tuple(out))


def conj(*xs):
    return _junction(xs, False, "and")


def disj(*xs):
    return _junction(xs, True, "or")


def ite(c, a, b):
    if not isinstance(c, Sym):
        return a if c else b
    if same(a, b):
        return a
    return Sym("ite", (truth(c), _norm(a), _norm(b)))


def _install() -> None:
    for name in BINARY:
        dunder = name.rstrip("_")
        setattr(Sym, f"__{dunder}__", lambda a, b, op=name: binary(op, a, b))
        if name not in COMPARISONS:
            setattr(Sym, f"__r{dunder}__", lambda a, b, op=name: binary(op, b, a))
    Sym.__neg__ = lambda a: unary("neg", a)
    Sym.__invert__ = lambda a: unary("invert", a)
    Sym.__pos__ = lambda a: a


_install()


def substitute(x, env: dict, memo: dict | None = None):
    """x with the cells `env` binds replaced by their values, refolded."""
    if not isinstance(x, Sym):
        return x
    if memo is None:
        memo = {}
    found = memo.get(id(x))
    if found is not None:
        return found[1]
    if x.op == "cell":
        out = env.get(x.args[0], x)
    else:
        args = [substitute(a, env, memo) for a in x.args]
        if all(a is b for a, b in zip(args, x.args)):
            out = x
        else:
            out = rebuild(x.op, args)
    memo[id(x)] = (x, out)
    return out


def rebuild(op: str, args):
    if op in BINARY:
        return binary(op, *args)
    if op in UNARY:
        return unary(op, *args)
    if op == "and":
        return conj(*args)
    if op == "or":
        return disj(*args)
    if op == "not":
        return negate(args[0])
    if op == "ite":
        return ite(*args)
    raise ValueError(op)


def cells_of(x, out: set | None = None) -> set:
    out = set() if out is None else out
    if isinstance(x, Sym):
        if x.op == "cell":
            out.add(x.args[0])
        else:
            for a in x.args:
                cells_of(a, out)
    return out
