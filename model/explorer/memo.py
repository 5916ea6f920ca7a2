"""Memoised steps and state predicates: a call's answer is a function of the fields it reads.

The explorer spends its time in the machinery around each call, not in the bodies; keying every
answer on the values of just the fields it read makes most calls a couple of dictionary
lookups, and stays exact (see `Stepper`).
"""

from __future__ import annotations

import operator

from model.concrete import assign
from model.explorer.table import StateTable
from model.transitions import Outcome, run_concrete

_NEVER = object()  # the host never makes the call (discipline or exploration bound)


class Reads:
    """A state that records which of its fields a transition reads (every read goes through here).

    Anything but a plain field read (comparing, iterating, indexing the whole state) marks the
    run as reading everything, and it is not memoised. A field read is recorded once and then
    kept on the object, so that its next reads are plain attribute reads (a step reads the same
    few fields dozens of times). With `elements`, `paths` also records which elements of them
    are read: a field read as a whole, or an element of a tuple field (or of one of its rows)
    read by its index, as (field's position, index...)."""

    def __init__(self, state, fields: dict, elements: bool = False):
        self._state = state
        self._fields = fields  # field name -> position
        self.read: list[str] = []
        self.paths: dict | None = {} if elements else None  # path -> None, in reading order
        self.everything = False
        self.frozen = False

    def __getattr__(self, name):
        if self.frozen:
            return getattr(self._state, name)
        if name not in self._fields:
            self.everything = True
            return getattr(self._state, name)
        self.read.append(name)
        value = getattr(self._state, name)
        if self.paths is not None:
            path = (self._fields[name],)
            if type(value) is tuple:
                value = _Elements(value, self.paths, path)
            else:
                self.paths[path] = None
        self.__dict__[name] = value
        return value

    def freeze(self) -> None:
        """Stop recording: the run is over, and what follows (its post-state) reads freely."""
        self.frozen = True
        for name in self.read:
            self.__dict__[name] = getattr(self._state, name)

    def _whole(self):
        if not self.frozen:
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


class _Elements:
    """A tuple field of a `Reads` (or a row of one) that records which of its elements are read:
    an element by its index, the whole tuple for anything else done with it."""

    __slots__ = ("_value", "_paths", "_path")

    def __init__(self, value: tuple, paths: dict, path: tuple):
        self._value, self._paths, self._path = value, paths, path

    def __getitem__(self, index):
        value = self._value
        if type(index) is int and 0 <= index < len(value):
            item = value[index]
            path = self._path + (index,)
            if type(item) is tuple:
                return _Elements(item, self._paths, path)
            self._paths[path] = None
            return item
        return self._whole()[index]

    def _whole(self) -> tuple:
        self._paths[self._path] = None
        return self._value

    def __len__(self):
        return len(self._whole())

    def __iter__(self):
        return iter(self._whole())

    def __contains__(self, item):
        return item in self._whole()

    def __eq__(self, other):
        return self._whole() == (other._whole() if isinstance(other, _Elements) else other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._whole())

    def __add__(self, other):
        return self._whole() + other

    def __radd__(self, other):
        return other + self._whole()


