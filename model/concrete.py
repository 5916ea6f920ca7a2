"""The concrete reading: the vocabulary transitions and properties are written in, on values.

Every profile's concrete view derives from `ConcreteView`, which gives the logic (connectives,
`If`), the checks (`require`, `each_page`, guarded by `when`) and nested calls; the profile adds
the reads of its state and its writes. Reads always see the pre-state; a write is applied as
soon as it is reached, so a transition that writes before a failing check really leaves a
changed state behind (which check-then-commit then catches).
"""

from __future__ import annotations

from contextlib import contextmanager


class ConcreteView:
    """One state seen through the transition vocabulary (the profile adds reads and writes)."""

    def __init__(self, config, state, transitions: dict | None = None):
        self.config = config
        self.pre = state
        self.transitions = transitions or {}
        self._guards: list[bool] = []

    # -- logic -------------------------------------------------------------------------------
    @staticmethod
    def And(*xs):
        return all(xs)

    @staticmethod
    def Or(*xs):
        return any(xs)

    @staticmethod
    def Not(x):
        return not x

    @staticmethod
    def Implies(a, b):
        return (not a) or b

    @staticmethod
    def If(c, a, b):
        return a if c else b

    @staticmethod
    def bit(value, mask):
        """Whether the single-bit mask is set in value."""
        return (value // mask) % 2 == 1

    # -- checks ------------------------------------------------------------------------------
    def _live(self):
        return all(self._guards)

    def require(self, ok, errno, label=None):
        """0 when ok (or when a `when` guard is off), else the negative errno."""
        if not self._live() or ok:
            return 0
        return -errno

    def each_page(self, lo, n, errno_of, label=None):
        """The errno of the first index of [lo, lo + n) whose check fails, else 0."""
        if not self._live():
            return 0
        for p in range(lo, lo + n):
            err = errno_of(p)
            if err:
                return err
        return 0

    @contextmanager
    def when(self, cond):
        """Checks and writes inside apply only when cond holds."""
        self._guards.append(bool(cond))
        try:
            yield
        finally:
            self._guards.pop()

    def note_call(self, name, args):
        """A nested call runs inline; concretely there is nothing to note."""

    def assignments(self):
        """The call's writes one by one, as (path, value), a path being (the field's position,
        index...): for a view that keeps them so (the explorer then memoises a call on the
        elements it reads, not the whole columns). None: the post-state is all there is."""
        return None

    def same_state(self, other: ConcreteView):
        return self.pre == other.pre


def assign(state, assignments: tuple, kind: type | None = None):
    """The state with each (path, value) of `assignments` written in (`ConcreteView.assignments`),
    as a `kind` (by default the state's own type); a field that comes out equal to its old value
    stays the same object, and a state nothing changes is returned as it is."""
    if not assignments:
        return state
    fields = list(state)
    for path, value in assignments:
        fields[path[0]] = _put(fields[path[0]], path[1:], value)
    changed = False
    for i, value in enumerate(fields):
        if value is not state[i]:
            if value == state[i]:
                fields[i] = state[i]
            else:
                changed = True
    return (kind or type(state))(*fields) if changed else state


def _put(value, keys: tuple, item):
    """`value` (a tuple of tuples...) with the element at `keys` replaced by `item`."""
    if not keys:
        return item
    i = keys[0]
    return value[:i] + (_put(value[i], keys[1:], item),) + value[i + 1:]
