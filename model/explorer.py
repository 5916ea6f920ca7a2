"""Bounded breadth-first exploration of the reachable graph of one configuration.

From the initial state, every call of `calls(config)` is tried in every reachable state, in a
fixed order (so two runs give the same graph, the same node ids, the same traces). The graph is a
networkx DiGraph whose nodes are integer ids (the `State` of node i is `states[i]`) and whose
edges carry `calls`, the indexes (into `Exploration.calls`) of the successful calls that lead from
one state to the other; failing calls are self-loops the graph omits, but every one of them is
run through the step properties (check-then-commit) and its errno checked.

Checks, none skipped (a property found violated is reported once, with its first, shortest
trace, and not looked for again):
- every `always` state property in every distinct state (once per state: a state is a value);
- every `always` step property on every tried edge, failing calls included;
- every `sometimes` property until it is witnessed;
- every failing call returns a negative errno the kernel knows (`errno_known`), and no call
  crashes the model's code (`call_completes`);
- on a complete exploration, two graph properties: **nothing stranded** (from every reachable
  state the host can get every RAM page back: reverse reachability to the states where the host
  owns every RAM page) and **no dead end** (every reachable state has a successor other than
  itself, unless every VM is torn down).

A violation is reported once per property, with the shortest trace from the initial state (BFS
parent pointers: the first state of the BFS order that violates a property is at minimal depth).

Speed comes from three things, each exact: steps and state properties are memoised on the
fields of the state they read (`Stepper`, `StateChecker`); interchangeable pages, VMs and gfns
are explored once per orbit (`Symmetry`, checked as the search goes); states are tuples with
shared fields and the graph holds integers and call indexes only.

The model never prints and neither does this module: progress goes to an optional callback, the
results come back as an `Exploration` (with `summary()` as plain JSON-able data).
"""

from __future__ import annotations

import itertools
import operator
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

import networkx as nx

from model.concrete import Concrete
from model.properties import ALWAYS, SOMETIMES, Property
from model.states import (
    BLOCK_PAGES, OWNED, POISON, Config, Contents, Leaf, Life, Owner, State, initial_state,
)
from model.transitions import (
    ERRNO_NAMES, TRANSITIONS, Call, Outcome, Transition, calls, step,
)
from model.transitions import errno_name as kernel_errno_name

ORBIT_LIMIT = 20_000  # group orders past which unreduced counts are not rebuilt from orbits


def errno_name(errno: int | None) -> str:
    """The call's result as the kernel names it; a call that crashed the model (None) `raised`."""
    return "raised" if errno is None else kernel_errno_name(errno)


# -- graph properties (not expressible on one state or one edge) --------------------------------

GRAPH_PROPERTIES = {
    "graph_nothing_stranded": "from every reachable state the host can get every RAM page back",
    "graph_no_dead_end": "every reachable state has a successor, unless every VM is torn down",
    "errno_known": "a failing call returns a negative errno the kernel knows",
    "call_completes": "every call runs to completion in the model (a crash is a model bug)",
}


# -- symmetry ------------------------------------------------------------------------------------

