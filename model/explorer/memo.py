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


class Reads:
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
        if other is self:  # a state equals itself, whatever it holds: nothing read
            return True
        other = other._whole() if isinstance(other, Reads) else other
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
        self.bundles: list[dict] = []  # per read set: value id -> _Bundle
        self.generation = 0  # bumped when the judge of a sweep may answer differently
        self.all_slots = (1 << slots) - 1

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

    def store(self, slot: int, reads: Reads, answer) -> None:
        if reads.everything or answer is None:
            return
        key = tuple(sorted(reads.read))  # one read set per set of fields, whatever the order
        rid = self.read_sets.get(key)
        if rid is None:
            rid = self.read_sets[key] = len(self.getters)
            self.getters.append(operator.attrgetter(*key) if key else (lambda _s: ()))
            self.value_ids.append({})
            self.bundles.append({})
        ids = self.value_ids[rid]
        vid = self.vids[rid] = ids.setdefault(self.getters[rid](self.state), len(ids))
        table = self.by_rid[slot].get(rid)
        if table is None:
            table = self.by_rid[slot][rid] = {}
            self.tables[slot].append((rid, table))
        table[vid] = answer
        bundle = self.bundles[rid].get(vid)
        if bundle is None:
            bundle = self.bundles[rid][vid] = _Bundle()
        bundle.add(slot, answer)

    def _sweep(self, state, judge) -> tuple[list, list, int]:
        """Every slot on `state` at once, one lookup per read set rather than per slot:
        (loud, unanswered, quiet count). `judge(slot, answer)` sorts a recorded answer: True
        (quiet: only counted), None (skipped) or False (loud: returned as (slot, answer)).
        `unanswered` are the slots with no recorded answer for this state."""
        self.begin(state)
        vids = self.vids
        covered = 0
        quiet_count = 0
        loud: list = []
        generation = self.generation
        value_ids, getters = self.value_ids, self.getters
        for rid, bundles in enumerate(self.bundles):
            vid = value_ids[rid].get(getters[rid](state))
            vids[rid] = vid
            if vid is None:
                continue
            bundle = bundles.get(vid)
            if bundle is None:
                continue
            new = bundle.mask & ~covered
            if not new:
                continue
            covered |= new
            if bundle.generation != generation:
                bundle.partition(judge, generation)
            if new == bundle.mask:
                quiet_count += bundle.quiet_count
                loud.extend(bundle.loud)
            else:
                quiet_count += (new & bundle.quiet_mask).bit_count()
                loud.extend(x for x in bundle.loud if new >> x[0] & 1)
        missing = self.all_slots & ~covered
        unanswered = [i for i in range(missing.bit_length()) if missing >> i & 1]
        return loud, unanswered, quiet_count


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
        self.shared: dict = {}  # one object per distinct written value and answer: the
        # memo holds hundreds of thousands of answers, most of them equal to another

    def sweep(self, state, quiet) -> tuple[list, list, int]:
        """Every call on `state` at once: (answered, unanswered, quiet count).

        `answered` holds (call index, Outcome) of the calls the memo answers that the caller must
        look at, `unanswered` the indexes of calls it must run (`self(ci)`), and the quiet
        count the tried calls it need not see: each failed and changed nothing, and
        `quiet(ci, errno)` says such a failure can break or witness no property (the caller
        bumps `generation` when that may change). The calls the host never makes are in
        neither list."""
        def judge(ci, answer):
            if answer is _NEVER:
                return None
            errno, written = answer
            return bool(errno and not written and quiet(ci, errno))
        loud, unanswered, quiet_count = self._sweep(state, judge)
        return ([(ci, self._replay(state, answer)) for ci, answer in loud], unanswered,
                quiet_count)

    @staticmethod
    def _replay(state, answer) -> Outcome:
        errno, written = answer
        if not written:
            return Outcome(errno, state)
        fields = list(state)
        for index, value in written:
            fields[index] = value
        return Outcome(errno, type(state)(*fields))

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
        return self._replay(state, answer)

    def _run(self, ci: int, state) -> Outcome | None:
        """Profile.step, on a recording view of the state."""
        config, call, t = self.config, self.cs[ci], self.transitions[ci]
        reads = Reads(state, self.field_set)
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
                shared = self.shared
                written = tuple((i, shared.setdefault(post[i], post[i]))
                                for i in range(len(self.fields)) if post[i] is not state[i])
                outcome = Outcome(errno, post if written else state)
                answer = shared.setdefault((errno, written), (errno, written))
                if any(self.fields[i] not in reads.read for i, _v in written):
                    answer = None
        self.store(ci, reads, answer)
        return outcome


class _Bundle:
    """The answers recorded for one read set's values: whichever slots they are, they hold on
    every state with those values, so a sweep takes them all with one lookup. `partition`
    sorts them once per generation into quiet ones (counted only), skipped ones and the rest."""

    __slots__ = ("mask", "answers", "generation", "quiet_mask", "quiet_count", "loud")

    def __init__(self):
        self.mask = 0
        self.answers: dict[int, object] = {}
        self.generation = -1

    def add(self, slot: int, answer) -> None:
        self.mask |= 1 << slot
        self.answers[slot] = answer
        self.generation = -1

    def partition(self, judge, generation: int) -> None:
        self.quiet_mask = 0
        self.loud = []
        for slot in sorted(self.answers):
            answer = self.answers[slot]
            verdict = judge(slot, answer)
            if verdict:
                self.quiet_mask |= 1 << slot
            elif verdict is not None:
                self.loud.append((slot, answer))
        self.quiet_count = self.quiet_mask.bit_count()
        self.generation = generation


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

    def sweep(self, state, usual: list[bool]) -> tuple[list, list]:
        """Every predicate on `state` at once: (notable, unanswered), the predicates the memo
        answers otherwise than `usual[i]` (an invariant false, a `sometimes` true) and those it
        has no answer for (`self(i)` evaluates them)."""
        loud, unanswered, _usual = self._sweep(state, lambda i, answer: answer == usual[i])
        return [i for i, _answer in loud], unanswered

    def __call__(self, i: int) -> bool:
        answer = self.lookup(i)
        if answer is None:
            reads = Reads(self.state, self.field_set)
            answer = bool(self.predicates[i](self.profile.view(self.config, reads)))
            self.store(i, reads, answer)
        return answer
