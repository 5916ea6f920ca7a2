"""Shortest traces, replayed on concrete states from the initial state."""

from __future__ import annotations

from model.clauses import Blame, blame_state, blame_step
from model.explorer.results import Exploration, TraceStep
from model.transitions import ERRNO_NAMES


def blame(result: Exploration, prop, steps: list) -> Blame:
    """Where and by which clause the end of a trace breaks a property (empty for the explorer's
    own checks, which are no formula)."""
    if prop is None:
        return Blame()
    view = result.profile.view
    if prop.state is not None:
        last = steps[-1].post if steps else result.profile.initial_state(result.config)
        return blame_state(prop, view(result.config, last))
    if not steps or steps[-1].errno is None:
        return Blame()
    last = steps[-1]
    return blame_step(prop, last.call.name, last.errno, view(result.config, last.pre),
                      view(result.config, last.post))


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
