"""The staging check: transitions and properties must not branch in Python on state values.

Every transition and property is written once and read on values (explorer) and on z3 terms
(prover). A Python `if`, `and`, `or`, `not`, `while`, `min`, `range` or indexing on a state value
works on values but silently takes one branch on z3 terms: `bool(x == 3)` is False for a z3
`x`, it does not raise. This reading runs every body and predicate once on tracers, values that
stand for any state value and refuse to become a Python bool, int or index, so that such code
is refused when a profile or an extension is loaded, naming the transition or property and the
line. Branching belongs in the vocabulary: `s.If`, `s.And`, `s.when(...)`.
"""

from __future__ import annotations

import inspect
import traceback
from contextlib import contextmanager


class StagingError(Exception):
    """A transition or property branches in Python on a state value."""


class _Refused(Exception):
    pass


class Tracer:
    """Any value read from the state, or computed from one."""

    __slots__ = ()

    def _op(self, *_args):
        return TRACER

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _op
    __floordiv__ = __rfloordiv__ = __truediv__ = __rtruediv__ = __mod__ = __rmod__ = _op
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = _op
    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = __pow__ = __rpow__ = _op
    __neg__ = __pos__ = __invert__ = __abs__ = _op
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _op
    __hash__ = object.__hash__

    def __call__(self, *args, **kwargs):
        return TRACER

    def __getattr__(self, name):
        return TRACER

    def __getitem__(self, key):
        return TRACER

    def __bool__(self):
        raise _Refused("a Python truth test (if, and, or, not, while) on a state value")

    def __index__(self):
        raise _Refused("a state value used as a Python index or range bound")

    def __int__(self):
        raise _Refused("a state value turned into a Python int")

    def __iter__(self):
        raise _Refused("iteration over a state value")

    def __len__(self):
        raise _Refused("len() of a state value")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


TRACER = Tracer()


def _arity(fn) -> int:
    params = inspect.signature(fn).parameters.values()
    return sum(1 for p in params if p.default is p.empty
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


class StagedView:
    """A view whose every read is a tracer; callbacks (quantifier bodies, per-index checks and
    values) are called with tracers; connectives and checks give tracers; writes do nothing.
    `transitions` lets nested calls (`delegate`) run their callee's body too."""

    def __init__(self, config, transitions: dict):
        self.config = config
        self.transitions = transitions

    def __getattr__(self, name):
        def read(*args, **kwargs):
            for a in (*args, *kwargs.values()):
                if callable(a) and not isinstance(a, Tracer):
                    a(*[TRACER] * _arity(a))
            return TRACER
        return read

    @contextmanager
    def when(self, cond):
        yield

    def note_call(self, name, args):
        pass


def _where(err: BaseException) -> str:
    """file:line of the innermost frame outside this module."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename != __file__:
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def check_profile(profile) -> None:
    """Run every transition body and property once on tracers; StagingError on the first one
    that branches in Python on a state value (or fails in any other way on tracers)."""
    config = profile.adjust(profile.default_config())
    view = StagedView(config, profile.transitions)

    def attempt(what: str, run) -> None:
        try:
            run()
        except _Refused as err:
            raise StagingError(f"{what} ({_where(err)}): {err}; write it with s.If / s.And / "
                               "s.when so that the prover reads it too") from None
        except RecursionError:
            raise StagingError(f"{what}: nested calls do not terminate") from None

    for t in profile.transitions.values():
        args = [TRACER] * len(t.params)
        attempt(f"transition {t.name}", lambda t=t, args=args: [None for _ in t.body(view, *args)])
        for guard, kind in ((t.discipline, "discipline"), (t.bound, "bound")):
            if guard is not None:
                attempt(f"the {kind} of {t.name}", lambda g=guard, args=args: g(view, *args))
    for name, fn in profile.reads:
        attempt(f"the redefined read {name}",
                lambda fn=fn: fn(view, *[TRACER] * max(_arity(fn) - 1, 0)))
    names = list(profile.transitions) or ["-"]
    for prop in profile.properties.values():
        if prop.state is not None:
            attempt(f"property {prop.name}", lambda p=prop: p.state(view))
        if prop.step is not None:
            for name in names:
                attempt(f"property {prop.name}",
                        lambda p=prop, n=name: p.step(n, TRACER, view, StagedView(config, {})))