class Symmetry:
    """Canonical representatives of states under renamings that no transition can tell apart.

    The group. Three kinds of renaming act on a state together:
    - pages: a permutation of the pfns of each memory region (RAM, MMIO) that maps every range a
      call can name to another such range. Single-page calls see pages one at a time, so any
      permutation of a region qualifies when every tried `nr` is 1 or covers the whole region;
      otherwise only the reversal of the region (it maps intervals to intervals) does.
    - guests: a permutation of the VM handles that keeps each handle's kind (protected or not).
    - gfns: a permutation of the tried gfns `[0, gfns)`, independently per VM. No transition
      compares a gfn with anything but another gfn of the same VM, except block alignment, which
      only matters when `BLOCK_PAGES` is a tried `nr`: then gfns are not renamed.
    The renaming of a state moves every per-page field to the new pfn, every guest's lifecycle
    and stage-2 to the new handle, and renames the identifiers stored *inside* the state: the
    host stage-2 annotation of a guest-owned page (`pte_handle`, `pte_gfn`, only when
    `pte_owner` is GUEST: otherwise they are not names), each leaf's gfn and pfn (a POISON leaf
    maps no pfn) and SECRET contents, which name the VM whose secret they are. This is a
    bijection on states (its inverse is the renaming by the inverse permutations).

    Why exploring representatives is sound. Every transition body reads and writes pages, VMs
    and gfns only through the names it is given or finds in the state, applies the same checks
    to every page of a region and every VM of a kind, and tries every argument of the renamed
    domains (`calls` is closed under the renaming). Hence step(g.s, g.c) = g.step(s, c) for every
    renaming g: the reachable set is a union of orbits, and a BFS that replaces every successor
    by its representative visits one state per reachable orbit, at the same depth as the full
    BFS. Every property is stated with quantifiers over pages, VMs and entries (never a fixed
    pfn, handle or gfn), so it holds on a state iff it holds on its representative; the graph
    properties' targets (the host owns every RAM page; every VM is torn down) are unions of
    orbits too. Traces are replayed on concrete states (`Exploration.trace`), so what the user
    sees is a real run of the model.

    The representative is the least renaming under tuple order, taken over all page and guest
    permutations; gfns are not enumerated but sorted by a signature that names no gfn (the leaf
    at that gfn with its pfn already renamed, and the renamed pfns whose annotation names it).
    Two gfns with the same signature hold the same leaf and no annotation names either, so
    swapping them fixes the state: any order among them gives the same image. The
    representative therefore depends only on the orbit.

    States a mutant can build with a multi-page leaf have no well-defined page or gfn renaming
    (a renamed contiguous range need not be contiguous); they are kept as they are (their own
    representative). That is always sound: a representative only has to lie in the orbit.
    """

    def __init__(self, config: Config, enabled: bool = True):
        self.config = config
        self.n = config.pages
        self.guests = len(config.guests)
        self.gfns = config.gfns
        regions = [(0, config.ram), (config.ram, config.pages)]
        per_region = [self._region_perms(lo, hi) if enabled else [tuple(range(lo, hi))]
                      for lo, hi in regions]
        self.page_perms = [self._with_inverse(sum(parts, ())) for parts in
                           itertools.product(*per_region)]
        kinds: dict[bool, list[int]] = {}
        for vm, protected in enumerate(config.guests):
            kinds.setdefault(protected, []).append(vm)
        self.guest_perms = []
        if enabled:
            choices = [list(itertools.permutations(vms)) for vms in kinds.values()]
            for images in itertools.product(*choices):
                sigma = [0] * self.guests
                for vms, image in zip(kinds.values(), images):
                    for vm, new in zip(vms, image):
                        sigma[vm] = new
                self.guest_perms.append(self._with_inverse(tuple(sigma)))
        else:
            self.guest_perms = [self._with_inverse(tuple(range(self.guests)))]
        self.gfn_symmetry = enabled and config.gfns > 1 and BLOCK_PAGES not in config.nrs
        self.trivial = (len(self.page_perms) == 1 and len(self.guest_perms) == 1
                        and not self.gfn_symmetry)
        gfn_perms = itertools.permutations(range(self.gfns)) if self.gfn_symmetry else [None]
        self.gfn_perm_count = len(list(gfn_perms))
        self.order = (len(self.page_perms) * len(self.guest_perms)
                      * self.gfn_perm_count ** self.guests)

    def _region_perms(self, lo: int, hi: int) -> list[tuple]:
        size = hi - lo
        identity = tuple(range(lo, hi))
        if size <= 1:
            return [identity]
        if all(nr == 1 or nr >= size for nr in self.config.nrs):
            return list(itertools.permutations(identity))
        return [identity, identity[::-1]]

    @staticmethod
    def _with_inverse(perm: tuple) -> tuple[tuple, tuple]:
        inverse = [0] * len(perm)
        for old, new in enumerate(perm):
            inverse[new] = old
        return perm, tuple(inverse)

    def generators(self) -> list[tuple]:
        """Renamings that generate the group (page and guest permutations, gfn transpositions),
        as (pi, pinv, sigma, sinv, taus) arguments of `image`."""
        ident_p = self.page_perms[0]
        ident_g = self.guest_perms[0]
        ident_t = [list(range(self.gfns)) for _ in range(self.guests)]
        out = []
        for pi in self.page_perms[1:]:
            out.append((*pi, *ident_g, None))
        for sigma in self.guest_perms[1:]:
            out.append((*ident_p, *sigma, None))
        if self.gfn_symmetry:
            for vm in range(self.guests):
                for g in range(self.gfns - 1):
                    taus = [list(t) for t in ident_t]
                    taus[vm][g], taus[vm][g + 1] = g + 1, g
                    out.append((*ident_p, *ident_g, taus))
        return out

    def describe(self) -> dict:
        return {
            "pages": len(self.page_perms) > 1,
            "guests": len(self.guest_perms) > 1,
            "gfns": self.gfn_symmetry,
            "group_order": self.order,
        }

    def regular(self, state: State) -> bool:
        """Whether the page and gfn renamings are defined on the state (no multi-page leaf)."""
        for leaves in state.s2:
            for leaf in leaves:
                if leaf.span != 1 or leaf.size != 1 or (
                        self.gfn_symmetry and leaf.gfn >= self.gfns):
                    return False
        return True

    # -- the renaming ----------------------------------------------------------------------------
    def _gfn_order(self, state: State, pi: tuple) -> list:
        """Per VM, the gfn renaming that sorts gfns by their (gfn-free) signature under pi."""
        taus = []
        n, gfns = self.n, self.gfns
        refs: dict[tuple, list] = {}
        for p in range(n):
            if state.pte_owner[p] == Owner.GUEST:
                refs.setdefault((state.pte_handle[p], state.pte_gfn[p]), []).append(pi[p])
        for vm, leaves in enumerate(state.s2):
            at = {}
            for leaf in leaves:
                pfn = pi[leaf.pfn] if leaf.state != POISON and leaf.pfn < n else leaf.pfn
                at[leaf.gfn] = (leaf.span, leaf.size, leaf.state, leaf.prot, pfn)
            sigs = [(at.get(g, ()), tuple(sorted(refs.get((vm, g), ())))) for g in range(gfns)]
            order = sorted(range(gfns), key=sigs.__getitem__)
            tau = [0] * gfns
            for new, old in enumerate(order):
                tau[old] = new
            taus.append(tau)
        return taus

    def image(self, state: State, pi: tuple, pinv: tuple, sigma: tuple, sinv: tuple,
              taus: list | None) -> State:
        """The state renamed: page p becomes pi[p], VM v becomes sigma[v], gfn g of v taus[v][g]."""
        n, guests, gfns = self.n, self.guests, self.gfns
        fields = [tuple(column[pinv[q]] for q in range(n)) for column in state[:12]]
        owner, handle, gfn, contents = fields[7], list(fields[8]), list(fields[9]), list(fields[11])
        for q in range(n):
            if owner[q] == Owner.GUEST and 0 <= handle[q] < guests:
                h = handle[q]
                if taus is not None and 0 <= gfn[q] < gfns:
                    gfn[q] = taus[h][gfn[q]]
                handle[q] = sigma[h]
            c = contents[q]
            if c >= Contents.SECRET_BASE and c - Contents.SECRET_BASE < guests:
                contents[q] = Contents.SECRET_BASE + sigma[c - Contents.SECRET_BASE]
        fields[8], fields[9], fields[11] = tuple(handle), tuple(gfn), tuple(contents)
        life = tuple(state.life[sinv[w]] for w in range(guests))
        s2 = []
        for w in range(guests):
            v = sinv[w]
            tau = taus[v] if taus is not None else None
            leaves = []
            for leaf in state.s2[v]:
                g = tau[leaf.gfn] if tau is not None and leaf.gfn < gfns else leaf.gfn
                pfn = pi[leaf.pfn] if leaf.state != POISON and leaf.pfn < n else leaf.pfn
                leaves.append(Leaf(g, leaf.span, leaf.size, leaf.state, leaf.prot, pfn))
            leaves.sort()
            s2.append(tuple(leaves))
        return State(*fields, life=life, s2=tuple(s2))

    def canonical(self, state: State) -> State:
        """The orbit's representative (the state itself when no renaming applies)."""
        if self.trivial or not self.regular(state):
            return state
        best = None
        for pi, pinv in self.page_perms:
            taus = self._gfn_order(state, pi) if self.gfn_symmetry else None
            for sigma, sinv in self.guest_perms:
                img = self.image(state, pi, pinv, sigma, sinv, taus)
                if best is None or img < best:
                    best = img
        return best

    def orbit_size(self, state: State) -> int:
        """How many distinct states the group maps this one to (1 for irregular states)."""
        if self.trivial or not self.regular(state):
            return 1
        gfn_perms = (list(itertools.permutations(range(self.gfns))) if self.gfn_symmetry
                     else [None])
        images = set()
        for pi, pinv in self.page_perms:
            for sigma, sinv in self.guest_perms:
                for taus in itertools.product(gfn_perms, repeat=self.guests):
                    t = None if taus[0] is None else list(taus)
                    images.add(self.image(state, pi, pinv, sigma, sinv, t))
        return len(images)


