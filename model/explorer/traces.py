"""Shortest traces, replayed on concrete states from the initial state."""

from __future__ import annotations

from model.explorer.results import Exploration, TraceStep
from model.transitions import ERRNO_NAMES


class _Where:
    """A view that notes, for each quantifier (`forall_<kind>`) that fails, the first index at
    which it does: where a state breaks a property, in the profile's own kinds."""

    def __init__(self, view):
        self._view = view
        self.found: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._view, name)
        if not name.startswith("forall_"):
            return attr
        plural = name.removeprefix("forall_")
        kind = plural[:-3] + "y" if plural.endswith("ies") else plural.removesuffix("s")

        def forall(pred):
            def noting(*idx):
                held = pred(*idx)
                if not held and len(self.found) < 3:
                    self.found.append(f"{kind} {', '.join(str(i) for i in idx)}")
                return held
            return attr(noting)
        return forall


def where(result: Exploration, prop, state) -> str:
    """The indexes at which a state breaks a state property (e.g. "page 1"), or ""."""
    if prop is None or prop.state is None:
        return ""
    view = _Where(result.profile.view(result.config, state))
    prop.state(view)
    return "; ".join(dict.fromkeys(view.found))


class Asymmetric(Exception):
    """The protocol explored does not treat renamed states alike: symmetry would be unsound."""


def errno_known(errno: int) -> bool:
    """Success, or a negative errno the kernel knows (anything else breaks `errno_known`)."""
    return errno == 0 or (errno < 0 and errno in ERRNO_NAMES)


def _path(result: Exploration, node: int) -> list[tuple[int, int]]:
    """(node, call index into it) along the BFS tree from the root, root excluded."""
    path = []
    while result.parent[node] != -1:
        path.append((node, result.via[node]))
        node = result.parent[node]
    path.reverse()
    return path


def trace(result: Exploration, where: tuple, prop: str | None) -> list:
    """The shortest trace to `where`, replayed on concrete states from the initial state.

    Under symmetry the BFS tree links representatives: the call that leads from one node to the
    next was made on the representative, not on the state the trace is in. So the trace is
    replayed: from the concrete state, the first call (in `calls` order) of the same transition
    whose successor has the next node's representative is taken. The last step of a step
    violation is the first call from the last state that violates the property."""
    profile, config = result.profile, result.config
    canon = result.sym.canonical
    node = where[1]
    state = profile.initial_state(config)
    steps = []
    for target, ci in _path(result, node):
        name = result.calls[ci].name
        want = result.states[target]
        chosen = None
        for call in [result.calls[ci]] + [c for c in result.calls if c.name == name]:
            outcome = profile.step(config, state, call)
            if outcome is not None and outcome.errno == 0 and canon(outcome.state) == want:
                chosen = (call, outcome)
                break
        if chosen is None:  # the renaming does not commute with this transition (a mutant's)
            raise Asymmetric(f"{result.calls[ci]} does not replay on a renamed state")
        call, outcome = chosen
        steps.append(TraceStep(call, outcome.errno, state, outcome.state))
        state = outcome.state
    if where[0] == "crash":
        name = result.calls[where[2]].name
        for call in [result.calls[where[2]]] + [c for c in result.calls if c.name == name]:
            try:
                profile.step(config, state, call)
            except Exception:  # noqa: BLE001 - the crash being reported
                steps.append(TraceStep(call, None, state, state))
                break
    if where[0] == "step":
        ci = where[2]
        name = result.calls[ci].name
        props = result.props
        pre = profile.view(config, state)
        for call in [result.calls[ci]] + [c for c in result.calls if c.name == name]:
            outcome = profile.step(config, state, call)
            if outcome is None:
                continue
            post = profile.view(config, outcome.state)
            if prop in props and props[prop].step and props[prop].step(
                    call.name, outcome.errno, pre, post):
                continue
            if prop == "errno_known" and errno_known(outcome.errno):
                continue
            if prop not in props and prop != "errno_known" and outcome.errno == 0:
                continue
            steps.append(TraceStep(call, outcome.errno, state, outcome.state))
            break
    return steps


def trace_of(result: Exploration, node: int) -> list:
    """The shortest trace from the initial state to a node (replayed on concrete states)."""
    return trace(result, ("state", node), None)