class _ReadKeyed:
    """Answers of computations over a state, keyed by the values of the fields they read.

    Slot i is one computation (a call, a property). A computation that read the fields R of a
    state gives the same answer on every state that agrees with it on R: it is a deterministic
    function of what it reads (the config and the call are fixed per slot). A field's value is
    named by its id in a `StateTable` (the explorer's own), so R's key on a state is its fields'
    ids, as bytes while every id is below 256 (33 bytes and a byte a field), else as a tuple:
    cheap to hash and to hold, where the whole columns were neither. Every answer filed under
    one key of R is in one `_Bundle`: one lookup per read set answers all its slots."""

    def __init__(self, slots: int, table: StateTable | None):
        self.table = table if table is not None else StateTable()
        self.read_sets: dict[tuple, int] = {}  # field names -> read set id
        self.picks: list = []  # per read set: a state's field ids -> those of its fields
        self.bundles: list[dict] = []  # per read set: key -> _Bundle
        self.slot_rids: list[list] = [[] for _ in range(slots)]  # per slot: where it is filed
        self.pairs: dict = {}  # one (slot, answer) object per distinct pair
        self.shapes: dict = {}  # one shared _Bundle per distinct tuple of pairs
        self.filed: dict = {}  # read set id -> key, of the bundles the current state filed
        self.state = None
        self.ids: list[int] = []
        self.at: list = []  # per read set: the current state's bundle, or None
        self.hits = self.misses = 0
        self.generation = 0  # bumped when the judge of a sweep may answer differently
        self.all_slots = (1 << slots) - 1

    def begin(self, state, ids: list[int] | None = None) -> None:
        """The state the next lookups are about (`ids`: its field ids in the table, if known)."""
        if self.filed:
            self._share()
        self.state = state
        self.ids = ids = self.table.ids(state) if ids is None else ids
        if self.table.small:  # every id below 256: every key is bytes
            self.at = [bundles.get(bytes(pick(ids))) for bundles, pick in zip(self.bundles, self.picks)]
        else:
            self.at = [bundles.get(_key(pick(ids))) for bundles, pick in zip(self.bundles, self.picks)]

    def _share(self) -> None:
        """File the one shared bundle with the same answers in place of each bundle the last
        state filed (the bundles a state grows an answer at a time are never shared)."""
        shapes = self.shapes
        for rid, key in self.filed.items():
            bundle = self.at[rid]
            self.bundles[rid][key] = shapes.setdefault(bundle.pairs, bundle)
        self.filed.clear()

    def lookup(self, slot: int):
        at = self.at
        for rid in self.slot_rids[slot]:
            bundle = at[rid]
            if bundle is not None and bundle.mask >> slot & 1:
                self.hits += 1
                return bundle.answer(slot)
        self.misses += 1
        return None

    def store(self, slot: int, names: tuple, answer) -> None:
        """File the slot's answer on the current state, read from the fields `names` (sorted:
        one read set per set of fields, whatever the order); None files nothing."""
        if answer is None:
            return
        rid = self.read_sets.get(names)
        if rid is None:
            rid = self.read_sets[names] = len(self.picks)
            fields = type(self.state)._fields
            self.picks.append(_pick([fields.index(n) for n in names]))
            self.bundles.append({})
            self.at.append(None)
        pair = self.pairs.get((slot, id(answer)))
        if pair is None:
            pair = self.pairs[(slot, id(answer))] = (slot, answer)
        bundle = self.at[rid]
        if rid not in self.filed:  # the first answer this state files here: on a bundle of its own
            key = self.filed[rid] = _key(self.picks[rid](self.ids))
            bundle = self.at[rid] = self.bundles[rid][key] = _Bundle(
                () if bundle is None else bundle.pairs)
        bundle.add(pair)
        if rid not in self.slot_rids[slot]:
            self.slot_rids[slot].append(rid)

    def _sweep(self, judge) -> tuple[list, list, int]:
        """Every slot on the current state at once, one lookup per read set rather than per
        slot: (loud, unanswered, quiet count). `judge(slot, answer)` sorts a recorded answer:
        True (quiet: only counted), None (skipped) or False (loud: returned as (slot, answer)).
        `unanswered` are the slots with no recorded answer for this state."""
        covered = 0
        quiet_count = 0
        loud: list = []
        generation = self.generation
        for bundle in self.at:
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


def _pick(indexes: list[int]):
    """The ids of a read set's fields, as a tuple, from a state's field ids."""
    if len(indexes) == 1:
        return operator.itemgetter(*indexes * 2)  # a tuple (twice the one id), not an int
    return operator.itemgetter(*indexes) if indexes else (lambda _ids: ())


def _key(ids: tuple):
    """The key of a read set's ids (or of the values an element read set read): bytes if they
    fit (the same ids always give the same key, and a tuple never equals bytes)."""
    try:
        return bytes(ids)
    except (ValueError, TypeError):
        return ids