# -- results ----------------------------------------------------------------------------------

class TraceStep(NamedTuple):
    """One step of a trace: the call, the kernel's answer (None: the model's code raised), the
    states before and after."""

    call: Call
    errno: int | None
    pre: State
    post: State


@dataclass
class Violation:
    property: str
    doc: str
    kind: str  # "state", "step" or "graph"
    trace: list  # list of TraceStep, shortest from the initial state

    @property
    def length(self) -> int:
        return len(self.trace)


@dataclass
class Exploration:
    """What a bounded exploration found. Node i of `graph` is `states[i]` (a representative)."""

    config: Config
    graph: nx.DiGraph
    states: list
    calls: list
    depth_of: list
    depth: int
    complete: bool
    seconds: float
    edges: int  # successful (state, call) pairs, parallel ones counted
    tried: int  # calls tried, failing ones included
    violations: list
    sometimes: dict
    symmetry: dict
    graph_checks: dict
    witnesses: dict = field(default_factory=dict)
    stopped: str | None = None  # why an incomplete search ended: max_depth, max_states, violation
    # The search's own bookkeeping, for traces and counts.
    parent: list = field(default_factory=list, repr=False)  # BFS tree: parent node, -1 at root
    via: list = field(default_factory=list, repr=False)  # index of the call from the parent
    transitions: dict = field(default_factory=dict, repr=False)
    sym: Symmetry | None = field(default=None, repr=False)
    stepper: Stepper | None = field(default=None, repr=False)
    props: dict = field(default_factory=dict, repr=False)

    def summary(self, traces: Callable | None = None) -> dict:
        """Plain JSON-able data; `traces(violation)` turns each trace into data (default: calls)."""
        to_data = traces or (lambda v: [str(s.call) for s in v.trace])
        return {
            "states": len(self.states),
            "edges": self.edges,
            "tried": self.tried,
            "depth": self.depth,
            "complete": self.complete,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "states_per_second": round(len(self.states) / self.seconds) if self.seconds else None,
            "violations": [{"property": v.property, "doc": v.doc, "kind": v.kind,
                            "length": v.length, "trace": to_data(v)} for v in self.violations],
            "sometimes": dict(self.sometimes),
            "symmetry": dict(self.symmetry),
            "graph": dict(self.graph_checks),
        }


