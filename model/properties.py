"""What must always hold, what must sometimes happen, and what the reachable graph must show,
as values (in the spirit of stateright), for every protocol.

State and step predicates are written once against a profile's view vocabulary and read by the
explorer (concretely), the prover and bounded model checking (symbolically). Graph properties
are stated by the profile as predicates on concrete states and checked on a complete
exploration by the machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Property:
    name: str
    kind: str  # "always" or "sometimes"
    doc: str  # one line, in the protocol's vocabulary
    state: Callable | None = None  # predicate over a view of one state
    step: Callable | None = None  # predicate over (call name, errno, pre view, post view)


@dataclass(frozen=True)
class GraphProperty:
    """A property of the complete reachable graph.

    kind "return": from every reachable state some state with `target(config, state)` is
    reachable (nothing stranded). kind "progress": every reachable state has a successor other
    than itself, unless `target(config, state)` (a final state)."""

    name: str
    kind: str
    doc: str
    target: Callable


def always(fn: Callable) -> Property:
    """A state invariant from a predicate `fn(s)`; its docstring is its one-line statement."""
    return Property(fn.__name__, "always", (fn.__doc__ or fn.__name__).strip(), state=fn)


def always_step(fn: Callable) -> Property:
    """A step invariant from `fn(call, errno, pre, post)`."""
    return Property(fn.__name__, "always", (fn.__doc__ or fn.__name__).strip(), step=fn)


def succeeds(name: str) -> Property:
    """`sometimes`: the transition can succeed (every transition must, or the model is vacuous)."""
    return Property(f"{name}_succeeds", "sometimes", f"{name} can succeed",
                    step=lambda call, errno, pre, post: call == name and errno == 0)


def check_then_commit(call, errno, pre, post):
    """A call that fails changes nothing."""
    return pre.Implies(errno != 0, pre.same_state(post))