class Stepper(_ReadKeyed):
    """`profile.step(config, state, call)`, memoised on the fields of the state it reads.

    Same errno, same None (discipline, bound), same new value of every field written, on every
    state that agrees on what the call read. A run is memoised only when every field it changed
    is one it read (a blind write, such as clearing a stage-2 it never looked at, would
    otherwise be replayed wrong) and it read nothing but fields. A hit replays the answer on the
    new state; the step properties are still evaluated on it like on any other edge. The fields
    are whole columns (`host`, `s2`, ...), so keys are few; `tests/pkvm/test_explorer.py` checks
    the memo against `Profile.step` call by call. `table` numbers the field values (the
    explorer's state table; by default one of its own).

    A call that reads one gfn's entries of a column the other gfns change misses on whole
    columns in nearly every state. So a view that keeps its writes one by one
    (`ConcreteView.assignments`) also gets a second memo, per call, keyed on the elements the
    call read (`Reads.paths`), whose answer is the errno and the writes themselves: on a state
    that agrees on those elements the call runs the same way and makes the same writes, read
    or not. It is asked when the whole-column memo misses, and what it answers is filed there
    too."""

    def __init__(self, profile, config, cs: list, table: StateTable | None = None):
        super().__init__(len(cs), table)
        self.profile = profile
        self.config = config
        self.discipline = profile.disciplined(config)
        self.transitions = [profile.transitions[c.name] for c in cs]
        self.cs = cs
        self.fields = type(profile.initial_state(config))._fields
        self.positions = {name: i for i, name in enumerate(self.fields)}
        self.shared: dict = {}  # one object per distinct written value and answer: the
        # memo holds hundreds of thousands of answers, most of them equal to another
        self.elements: list[list] | None = None  # per call: [key of a state, answers] per read set
        self.element_sets: dict = {}  # (call, paths) -> that call's [key, answers]
        self.element_hits = 0

    def sweep(self, quiet) -> tuple[list, list, int]:
        """Every call on the current state at once: (answered, unanswered, quiet count).

        `answered` holds (call index, answer) of the calls the memo answers that the caller must
        look at (an answer is (errno, written fields): `replay` gives its outcome),
        `unanswered` the indexes of calls it must run (`self(ci)`), and the quiet count the
        tried calls it need not see: each failed and changed nothing, and
        `quiet(ci, errno)` says such a failure can break or witness no property (the caller
        bumps `generation` when that may change). The calls the host never makes are in
        neither list."""
        def judge(ci, answer):
            if answer is _NEVER:
                return None
            errno, written = answer
            return bool(errno and not written and quiet(ci, errno))
        return self._sweep(judge)

    @staticmethod
    def replay(state, answer) -> Outcome:
        """The outcome an answer (errno, written fields) gives on `state`."""
        errno, written = answer
        if not written:
            return Outcome(errno, state)
        fields = list(state)
        for index, value in written:
            fields[index] = value
        return Outcome(errno, type(state)(*fields))

    def __call__(self, ci: int) -> Outcome | None:
        answer = self.lookup(ci)
        if answer is None:
            if self.elements:
                state = self.state
                entries = self.elements[ci]
                for n, (key_of, answers) in enumerate(entries):
                    found = answers.get(_key(key_of(state)))
                    if found is not None:
                        self.element_hits += 1
                        if n:  # the read sets that answer often come to be tried first
                            entries[n - 1], entries[n] = entries[n], entries[n - 1]
                        errno, assignments, names = found
                        post = state if errno is None else assign(state, assignments)
                        return self._file(ci, state, errno, post, names)
            return self._run(ci, self.state)
        if answer is _NEVER:
            return None
        return self.replay(self.state, answer)

    def _run(self, ci: int, state) -> Outcome | None:
        """Profile.step, on a recording view of the state."""
        config, call, t = self.config, self.cs[ci], self.transitions[ci]
        reads = Reads(state, self.positions, elements=self.elements is not False)
        s = self.profile.view(config, reads)
        errno = run_concrete(s, t, call.args, self.discipline)
        reads.freeze()
        post = assignments = ()
        if errno is not None:
            post, assignments = s.post(), s.assignments()
            if self.elements is None:  # the first step: does the view keep its writes one by one?
                self.elements = [[] for _ in self.cs] if assignments is not None else False
        if post is reads or errno is None:
            post = state
        if reads.everything:
            return None if errno is None else Outcome(errno, post)
        names = tuple(sorted(reads.read))
        if self.elements:
            self._file_elements(ci, state, tuple(reads.paths), (errno, assignments, names))
        return self._file(ci, state, errno, post, names)

    def _file(self, ci: int, state, errno, post, names: tuple) -> Outcome | None:
        """The outcome of a call on the current state, its answer filed on the fields `names`."""
        if errno is None:
            self.store(ci, names, _NEVER)
            return None
        shared = self.shared
        if post is state:
            self.store(ci, names, shared.setdefault((errno, ()), (errno, ())))
            return Outcome(errno, state)
        written = tuple((i, shared.setdefault(post[i], post[i]))
                        for i in range(len(self.fields)) if post[i] is not state[i])
        if not written:
            post = state
        if all(self.fields[i] in names for i, _v in written):
            self.store(ci, names, shared.setdefault((errno, written), (errno, written)))
        return Outcome(errno, post)

    def _file_elements(self, ci: int, state, paths: tuple, answer: tuple) -> None:
        paths = tuple(sorted(paths))
        entry = self.element_sets.get((ci, paths))
        if entry is None:
            entry = self.element_sets[(ci, paths)] = [_getter(paths), {}]
            self.elements[ci].append(entry)
        entry[1][_key(entry[0](state))] = self.shared.setdefault(answer, answer)