# -- memoised steps -----------------------------------------------------------------------------

_FIELDS = State._fields
_FIELD_SET = frozenset(_FIELDS)
_MISSING = object()
_NEVER = object()  # the host never makes the call (discipline or exploration bound)


class _Reads:
    """A state that records which of its fields a transition reads (every read goes through here).

    Anything but a plain field read (comparing, iterating, indexing the whole state) marks the
    run as reading everything, and it is not memoised."""

    __slots__ = ("_state", "read", "everything", "frozen")

    def __init__(self, state: State):
        self._state = state
        self.read: list[str] = []
        self.everything = False
        self.frozen = False

    def __getattr__(self, name):
        if not self.frozen:
            if name not in _FIELD_SET:
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

    def begin(self, state: State) -> None:
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
    """`step(config, state, call, transitions)`, memoised on the fields of the state it reads.

    Same errno, same None (discipline, bound), same new value of every field written, on every
    state that agrees on what the call read. A run is memoised only when every field it changed
    is one it read (a blind write, such as clearing a stage-2 it never looked at, would
    otherwise be replayed wrong) and it read nothing but fields. A hit replays the answer on the
    new state; the step properties are still evaluated on it like on any other edge. The fields
    are whole columns (`host`, `s2`, ...), so keys are few; `tests/test_explorer.py` checks the
    memo against `model.transitions.step` call by call."""

    def __init__(self, config: Config, transitions: dict, cs: list):
        super().__init__(len(cs))
        self.config = config
        self.transitions = [transitions[c.name] for c in cs]
        self.cs = cs

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
        return Outcome(errno, State(*fields))

    def _run(self, ci: int, state: State) -> Outcome | None:
        """model.transitions.step, on a recording view of the state."""
        config, call, t = self.config, self.cs[ci], self.transitions[ci]
        reads = _Reads(state)
        s = Concrete(config, reads)
        if config.host_discipline and t.discipline and not t.discipline(s, *call.args):
            outcome, answer = None, _NEVER
        elif t.bound and not t.bound(s, *call.args):
            outcome, answer = None, _NEVER
        else:
            errno = 0
            for e in t.body(s, *call.args):
                if e:
                    errno = e
                    break
            reads.frozen = True
            post = s.post()
            if post is reads:
                outcome, answer = Outcome(errno, state), (errno, ())
            else:
                written = tuple((i, post[i]) for i in range(len(_FIELDS))
                                if post[i] is not state[i])
                outcome = Outcome(errno, post if written else state)
                answer = (errno, written)
                if any(_FIELDS[i] not in reads.read for i, _v in written):
                    answer = None
        self.store(ci, reads, answer)
        return outcome


