"""The symbolic reading of the protocol: the same transition and property text, as z3 terms.

A state is a set of z3 arrays indexed by unbounded integers: page fields by pfn, guest fields by
handle, stage-2 entries by (handle, gfn). The machine itself is symbolic too: `ram`, `mmio` and
`guests` are unconstrained naturals and `protected` an arbitrary predicate, so a proof over these
terms holds for every number of pages and guests.

A transition body runs once over a `SymbolicStep`: each yielded check folds into the call's errno
(the first non-zero one wins), each write is guarded by "no check has failed yet" (so a write
placed before a failing check really happens, as in the concrete reading), and range checks get
a witness for their first failing page.

`host_share_guest_count` needs one ghost: the bijection `slot`/`holder` between the count's
slots [0, count) and the guest entries that borrow the page. The property "count equals the
number of borrowers" is stated through it (`borrowers(p)` is the ghost size `nb(p)`), and the
leaf writes maintain it by appending a new borrower at the end and removing one by moving the
last borrower into its slot. This is the strengthening that makes the count invariant inductive.
"""

from __future__ import annotations

import z3

from model.profiles.pkvm.states import (
    MAP_PAGES, NOPAGE, PA_PAGES, PAGE_FIELDS, PAGE_INIT, POISON, SHARED_BORROWED, U16_MAX, U32_MAX,
    U64, VALID_STATES, PageReads,
)
from model.symbolic import BOOL, INT, SymbolicReading, SymbolicSteps, fresh

ENTRY_FIELDS = ("e_state", "e_prot", "e_pfn", "e_size")
ENTRY_EMPTY = {"e_state": NOPAGE, "e_prot": 0, "e_pfn": 0, "e_size": 1}
GHOST_FIELDS = ("nb", "slot", "holder_v", "holder_g")
# The host's pkvm_mappings, per (vm, gfn): the pages of the record covering gfn (0: none) and
# the pfn it maps there.
MAPPING_FIELDS = ("m_nr", "m_pfn")


def _sort_of(field: str):
    return BOOL if field == "hyp_mapped" else INT


class Machine:
    """The static part: how much RAM, MMIO and no-map RAM, how many guests, which are protected,
    whether memcaches and the host's records are modelled."""

    def __init__(self, tag: str = ""):
        self.ram = z3.Int(f"ram{tag}")
        self.mmio = z3.Int(f"mmio{tag}")
        self.nomap = z3.Int(f"nomap{tag}")
        self.vcpus = z3.Int(f"vcpus{tag}")
        self.guests = z3.Int(f"guests{tag}")
        self.protected = z3.Array(f"protected{tag}", INT, BOOL)
        self.memcache = z3.Bool(f"memcache{tag}")  # whether the machine models its memcache
        self.records = z3.Bool(f"records{tag}")  # whether it models the host's hyp_shared_pfns

    def axioms(self):
        return [self.ram >= 1, self.mmio >= 0, self.nomap >= 0, self.pages <= PA_PAGES,
                self.guests >= 0, self.vcpus >= 1]

    @property
    def pages(self):
        """Pages with metadata: RAM, MMIO, no-map RAM."""
        return self.ram + self.mmio + self.nomap


