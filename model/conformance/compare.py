"""One call on both sides: the model's outcome against the reference's answer and new state.

A disagreement is an errno that differs, a failing call that changed the reference, a new state
that differs from the model's (cell by cell, in the profile presenter's words), a reference state
no model state describes, a crash on either side, or a call the disciplined caller never makes
(judged on the reference: the model's caller made a call the discipline forbids).
"""

from __future__ import annotations

from model.conformance.report import Cell, Disagreement
from model.profile import Unrepresentable
from model.transitions import Call, Outcome, unbounded


def diff(profile, config, model_state, reference_state) -> list[Cell]:
    return [Cell(*c) for c in profile.presenter.diff(config, model_state, reference_state)]


def breach(profile, ref, call: Call, model_errno: int | None) -> Disagreement | None:
    """A call the disciplined caller never makes, read on the reference (which then answers it
    on a clone: what the kernel would do)."""
    adapter = profile.reference
    found = adapter.breach(ref, call)
    if found is None:
        return None
    note, cells = found
    try:
        answer = adapter.invoke(adapter.clone(ref), call)
    except Exception:  # noqa: BLE001 - the answer is only informative here
        answer = None
    return Disagreement("discipline", call, model_errno, answer, [Cell(*c) for c in cells],
                        note=note)


def compare_call(profile, config, state, outcome: Outcome, ref, call: Call,
                 pristine=None) -> tuple[Disagreement | None, int]:
    """Make `call` on `ref` (in a state abstracting to `state`) and compare with the model's outcome.

    `pristine` is an untouched copy of `ref` for the bit-for-bit check of a failing call (a clone
    is taken when it is None). Returns (disagreement or None, the reference's errno); `ref` is
    left in the reference's new state."""
    adapter = profile.reference
    before = pristine if pristine is not None else adapter.clone(ref)
    model_errno = outcome.errno
    try:
        ref_errno = adapter.invoke(ref, call)
    except Exception as err:  # noqa: BLE001 - a crash of the reference is a finding, not an abort
        return Disagreement("reference-error", call, model_errno, None,
                            note=f"the reference raised {err!r}"), -1
    if ref_errno:
        if not adapter.identical(ref, before):
            return _changed_on_failure(profile, config, call, model_errno, ref_errno, before,
                                       ref), ref_errno
        if ref_errno != model_errno or (outcome.state is not state and outcome.state != state):
            return Disagreement("errno" if ref_errno != model_errno else "state", call, model_errno,
                                ref_errno, diff(profile, config, outcome.state, state)), ref_errno
        return None, ref_errno
    try:
        new = adapter.abstract(ref)
    except Unrepresentable as err:
        return Disagreement("unrepresentable", call, model_errno, ref_errno,
                            note=f"the reference reached a state no model state describes: {err}"), 0
    if model_errno != 0 or new != outcome.state:
        return Disagreement("errno" if model_errno else "state", call, model_errno, ref_errno,
                            diff(profile, config, outcome.state, new)), 0
    return None, 0


def _changed_on_failure(profile, config, call, model_errno, ref_errno, before, after):
    adapter = profile.reference
    try:
        cells = diff(profile, config, adapter.abstract(before), adapter.abstract(after))
        note = "the reference refused the call but changed its state"
        if not cells:
            note += " (page-table pool or entries outside the abstraction)"
    except Unrepresentable as err:
        cells, note = [], f"the reference refused the call but changed its state: {err}"
    return Disagreement("changed-on-failure", call, model_errno, ref_errno,
                        [c._replace(model=f"before: {c.model}", reference=f"after: {c.reference}")
                         for c in cells], note=note)


def side_by_side(profile, config, disciplined: bool, state, ref, call: Call
                 ) -> tuple[Outcome | None, Disagreement | None]:
    """One call on the model (in `state`) and on `ref` (changed in place): the model's outcome
    (None: the caller never makes the call) and the disagreement, if any."""
    try:
        outcome = profile.step(config, state, call)
    except Exception as err:  # noqa: BLE001 - a model crash is a finding
        try:
            answer = profile.reference.invoke(profile.reference.clone(ref), call)
        except Exception:  # noqa: BLE001
            answer = None
        return None, Disagreement("model-error", call, None, answer, note=f"the model raised {err!r}")
    if outcome is None:
        return None, None
    if disciplined:
        found = breach(profile, ref, call, outcome.errno)
        if found is not None:
            return outcome, found
    d, _ = compare_call(profile, config, state, outcome, ref, call)
    return outcome, d


def without_bounds(profile):
    """The profile without its exploration bounds: walks and scenarios are not bounded
    explorations (they may pin up to the refcount's width). Caller disciplines stay."""
    return profile.with_changes(transitions=unbounded(profile.transitions))


def replay(profile, config, calls: list[Call], discipline: bool | None = None
           ) -> Disagreement | None:
    """The first disagreement of a call sequence run from the initial state, if any (calls the
    caller never makes are skipped); its trace is the calls before it."""
    disciplined = profile.disciplined(config) if discipline is None else discipline
    profile = without_bounds(profile)
    state, ref, done = profile.initial_state(config), profile.reference.fresh(config), []
    for call in calls:
        outcome, d = side_by_side(profile, config, disciplined, state, ref, call)
        if d is not None:
            d.trace = done
            return d
        if outcome is not None:
            done.append(call)
            state = outcome.state
    return None


def minimize(profile, config, d: Disagreement, discipline: bool | None = None) -> Disagreement:
    """A shortest-found sequence still showing the same kind of disagreement on the same call:
    chunks of the trace, then single calls, are dropped while the disagreement survives (the
    result is 1-minimal: dropping any one call loses it)."""
    seq = list(d.trace) + [d.call]
    want = (d.kind, d.call.name)
    best = d
    chunk = max(1, len(seq) // 2)
    while True:
        i = 0
        while i < len(seq) - 1:  # the disagreeing call itself stays last
            candidate = seq[:i] + seq[i + chunk:]
            if len(candidate) < 1 or candidate[-1] != seq[-1]:
                i += chunk
                continue
            found = replay(profile, config, candidate, discipline)
            if found is not None and (found.kind, found.call.name) == want:
                seq, best = list(found.trace) + [found.call], found
            else:
                i += chunk
        if chunk == 1:
            return best
        chunk //= 2