class StateChecker(_ReadKeyed):
    """State predicates, memoised the same way: a property's value is a function of the fields
    it reads, so on a state that agrees with an earlier one on those fields it is known exactly
    (nothing is skipped: the answer is the predicate's own, on an equal argument)."""

    def __init__(self, config: Config, predicates: list):
        super().__init__(len(predicates))
        self.config = config
        self.predicates = predicates

    def __call__(self, i: int) -> bool:
        answer = self.lookup(i)
        if answer is None:
            reads = _Reads(self.state)
            answer = bool(self.predicates[i](Concrete(self.config, reads)))
            self.store(i, reads, answer)
        return answer


class _Asymmetric(Exception):
    """The protocol explored does not treat renamed states alike: symmetry would be unsound."""


# -- the search -------------------------------------------------------------------------------

class _Intern:
    """Shares equal field tuples between states (most successors change one or two fields)."""

    def __init__(self):
        self.table: dict = {}

    def __call__(self, state: State) -> State:
        table = self.table
        return State(*[table.setdefault(f, f) for f in state])


def explore(config: Config, *, transitions: dict[str, Transition] = TRANSITIONS,
            max_depth: int | None = None, max_states: int | None = None,
            symmetry: bool = True, properties: Iterable[Property] | None = None,
            on_edge: Callable | None = None, progress: Callable | None = None,
            graph_checks: bool = True, memo: bool = True,
            stop_on_violation: bool = False, symmetry_check: int = 200) -> Exploration:
    """Breadth-first search of the reachable graph of `config` under `transitions`.

    Symmetry reduction (see `Symmetry`) is sound only for a protocol that treats interchangeable
    pages, VMs and gfns alike, which a mutant need not do (a range checked by its first page
    only). So a reduced search tests it as it goes: for the first `symmetry_check` states it
    expands, every generator of the group must map the state to one with the same successor
    orbits and the same step-property failures; and every trace must replay on concrete states.
    If either fails, the search is run again without symmetry, and `symmetry["refused"]` says
    why. (`on_edge` then also saw the edges of the abandoned run.)

    `on_edge(src_state, call, outcome)` is called for every tried call, failing ones included
    (conformance hooks in here). `progress(states, edges, depth, frontier)` is called now and
    then. `properties` defaults to every property of `model.properties`. `memo=False` calls
    `model.transitions.step` itself for every call instead of the memoised `Stepper`.
    `stop_on_violation` ends the search with the BFS layer in which the first violation shows
    (every violation of that minimal length is still found, each with its shortest trace).
    """
    kwargs = dict(transitions=transitions, max_depth=max_depth, max_states=max_states,
                  properties=properties, on_edge=on_edge, progress=progress,
                  graph_checks=graph_checks, memo=memo, stop_on_violation=stop_on_violation)
    if symmetry:
        try:
            return _explore(config, symmetry=True, symmetry_check=symmetry_check, **kwargs)
        except _Asymmetric as why:
            result = _explore(config, symmetry=False, symmetry_check=0, **kwargs)
            result.symmetry.update({"requested": True, "refused": str(why)})
            return result
    return _explore(config, symmetry=False, symmetry_check=0, **kwargs)


