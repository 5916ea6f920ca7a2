"""Memoised steps and state predicates: a call's answer is a function of the fields it reads.

The explorer spends its time in the machinery around each call, not in the bodies; keying every
answer on the values of just the fields it read makes most calls a couple of dictionary
lookups, and stays exact (see `Stepper`).
"""

from __future__ import annotations

import operator

from model.transitions import Outcome, run_concrete

_MISSING = object()
_NEVER = object()  # the host never makes the call (discipline or exploration bound)


class _Reads:
    """A state that records which of its fields a transition reads (every read goes through here).

    Anything but a plain field read (comparing, iterating, indexing the whole state) marks the
    run as reading everything, and it is not memoised."""

    __slots__ = ("_state", "_fields", "read", "everything", "frozen")

    def __init__(self, state, fields: frozenset):
        self._state = state
        self._fields = fields
        self.read: list[str] = []
        self.everything = False
        self.frozen = False

    def __getattr__(self, name):
        if not self.frozen:
            if name not in self._fields:
                self.everything = True
            elif name not in self.read:
                self.read.append(name)
        return getattr(self._state, name)

    def _whole(self):
        self.everything = True
        return self._state

    def __eq__(self, other):
        other = other._whole() if isinstance(other, _Reads) else other
        return self._whole() == other

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._whole())

    def __iter__(self):
        return iter(self._whole())

    def __len__(self):
        return len(self._whole())

    def __getitem__(self, index):
        return self._whole()[index]


class _ReadKeyed:
    """Answers of computations over a state, keyed by the values of the fields they read.

    Slot i is one computation (a call, a property). A computation that read the fields R of a
    state gives the same answer on every state that agrees with it on R: it is a deterministic
    function of what it reads (the config and the call are fixed per slot). Lookups try every
    read set R recorded for the slot; the values of R in the current state get a small integer
    id once per state, so most lookups hash two integers."""

    def __init__(self, slots: int):
        self.read_sets: dict[tuple, int] = {}
        self.getters: list = []
        self.value_ids: list[dict] = []
        self.tables: list[list] = [[] for _ in range(slots)]  # per slot: [(read set id, table)]
        self.by_rid: list[dict] = [{} for _ in range(slots)]
        self.state = None
        self.vids: dict = {}
        self.hits = self.misses = 0

    def begin(self, state) -> None:
        """The state the next lookups are about."""
        self.state = state
        self.vids = {}

    def lookup(self, slot: int):
        state = self.state
        for rid, table in self.tables[slot]:
            vid = self.vids.get(rid, _MISSING)
            if vid is _MISSING:
                vid = self.vids[rid] = self.value_ids[rid].get(self.getters[rid](state))
            if vid is not None:
                answer = table.get(vid)
                if answer is not None:
                    self.hits += 1
                    return answer
        self.misses += 1
        return None

    def store(self, slot: int, reads: _Reads, answer) -> None:
        if reads.everything or answer is None:
            return
        key = tuple(reads.read)
        rid = self.read_sets.get(key)
        if rid is None:
            rid = self.read_sets[key] = len(self.getters)
            self.getters.append(operator.attrgetter(*key) if key else (lambda _s: ()))
            self.value_ids.append({})
        ids = self.value_ids[rid]
        vid = self.vids[rid] = ids.setdefault(self.getters[rid](self.state), len(ids))
        table = self.by_rid[slot].get(rid)
        if table is None:
            table = self.by_rid[slot][rid] = {}
            self.tables[slot].append((rid, table))
        table[vid] = answer


class Stepper(_ReadKeyed):
    """`profile.step(config, state, call)`, memoised on the fields of the state it reads.

    Same errno, same None (discipline, bound), same new value of every field written, on every
    state that agrees on what the call read. A run is memoised only when every field it changed
    is one it read (a blind write, such as clearing a stage-2 it never looked at, would
    otherwise be replayed wrong) and it read nothing but fields. A hit replays the answer on the
    new state; the step properties are still evaluated on it like on any other edge. The fields
    are whole columns (`host`, `s2`, ...), so keys are few; `tests/test_explorer.py` checks the
    memo against `Profile.step` call by call."""

    def __init__(self, profile, config, cs: list):
        super().__init__(len(cs))
        self.profile = profile
        self.config = config
        self.discipline = profile.disciplined(config)
        self.transitions = [profile.transitions[c.name] for c in cs]
        self.cs = cs
        self.fields = type(profile.initial_state(config))._fields
        self.field_set = frozenset(self.fields)

    def __call__(self, ci: int) -> Outcome | None:
        state = self.state
        answer = None
        vids = self.vids
        for rid, table in self.tables[ci]:  # _ReadKeyed.lookup, inlined: this is the hot path
            vid = vids.get(rid, _MISSING)
            if vid is _MISSING:
                vid = vids[rid] = self.value_ids[rid].get(self.getters[rid](state))
            if vid is not None:
                answer = table.get(vid)
                if answer is not None:
                    break
        if answer is None:
            self.misses += 1
            return self._run(ci, state)
        self.hits += 1
        if answer is _NEVER:
            return None
        errno, written = answer
        if not written:
            return Outcome(errno, state)
        fields = list(state)
        for index, value in written:
            fields[index] = value
        return Outcome(errno, type(state)(*fields))

    def _run(self, ci: int, state) -> Outcome | None:
        """Profile.step, on a recording view of the state."""
        config, call, t = self.config, self.cs[ci], self.transitions[ci]
        reads = _Reads(state, self.field_set)
        s = self.profile.view(config, reads)
        errno = run_concrete(s, t, call.args, self.discipline)
        if errno is None:
            outcome, answer = None, _NEVER
        else:
            reads.frozen = True
            post = s.post()
            if post is reads:
                outcome, answer = Outcome(errno, state), (errno, ())
            else:
                written = tuple((i, post[i]) for i in range(len(self.fields))
                                if post[i] is not state[i])
                outcome = Outcome(errno, post if written else state)
                answer = (errno, written)
                if any(self.fields[i] not in reads.read for i, _v in written):
                    answer = None
        self.store(ci, reads, answer)
        return outcome


class StateChecker(_ReadKeyed):
    """State predicates, memoised the same way: a property's value is a function of the fields
    it reads, so on a state that agrees with an earlier one on those fields it is known exactly
    (nothing is skipped: the answer is the predicate's own, on an equal argument)."""

    def __init__(self, profile, config, predicates: list):
        super().__init__(len(predicates))
        self.profile = profile
        self.config = config
        self.predicates = predicates
        self.field_set = frozenset(type(profile.initial_state(config))._fields)

    def __call__(self, i: int) -> bool:
        answer = self.lookup(i)
        if answer is None:
            reads = _Reads(self.state, self.field_set)
            answer = bool(self.predicates[i](self.profile.view(self.config, reads)))
            self.store(i, reads, answer)
        return answer