class SymbolicState:
    """One state as z3 arrays (named after the fields of `model.states.State`)."""

    def __init__(self, arrays: dict):
        self.arrays = arrays

    @classmethod
    def fresh(cls, tag: str):
        arrays = {f: z3.Array(f"{f}{tag}", INT, _sort_of(f)) for f in PAGE_FIELDS}
        arrays["life"] = z3.Array(f"life{tag}", INT, INT)
        arrays["refs"] = z3.Array(f"refs{tag}", INT, INT)
        arrays["mc"] = z3.Array(f"mc{tag}", INT, INT)
        for f in ENTRY_FIELDS + MAPPING_FIELDS:
            arrays[f] = z3.Array(f"{f}{tag}", INT, INT, INT)
        arrays["nb"] = z3.Array(f"nb{tag}", INT, INT)
        arrays["slot"] = z3.Array(f"slot{tag}", INT, INT, INT)
        arrays["holder_v"] = z3.Array(f"holder_v{tag}", INT, INT, INT)
        arrays["holder_g"] = z3.Array(f"holder_g{tag}", INT, INT, INT)
        return cls(arrays)

    def same_as(self, other: SymbolicState, ghost: bool = False):
        """Equality of every model field (the ghost is not part of the kernel's state)."""
        fields = [f for f in self.arrays if ghost or f not in GHOST_FIELDS]
        return z3.And(*[self.arrays[f] == other.arrays[f] for f in fields])


class Symbolic(PageReads, SymbolicReading):
    """A state read through the transition/property vocabulary, as z3 terms."""

    def __init__(self, machine: Machine, state: SymbolicState, transitions: dict | None = None):
        super().__init__()
        self.machine = machine
        self.state = state
        self.transitions = transitions or {}
        self.pin_max = U16_MAX
        self.count_max = U32_MAX
        self.vcpus = machine.vcpus

    @staticmethod
    def is_valid(state):
        return z3.Or(*[state == v for v in VALID_STATES])

    def _entry(self, v, g):
        return z3.And(v >= 0, g >= 0, self.is_guest(v), self.e_state(v, g) != NOPAGE)

    @staticmethod
    def u64(x):
        """x wrapped modulo 2**64, as the kernel's u64 arithmetic leaves it: exact for the sum
        or difference of two u64 values (all the readings form), and linear, unlike `%`."""
        return z3.If(x < 0, x + U64, z3.If(x < U64, x, x - U64))

    def forall_pages(self, pred):
        return self._quantify("page", lambda p: p >= 0, pred)

    def exists_page(self, pred):
        return self._quantify("page", lambda p: p < self.machine.pages, pred, universal=False)

    def forall_vms(self, pred):
        return self._quantify("vm", self.is_guest, pred)

    def forall_entries(self, pred):
        return self._quantify("entry", self._entry, pred, arity=2)

    def exists_entry(self, pred):
        return self._quantify("entry", self._entry, pred, universal=False, arity=2)

    def all_pages(self, lo, n, pred):
        return self._quantify("page", lambda j: z3.And(j >= lo, j < lo + n), pred)

    def all_gfns(self, vm, lo, n, pred):
        return self._quantify("gfn", lambda j: z3.And(j >= lo, j < lo + n), pred)

    # -- reads -------------------------------------------------------------------------------
    def page(self, field, p):
        return z3.Select(self.state.arrays[field], p)


    def region(self, p):
        m = self.machine
        return z3.If(p < m.ram, 0, z3.If(p < m.ram + m.mmio, 1, z3.If(p < m.pages, 3, 2)))

    def ram_page(self, p):
        """region(p) == RAM, as one comparison (the invariants read it on every page)."""
        return p < self.machine.ram

    def is_guest(self, vm):
        return z3.And(vm >= 0, vm < self.machine.guests)

    def protected(self, vm):
        return z3.And(self.is_guest(vm), z3.Select(self.machine.protected, vm))

    def life(self, vm):
        return z3.If(self.is_guest(vm), z3.Select(self.state.arrays["life"], vm), 2)

    def refs(self, vm):
        return z3.If(self.is_guest(vm), z3.Select(self.state.arrays["refs"], vm), 0)

    def host_records(self):
        return self.machine.records

    def memcache(self, vm):
        """As concretely: a machine that does not model memcaches always has what a map takes."""
        return z3.If(self.machine.memcache,
                     z3.If(self.is_guest(vm), z3.Select(self.state.arrays["mc"], vm), 0), MAP_PAGES)

    def _e(self, field, vm, g):
        return z3.Select(self.state.arrays[field], vm, g)

    def e_state(self, vm, g): return self._e("e_state", vm, g)
    def e_prot(self, vm, g): return self._e("e_prot", vm, g)
    def e_pfn(self, vm, g): return self._e("e_pfn", vm, g)
    def e_size(self, vm, g): return self._e("e_size", vm, g)

    def forall_mappings(self, pred):
        """pred holds for every (vm, gfn) a host record covers (quantified like entries)."""
        return self._quantify("entry", lambda v, g: z3.And(
            v >= 0, g >= 0, self.is_guest(v), self.m_nr(v, g) != 0), pred, arity=2)

    def m_nr(self, vm, g): return z3.If(self.is_guest(vm), self._e("m_nr", vm, g), 0)
    def m_pfn(self, vm, g): return z3.If(self.is_guest(vm), self._e("m_pfn", vm, g), 0)

    def borrowers(self, p):
        """The ghost count of borrowers; `ghost_invariant` ties it to the real entries."""
        return z3.Select(self.state.arrays["nb"], p)

    def no_valid_leaf(self, vm):
        """No guest named vm, or none of its entries is valid."""
        return z3.Or(z3.Not(self.is_guest(vm)), self._quantify(
            "gfn", lambda g: g >= 0, lambda g: z3.Not(self.is_valid(self.e_state(vm, g)))))

    def same_state(self, other: Symbolic):
        return self.state.same_as(other.state)