def _explore(config: Config, *, transitions, max_depth, max_states, symmetry, properties,
             on_edge, progress, graph_checks, memo, stop_on_violation,
             symmetry_check) -> Exploration:
    config.validate()
    start = time.perf_counter()
    props = list(properties) if properties is not None else ALWAYS + SOMETIMES
    state_always = [p for p in props if p.kind == "always" and p.state]
    step_always = [p for p in props if p.kind == "always" and p.step]
    pending_state = [p for p in props if p.kind == "sometimes" and p.state]
    all_pending = list(pending_state)
    pending_step = [p for p in props if p.kind == "sometimes" and p.step]
    sometimes = {p.name: False for p in props if p.kind == "sometimes"}
    witnesses: dict[str, tuple] = {}
    sym = Symmetry(config, enabled=symmetry)
    canon = sym.canonical
    intern = _Intern()
    cs = calls(config)
    for call in cs:
        if call.name not in transitions:
            raise KeyError(f"no transition {call.name!r} in the protocol explored")

    stepper = Stepper(config, transitions, cs) if memo else None
    s0 = intern(canon(initial_state(config)))
    states = [s0]
    ids = {s0: 0}
    raw_ids = {} if not sym.trivial else ids  # successor -> node id, before canonicalisation
    raw_get = raw_ids.get
    names = [c.name for c in cs]
    range_calls = range(len(cs))
    parent, via, depth_of = [-1], [-1], [0]
    graph = nx.DiGraph()
    graph.add_node(0)
    found: dict[str, tuple] = {}  # property -> ("state", node) | ("step", node, call idx, outcome)
    crashes: list[str] = []

    predicates = [p.state for p in state_always] + [p.state for p in pending_state]
    checker = StateChecker(config, predicates) if memo else None

    def holds(i: int, state: State) -> bool:
        if checker is not None:
            return checker(i)
        return bool(predicates[i](Concrete(config, state)))

    def check_state(node: int, state: State) -> None:
        if checker is not None:
            checker.begin(state)
        for i, p in enumerate(state_always):
            if p.name not in found and not holds(i, state):
                found[p.name] = ("state", node)
        base = len(state_always)
        for j, p in enumerate(all_pending):
            if not sometimes[p.name] and holds(base + j, state):
                sometimes[p.name] = True
                witnesses[p.name] = ("state", node)

    check_state(0, s0)
    edges = tried = 0
    truncated = False
    stopped = None
    frontier = [0]
    depth = 0
    last_report = start
    while frontier:
        if max_depth is not None and depth >= max_depth:
            truncated, stopped = True, "max_depth"
            break
        if stop_on_violation and found:
            truncated, stopped = True, "violation"
            break
        nxt = []
        for node in frontier:
            s = states[node]
            pre = Concrete(config, s)
            out: dict[int, list] = {}
            if stepper is not None:
                stepper.begin(s)
            checks = [p for p in step_always if p.name not in found]
            for ci in range_calls:
                try:
                    if stepper is not None:
                        outcome = stepper(ci)
                    else:
                        outcome = step(config, s, cs[ci], transitions)
                except Exception as err:  # noqa: BLE001 - reported with its trace, not hidden
                    if "call_completes" not in found:
                        found["call_completes"] = ("crash", node, ci)
                        crashes.append(f"{cs[ci]} raised {err!r} in the last state of the trace")
                    continue
                if outcome is None:
                    continue
                tried += 1
                if on_edge is not None:
                    on_edge(s, cs[ci], outcome)
                errno, t = outcome
                post = pre if t is s else Concrete(config, t)
                name = names[ci]
                for p in checks:
                    if not p.step(name, errno, pre, post) and p.name not in found:
                        found[p.name] = ("step", node, ci, outcome)
                if pending_step:
                    for p in list(pending_step):
                        if p.step(name, errno, pre, post):
                            sometimes[p.name] = True
                            witnesses[p.name] = ("step", node, ci, outcome)
                            pending_step.remove(p)
                if errno:
                    if errno >= 0 or errno not in ERRNO_NAMES:
                        found.setdefault("errno_known", ("step", node, ci, outcome))
                    continue
                edges += 1
                target = raw_get(t)
                if target is None:
                    c = canon(t)
                    target = ids.get(c)
                    if target is None:
                        if max_states is not None and len(states) >= max_states:
                            truncated, stopped = True, "max_states"
                            continue
                        c = intern(c)
                        target = len(states)
                        states.append(c)
                        ids[c] = target
                        parent.append(node)
                        via.append(ci)
                        depth_of.append(depth + 1)
                        nxt.append(target)
                        check_state(target, c)
                    if raw_ids is not ids:
                        raw_ids[t] = target
                targets = out.get(target)
                if targets is None:
                    out[target] = [ci]
                else:
                    targets.append(ci)
            graph.add_edges_from((node, target, {"calls": tuple(cis)})
                                 for target, cis in out.items())
            if node < symmetry_check and not sym.trivial and stopped != "max_states":
                _check_equivariance(config, stepper or Stepper(config, transitions, cs), cs, sym,
                                    s, step_always)
            if progress is not None:
                now = time.perf_counter()
                if now - last_report > 0.1:
                    last_report = now
                    progress(len(states), edges, depth, len(nxt))
        frontier = nxt
        if frontier:
            depth += 1
    raw_ids.clear()
    complete = not truncated
    seconds = time.perf_counter() - start
    if progress is not None:
        progress(len(states), edges, depth, 0)

    result = Exploration(
        config=config, graph=graph, states=states, calls=cs, depth_of=depth_of, depth=depth,
        complete=complete, seconds=seconds, edges=edges, tried=tried, violations=[],
        sometimes=sometimes, symmetry={}, graph_checks={}, witnesses=witnesses)
    result.parent, result.via = parent, via
    result.transitions = transitions
    result.sym = sym
    result.stepper = stepper
    result.props = {p.name: p for p in props}
    result.stopped = stopped
    result.symmetry = {"enabled": symmetry, **sym.describe(), "states": len(states)}

    graph_found: dict[str, int] = {}
    if complete and graph_checks:
        result.graph_checks = _graph_properties(config, graph, states, graph_found)
    else:
        result.graph_checks = {"nothing_stranded": None, "stranded_states": None,
                               "dead_ends": None, "checked": False}
    # Violations in the order of the property catalog, then the errno and graph checks.
    by_name = {p.name: p for p in props}
    for name in [p.name for p in props if p.name in found] + [n for n in found if n not in by_name]:
        prop = by_name.get(name)
        doc = prop.doc if prop else GRAPH_PROPERTIES[name]
        if name == "call_completes":
            doc = f"{doc}: {crashes[0]}"
        kind = "state" if prop is not None and prop.state else "step"
        result.violations.append(Violation(name, doc, kind, _trace(result, found[name], name)))
    for name, node in graph_found.items():
        result.violations.append(Violation(name, GRAPH_PROPERTIES[name], "graph",
                                           _trace(result, ("state", node), None)))
    result.seconds = time.perf_counter() - start  # graph properties and traces included
    return result