def _getter(paths: tuple):
    """The values at `paths` of a state, as a tuple: compiled once per read set (it is computed
    on every state a call misses in)."""
    reads = "".join("s" + "".join(f"[{i}]" for i in path) + ", " for path in paths)
    return eval(f"lambda s: ({reads})")  # noqa: S307 - built from integers only


class _Bundle:
    """The answers recorded under one key of a read set: whichever slots they are, they hold on
    every state with those values, so a sweep takes them all with one lookup. Once the state
    that filed its answers is left, a bundle is shared by every key with the same answers and
    never changes (a later state that files more under its key files them on a copy), so a key
    costs only its bytes and its dict slot, and `partition` sorts each distinct bundle once per
    generation into quiet ones (counted only), skipped ones and the rest."""

    __slots__ = ("mask", "pairs", "generation", "quiet_mask", "quiet_count", "loud")

    def __init__(self, pairs: tuple):
        self.pairs = pairs  # (slot, answer), by slot
        self.mask = sum(1 << slot for slot, _answer in pairs)
        self.generation = -1

    def add(self, pair: tuple) -> None:
        """File `pair` (slot, answer) on this bundle (not shared yet)."""
        slot = pair[0]
        self.pairs = tuple(sorted([p for p in self.pairs if p[0] != slot] + [pair]))
        self.mask |= 1 << slot
        self.generation = -1

    def answer(self, slot: int):
        for s, answer in self.pairs:
            if s == slot:
                return answer
        return None

    def partition(self, judge, generation: int) -> None:
        quiet = 0
        loud = []
        for pair in self.pairs:
            verdict = judge(*pair)
            if verdict:
                quiet |= 1 << pair[0]
            elif verdict is not None:
                loud.append(pair)
        self.quiet_mask = quiet
        self.quiet_count = quiet.bit_count()
        self.loud = self.pairs if len(loud) == len(self.pairs) else tuple(loud)
        self.generation = generation


class StateChecker(_ReadKeyed):
    """State predicates, memoised the same way: a property's value is a function of the fields
    it reads, so on a state that agrees with an earlier one on those fields it is known exactly
    (nothing is skipped: the answer is the predicate's own, on an equal argument)."""

    def __init__(self, profile, config, predicates: list, table: StateTable | None = None):
        super().__init__(len(predicates), table)
        self.profile = profile
        self.config = config
        self.predicates = predicates
        self.positions = {n: i for i, n in enumerate(type(profile.initial_state(config))._fields)}

    def sweep(self, usual: list[bool]) -> tuple[list, list]:
        """Every predicate on the current state at once: (notable, unanswered), the predicates the memo
        answers otherwise than `usual[i]` (an invariant false, a `sometimes` true) and those it
        has no answer for (`self(i)` evaluates them)."""
        loud, unanswered, _usual = self._sweep(lambda i, answer: answer == usual[i])
        return [i for i, _answer in loud], unanswered

    def __call__(self, i: int) -> bool:
        answer = self.lookup(i)
        if answer is None:
            reads = Reads(self.state, self.positions)
            answer = bool(self.predicates[i](self.profile.view(self.config, reads)))
            if not reads.everything:
                self.store(i, tuple(sorted(reads.read)), answer)
        return answer
