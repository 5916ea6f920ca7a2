"""What a transition is, for every protocol: a named generator of labelled checks, then writes.

A transition body takes a view `s` (a reading of one state: concrete values for the explorer
and conformance, z3 terms for the prover, tracers for the staging check) and its arguments. It
yields its checks in the kernel's order, each `s.require(ok, errno, label)` (0 or -errno; the
label is the check's kernel-style name, so that an extension or a mutant drops or changes a
check by name), then writes the new values. Reads always see the pre-state. A profile collects
its transitions in a `Protocol`; the machinery reads them only through the profile.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

EHWPOISON = getattr(_errno, "EHWPOISON", 133)  # Linux's value; Python's errno may lack it
ERRNO_NAMES = {**{-code: name for code, name in _errno.errorcode.items()}, -EHWPOISON: "EHWPOISON"}
ERRNO_CODES = {name: code for code, name in ERRNO_NAMES.items()}


def name_outcomes(names: dict[int, str]) -> None:
    """A profile names outcomes of its calls that are not errnos (a KVM_RUN exit, a signal):
    negative codes, reported, parsed in scenario files and accepted as known like errnos."""
    for code, name in names.items():
        if code >= 0 or ERRNO_NAMES.get(code, name) != name:
            raise ValueError(f"outcome {name} = {code}: codes are negative and new")
        ERRNO_NAMES[code] = name
        ERRNO_CODES[name] = code


def errno_name(errno: int | None, unanswered: str = "-") -> str:
    """`ok` for success, else the kernel's name of the (negative) errno, e.g. `-EPERM`; a call
    that got no answer (a side that crashed or was not asked) reads `unanswered`."""
    if errno is None:
        return unanswered
    if errno == 0:
        return "ok"
    name = ERRNO_NAMES.get(errno)
    return f"-{name}" if name else str(errno)


@dataclass(frozen=True)
class Transition:
    name: str
    initiator: str
    completer: str
    params: tuple[str, ...]  # named after the argument kinds the profile's domains know
    body: Callable
    discipline: Callable | None = None  # caller-side guard: the caller never issues it otherwise
    bound: Callable | None = None  # exploration bound on an unbounded counter (not assumed)
    doc: str = ""

    def call(self, *args) -> Call:
        return Call(self.name, tuple(args), self.params)


def _params(body: Callable) -> tuple[str, ...]:
    code = body.__code__
    return tuple(code.co_varnames[1:code.co_argcount])


class Protocol:
    """The transitions of one protocol, in a fixed order (the order of exploration)."""

    def __init__(self, transitions: dict[str, Transition] | None = None):
        self.transitions: dict[str, Transition] = dict(transitions or {})

    def transition(self, initiator: str, completer: str, discipline: Callable | None = None,
                   bound: Callable | None = None, name: str | None = None):
        """Register a transition; its parameters are named after the argument kinds."""

        def register(body):
            t = Transition(name or body.__name__, initiator, completer, _params(body), body,
                           discipline, bound, (body.__doc__ or "").strip())
            self.transitions[t.name] = t
            return body

        return register


class Call(NamedTuple):
    """One call: a transition name and its arguments, in parameter order. `params` only names
    the arguments for display: two calls are equal when name and arguments are."""

    name: str
    args: tuple
    params: tuple = ()

    def __str__(self):
        if len(self.params) != len(self.args):
            return f"{self.name}({', '.join(str(a) for a in self.args)})"
        return f"{self.name}({', '.join(f'{p}={a}' for p, a in zip(self.params, self.args))})"

    def __eq__(self, other):
        return isinstance(other, tuple) and self[:2] == other[:2]

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.name, self.args))


class Outcome(NamedTuple):
    errno: int  # 0 on success, else the negative errno the kernel returns
    state: object


def delegate(s, callee: str, *args):
    """One call making another, whole (a hole punch makes a kernel hypercall): the callee is the
    protocol's current one (an extension or mutant of it reaches its callers too), and the view
    notes the call so that the prover can reuse the callee's proofs for this branch."""
    s.note_call(callee, args)
    yield from s.transitions[callee].body(s, *args)


def run_concrete(view, t: Transition, args: tuple, discipline: bool) -> int | None:
    """Run a body on a concrete view: the first failing check's errno, 0, or None when the
    (disciplined, bounded) caller never makes the call."""
    if discipline and t.discipline and not t.discipline(view, *args):
        return None
    if t.bound and not t.bound(view, *args):
        return None
    for errno in t.body(view, *args):
        if errno:
            return errno
    return 0


def unbounded(transitions: dict[str, Transition]) -> dict[str, Transition]:
    """The protocol without its exploration bounds: walks and scenarios are not bounded
    explorations. Caller disciplines stay."""
    return {name: replace(t, bound=None) if t.bound else t for name, t in transitions.items()}


def product(domains: list) -> list[tuple]:
    """Every tuple of one value per domain, first domain slowest (a fixed order)."""
    if not domains:
        return [()]
    return [(x, *rest) for x in domains[0] for rest in product(domains[1:])]