def _successor_orbits(config, stepper, cs, canon, state, step_always) -> tuple[set, set]:
    """The representatives of a state's successors, and (transition, property) step failures."""
    succ, failures = set(), set()
    pre = Concrete(config, state)
    stepper.begin(state)
    for ci, call in enumerate(cs):
        try:
            outcome = stepper(ci)
        except Exception:  # noqa: BLE001 - a crash is reported by the search itself
            failures.add((call.name, "call_completes"))
            continue
        if outcome is None:
            continue
        post = Concrete(config, outcome.state)
        for p in step_always:
            if not p.step(call.name, outcome.errno, pre, post):
                failures.add((call.name, p.name))
        if outcome.errno == 0:
            succ.add(canon(outcome.state))
    return succ, failures


def _check_equivariance(config, stepper, cs, sym, state, step_always) -> None:
    """Raise _Asymmetric unless every generator maps `state` to a state with the same successor
    orbits and the same step-property failures (a necessary condition of soundness, tested on
    the states a search expands first)."""
    mine = None
    for gen in sym.generators():
        other = sym.image(state, *gen)
        if other == state:
            continue
        if mine is None:
            mine = _successor_orbits(config, stepper, cs, sym.canonical, state, step_always)
        theirs = _successor_orbits(config, stepper, cs, sym.canonical, other, step_always)
        if theirs != mine:
            diff = sorted(str(x) for x in (theirs[1] ^ mine[1]))[:1]
            what = f"step properties differ ({diff[0]})" if diff else "successors differ"
            raise _Asymmetric(f"renamed states behave differently: {what}")


def unreduced_counts(result: Exploration) -> dict:
    """States and edges of the full (unreduced) graph, summed over the orbits of the nodes.

    Exact when the reduction is sound (see `Symmetry`): every state of an orbit has the same
    number of successful calls, and the full graph holds the whole orbit of every node."""
    sym: Symmetry = result.sym
    if sym.trivial:
        return {"states": len(result.states), "edges": result.edges}
    if sym.order > ORBIT_LIMIT:  # enumerating every renaming of every state would take too long
        return {"states": None, "edges": None}
    states = edges = 0
    out_calls = [0] * len(result.states)
    for u, _v, data in result.graph.edges(data=True):
        out_calls[u] += len(data["calls"])
    for node, state in enumerate(result.states):
        size = sym.orbit_size(state)
        states += size
        edges += size * out_calls[node]
    return {"states": states, "edges": edges}