def ghost_invariant(s: Symbolic):
    """slot/holder is a bijection between [0, nb(p)) and the entries borrowing p."""
    a = s.state.arrays

    def holder(p, i):
        return z3.Select(a["holder_v"], p, i), z3.Select(a["holder_g"], p, i)

    def slot(v, g):
        return z3.Select(a["slot"], v, g)

    borrowing = s.forall_entries(lambda v, g: z3.Implies(
        s.e_state(v, g) == SHARED_BORROWED,
        z3.And(slot(v, g) >= 0, slot(v, g) < s.borrowers(s.e_pfn(v, g)),
               holder(s.e_pfn(v, g), slot(v, g))[0] == v,
               holder(s.e_pfn(v, g), slot(v, g))[1] == g)))
    slots = s.forall_pages(lambda p: z3.And(s.borrowers(p) >= 0, s._quantify(
        "slot", lambda i: i < s.borrowers(p), lambda i: z3.And(
            s.is_guest(holder(p, i)[0]), holder(p, i)[1] >= 0,
            s.e_state(*holder(p, i)) == SHARED_BORROWED, s.e_pfn(*holder(p, i)) == p,
            slot(*holder(p, i)) == i))))
    return z3.And(borrowing, slots)


class SymbolicStep(SymbolicSteps, Symbolic):
    """Runs one transition body: reads the pre-state, builds the post-state and the errno."""

    # -- writes ------------------------------------------------------------------------------
    def _stored(self, p):
        """Only RAM, MMIO and no-map pages have metadata: a write to a hole is dropped, as
        concretely (a range write too: a check on a wrapped end lets one reach past them)."""
        return z3.And(p >= 0, p < self.machine.pages)

    def set(self, field, p, value):
        arr = self.post[field]
        on = z3.And(self._on(), self._stored(p))
        self.post[field] = z3.Store(arr, p, z3.If(on, value, z3.Select(arr, p)))

    def set_range(self, field, lo, n, value_of):
        arr, on, q = self.post[field], self._on(), fresh("q")
        self.post[field] = z3.Lambda([q], z3.If(z3.And(on, q >= lo, q < lo + n, self._stored(q)),
                                                value_of(q), z3.Select(arr, q)))

    def set_life(self, vm, value):
        arr = self.post["life"]
        self.post["life"] = z3.Store(arr, vm, z3.If(self._on(), value, z3.Select(arr, vm)))

    def set_refs(self, vm, value):
        arr = self.post["refs"]
        self.post["refs"] = z3.Store(arr, vm, z3.If(self._on(), value, z3.Select(arr, vm)))

    def set_memcache(self, vm, value):
        arr, on = self.post["mc"], z3.And(self._on(), self.machine.memcache)
        self.post["mc"] = z3.Store(arr, vm, z3.If(on, value, z3.Select(arr, vm)))

    def _set_entries(self, in_range, values):
        """Write entry fields for every (v, g) with in_range(v, g); values maps field -> fn(v, g)."""
        on = self._on()
        v, g = fresh("v"), fresh("g")
        for field, value_of in values.items():
            arr = self.post[field]
            self.post[field] = z3.Lambda([v, g], z3.If(z3.And(on, in_range(v, g)),
                                                       value_of(v, g), z3.Select(arr, v, g)))

    def _in_leaf(self, vm, gfn, size):
        return lambda v, g: z3.And(v == vm, g >= gfn, g < gfn + size)

    def map_leaf(self, vm, gfn, size, state, prot, pfn):
        self._ghost_remove(vm, gfn, size)
        self._set_entries(self._in_leaf(vm, gfn, size), {
            "e_state": lambda v, g: state, "e_prot": lambda v, g: prot,
            "e_pfn": lambda v, g: pfn + (g - gfn), "e_size": lambda v, g: size})
        self._ghost_add(vm, gfn, size, state, pfn)

    def unmap_leaf(self, vm, gfn, size):
        self._ghost_remove(vm, gfn, size)
        self._set_entries(self._in_leaf(vm, gfn, size),
                          {f: (lambda v, g, x=x: x) for f, x in ENTRY_EMPTY.items()})

    def poison(self, vm, gfn):
        self._ghost_remove(vm, gfn, 1)
        empty = dict(ENTRY_EMPTY, e_state=POISON)
        self._set_entries(self._in_leaf(vm, gfn, 1),
                          {f: (lambda v, g, x=x: x) for f, x in empty.items()})

    def set_entry_state(self, vm, gfn, state):
        self._ghost_remove(vm, gfn, 1)
        self._set_entries(self._in_leaf(vm, gfn, 1), {"e_state": lambda v, g: state})
        self._ghost_add(vm, gfn, 1, state, self.e_pfn(vm, gfn))

    def clear_vm(self, vm):
        self._set_entries(lambda v, g: v == vm,
                          {f: (lambda v, g, x=x: x) for f, x in ENTRY_EMPTY.items()})

    def record_mapping(self, vm, gfn, nr, pfn):
        """The host's record of [gfn, gfn + nr) -> pfn.. (only on a machine that models it)."""
        on = self.machine.records
        self._set_entries(lambda v, g: z3.And(on, v == vm, g >= gfn, g < gfn + nr), {
            "m_nr": lambda v, g: nr, "m_pfn": lambda v, g: pfn + (g - gfn)})

    def drop_mapping(self, vm, gfn, nr):
        """The host's records of gfns [gfn, gfn + nr) removed (the callers name a whole record:
        the leaf the hypercall just unmapped, which the record matches)."""
        self._set_entries(lambda v, g: z3.And(v == vm, g >= gfn, g < gfn + nr),
                          {f: (lambda v, g: 0) for f in MAPPING_FIELDS})

    def drop_mappings(self, vm):
        self._set_entries(lambda v, g: v == vm, {f: (lambda v, g: 0) for f in MAPPING_FIELDS})

    # -- the ghost bijection -----------------------------------------------------------------
    def _post_read(self, field, *idx):
        return z3.Select(self.post[field], *idx)

    def _ghost_add(self, vm, gfn, size, state, pfn):
        """Borrowers appended: entry gfn + i gets slot nb(pfn + i) of page pfn + i."""
        on = z3.And(self._on(), state == SHARED_BORROWED)
        q, i, v, g = fresh("q"), fresh("i"), fresh("v"), fresh("g")
        nb = self.post["nb"]
        in_pages = lambda q: z3.And(on, q >= pfn, q < pfn + size)
        at_end = lambda q, i: z3.And(in_pages(q), i == z3.Select(nb, q))
        self.post["holder_v"] = z3.Lambda([q, i], z3.If(
            at_end(q, i), vm, self._post_read("holder_v", q, i)))
        self.post["holder_g"] = z3.Lambda([q, i], z3.If(
            at_end(q, i), gfn + (q - pfn), self._post_read("holder_g", q, i)))
        slot = self.post["slot"]
        self.post["slot"] = z3.Lambda([v, g], z3.If(
            z3.And(on, v == vm, g >= gfn, g < gfn + size), z3.Select(nb, pfn + (g - gfn)),
            z3.Select(slot, v, g)))
        self.post["nb"] = z3.Lambda([q], z3.If(in_pages(q), z3.Select(nb, q) + 1,
                                               z3.Select(nb, q)))

    def _ghost_remove(self, vm, gfn, size):
        """Borrowers of a contiguous leaf removed: each page's last borrower takes the hole."""
        on = z3.And(self._on(), self.e_state(vm, gfn) == SHARED_BORROWED)
        base = self.e_pfn(vm, gfn)
        nb, hv, hg, slot = (self.post[f] for f in ("nb", "holder_v", "holder_g", "slot"))
        affected = lambda q: z3.And(on, q >= base, q < base + size)
        hole = lambda q: z3.Select(slot, vm, gfn + (q - base))
        last = lambda q: z3.Select(nb, q) - 1
        q, i, v, g = fresh("q"), fresh("i"), fresh("v"), fresh("g")
        moved = lambda q, i: z3.And(affected(q), i == hole(q))
        self.post["holder_v"] = z3.Lambda([q, i], z3.If(
            moved(q, i), z3.Select(hv, q, last(q)), z3.Select(hv, q, i)))
        self.post["holder_g"] = z3.Lambda([q, i], z3.If(
            moved(q, i), z3.Select(hg, q, last(q)), z3.Select(hg, q, i)))
        p_of = self.e_pfn(v, g)
        is_last = z3.And(self.e_state(v, g) == SHARED_BORROWED, affected(p_of),
                         z3.Select(hv, p_of, last(p_of)) == v,
                         z3.Select(hg, p_of, last(p_of)) == g)
        self.post["slot"] = z3.Lambda([v, g], z3.If(is_last, hole(p_of), z3.Select(slot, v, g)))
        self.post["nb"] = z3.Lambda([q], z3.If(affected(q), last(q), z3.Select(nb, q)))

    def post_state(self) -> SymbolicState:
        return SymbolicState(dict(self.post))


def initial(machine: Machine) -> SymbolicState:
    """The initial state of `model.states.initial_state`, for every machine size at once."""
    arrays = {f: z3.K(INT, z3.BoolVal(PAGE_INIT[f]) if f == "hyp_mapped" else z3.IntVal(int(PAGE_INIT[f])))
              for f in PAGE_FIELDS}
    arrays["life"] = z3.K(INT, z3.IntVal(0))
    arrays["refs"] = z3.K(INT, z3.IntVal(0))
    arrays["mc"] = z3.K(INT, z3.IntVal(0))
    v, g = fresh("v"), fresh("g")
    for f, x in ENTRY_EMPTY.items():
        arrays[f] = z3.Lambda([v, g], z3.IntVal(int(x)))
    for f in MAPPING_FIELDS:
        arrays[f] = z3.Lambda([v, g], z3.IntVal(0))
    arrays["nb"] = z3.K(INT, z3.IntVal(0))
    for f in ("slot", "holder_v", "holder_g"):
        arrays[f] = z3.Array(f"{f}_init", INT, INT, INT)
    return SymbolicState(arrays)