def _host_owns_all_ram(config: Config, state: State) -> bool:
    return all(state.host[p] == OWNED for p in range(config.ram))


def _graph_properties(config: Config, graph: nx.DiGraph, states: list, found: dict) -> dict:
    """Nothing stranded (reverse reachability to all-host-owned states) and no dead end."""
    home = [n for n, s in enumerate(states) if _host_owns_all_ram(config, s)]
    can_return = set(home)
    stack = list(home)
    pred = graph.pred
    while stack:
        v = stack.pop()
        for u in pred[v]:
            if u not in can_return:
                can_return.add(u)
                stack.append(u)
    stranded = [n for n in range(len(states)) if n not in can_return]
    dead = [n for n in range(len(states))
            if not any(v != n for v in graph.succ[n])
            and not all(life == Life.TORN_DOWN for life in states[n].life)]
    if stranded:
        found["graph_nothing_stranded"] = stranded[0]
    if dead:
        found["graph_no_dead_end"] = dead[0]
    return {"nothing_stranded": not stranded, "stranded_states": len(stranded),
            "dead_ends": len(dead), "checked": True}


# -- traces -----------------------------------------------------------------------------------

def _path(result: Exploration, node: int) -> list[tuple[int, int]]:
    """(node, call index into it) along the BFS tree from the root, root excluded."""
    path = []
    while result.parent[node] != -1:
        path.append((node, result.via[node]))
        node = result.parent[node]
    path.reverse()
    return path


def _trace(result: Exploration, where: tuple, prop: str | None) -> list:
    """The shortest trace to `where`, replayed on concrete states from the initial state.

    Under symmetry the BFS tree links representatives: the call that leads from one node to the
    next was made on the representative, not on the state the trace is in. So the trace is
    replayed: from the concrete state, the first call (in `calls` order) of the same transition
    whose successor has the next node's representative is taken. The last step of a step
    violation is the first call from the last state that violates the property."""
    config, transitions = result.config, result.transitions
    canon = result.sym.canonical
    node = where[1]
    state = initial_state(config)
    trace = []
    for target, ci in _path(result, node):
        name = result.calls[ci].name
        want = result.states[target]
        chosen = None
        for call in [result.calls[ci]] + [c for c in result.calls if c.name == name]:
            outcome = step(config, state, call, transitions)
            if outcome is not None and outcome.errno == 0 and canon(outcome.state) == want:
                chosen = (call, outcome)
                break
        if chosen is None:  # the renaming does not commute with this transition (a mutant's)
            raise _Asymmetric(f"{result.calls[ci]} does not replay on a renamed state")
        call, outcome = chosen
        trace.append(TraceStep(call, outcome.errno, state, outcome.state))
        state = outcome.state
    if where[0] == "crash":
        name = result.calls[where[2]].name
        for call in [result.calls[where[2]]] + [c for c in result.calls if c.name == name]:
            try:
                step(config, state, call, transitions)
            except Exception:  # noqa: BLE001 - the crash being reported
                trace.append(TraceStep(call, None, state, state))
                break
    if where[0] == "step":
        ci = where[2]
        name = result.calls[ci].name
        props = result.props
        pre = Concrete(config, state)
        for call in [result.calls[ci]] + [c for c in result.calls if c.name == name]:
            outcome = step(config, state, call, transitions)
            if outcome is None:
                continue
            post = Concrete(config, outcome.state)
            if prop in props and props[prop].step and props[prop].step(
                    call.name, outcome.errno, pre, post):
                continue
            if prop == "errno_known" and outcome.errno < 0 and outcome.errno in ERRNO_NAMES:
                continue
            if prop not in props and prop != "errno_known" and outcome.errno == 0:
                continue
            trace.append(TraceStep(call, outcome.errno, state, outcome.state))
            break
    return trace


def trace_of(result: Exploration, node: int) -> list:
    """The shortest trace from the initial state to a node (replayed on concrete states)."""
    return _trace(result, ("state", node), None)
