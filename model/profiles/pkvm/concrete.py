"""The concrete reading of the pKVM protocol: its reads and writes on one `State`.

`model/concrete.py` gives the logic and the checks; this view adds what a pKVM body reads (every
page field, guest lifecycles, stage-2 entries) and writes, with range quantifiers over pages
and entries for the properties. `symbolic.py` beside it reads the same text as z3 terms.
"""

from __future__ import annotations

from model.concrete import ConcreteView
from model.profiles.pkvm.states import (
    MAP_PAGES, NOPAGE, PAGE_FIELDS, PAGE_INIT, POISON, SHARED_BORROWED, U64, VALID_STATES, Config,
    Leaf, Life, Mapping, PageReads, Region, State, find_leaf, find_mapping,
)

_NO_LEAF = Leaf(0, 1, 1, NOPAGE, 0, 0)


class Concrete(PageReads, ConcreteView):
    """One state seen through the transition vocabulary, with a write buffer for its successor."""

    def __init__(self, config: Config, state: State, transitions: dict | None = None):
        super().__init__(config, state, transitions)
        self.n = config.pages
        self.pin_max = config.pin_max
        self.count_max = config.count_max
        self.vcpus = config.vcpus
        self._pages: dict[str, list] = {}
        self._life: list | None = None
        self._refs: list | None = None
        self._mc: list | None = None
        self._s2: dict[int, list] = {}
        self._maps: dict[int, list] = {}

    @staticmethod
    def is_valid(state):
        return state in VALID_STATES

    @staticmethod
    def u64(x):
        """x as the kernel's u64 arithmetic leaves it (wrapped modulo 2**64)."""
        return x % U64

    def _pages_of(self, lo, n):
        """The pages of [lo, lo + n) that can differ: the stored ones, then the first page past
        them (every page above reads as a hole page does), so a range of 2**64 pages costs no
        more than the machine."""
        stored = range(max(lo, 0), min(lo + n, self.n))
        first_hole = max(lo, self.n)
        return [*stored, first_hole] if first_hole < lo + n else list(stored)

    def each_page(self, lo, n, errno_of, label=None):
        """The errno of the first page of [lo, lo + n) whose check fails, else 0."""
        if not self._live():
            return 0
        for p in self._pages_of(lo, n):
            err = errno_of(p)
            if err:
                return err
        return 0

    def all_pages(self, lo, n, pred):
        return all(pred(p) for p in self._pages_of(lo, n))

    def all_gfns(self, vm, lo, n, pred):
        return all(pred(g) for g in range(lo, lo + n))

    def forall_pages(self, pred):
        return all(pred(p) for p in range(self.n))

    def exists_page(self, pred):
        return any(pred(p) for p in range(self.n))

    def forall_vms(self, pred):
        return all(pred(v) for v in range(len(self.config.guests)))

    def _entries(self):
        for vm, leaves in enumerate(self.pre.s2):
            for leaf in leaves:
                for g in range(leaf.gfn, leaf.gfn + leaf.span):
                    yield vm, g

    def forall_entries(self, pred):
        """pred holds for every (vm, gfn) whose stage-2 entry is valid or poisoned."""
        return all(pred(vm, g) for vm, g in self._entries())

    def exists_entry(self, pred):
        return any(pred(vm, g) for vm, g in self._entries())

    def forall_mappings(self, pred):
        """pred holds for every (vm, gfn) the host's pkvm_mappings cover."""
        return all(pred(vm, g) for vm, maps in enumerate(self.pre.maps)
                   for m in maps for g in range(m.gfn, m.gfn + m.nr))

    def borrowers(self, p):
        """How many guest entries borrow page p (SHARED_BORROWED leaves mapping it)."""
        return sum(1 for vm, g in self._entries()
                   if self.e_state(vm, g) == SHARED_BORROWED and self.e_pfn(vm, g) == p)

    # -- reads of the pre-state --------------------------------------------------------------
    def page(self, field, p):
        if 0 <= p < self.n:
            return getattr(self.pre, field)[p]
        return PAGE_INIT[field]


    def region(self, p):
        return self.config.region(p)

    def ram_page(self, p):
        """p is a page of (allowed) RAM, the pages the invariants speak of."""
        return self.config.region(p) == Region.RAM

    def is_guest(self, vm):
        return 0 <= vm < len(self.config.guests)

    def protected(self, vm):
        return self.is_guest(vm) and self.config.guests[vm]

    def life(self, vm):
        return self.pre.life[vm] if self.is_guest(vm) else Life.TORN_DOWN

    def refs(self, vm):
        return self.pre.refs[vm] if self.is_guest(vm) else 0

    def host_records(self):
        """Whether the host kernel's own records (hyp_shared_pfns) are modelled."""
        return self.config.host_records

    def memcache(self, vm):
        """Pages in vm's memcache; when the memcache is not modelled, always what a map takes."""
        if not self.config.memcache:
            return MAP_PAGES
        return self.pre.mc[vm] if self.is_guest(vm) else 0

    def _leaf(self, vm, g):
        if not self.is_guest(vm):
            return _NO_LEAF
        return find_leaf(self.pre.s2[vm], g) or _NO_LEAF

    def e_state(self, vm, g): return self._leaf(vm, g).state
    def e_prot(self, vm, g): return self._leaf(vm, g).prot
    def e_size(self, vm, g): return self._leaf(vm, g).size

    def e_pfn(self, vm, g):
        leaf = self._leaf(vm, g)
        return leaf.pfn + (g - leaf.gfn) if leaf.state != POISON and leaf.state != NOPAGE else 0

    def _mapping(self, vm, g):
        return find_mapping(self.pre.maps[vm], g) if self.is_guest(vm) else None

    def m_nr(self, vm, g):
        """Pages of the host's record of a mapping covering vm's gfn g (0: none)."""
        m = self._mapping(vm, g)
        return m.nr if m else 0

    def m_pfn(self, vm, g):
        """The pfn the host's record maps at vm's gfn g (0 without a record)."""
        m = self._mapping(vm, g)
        return m.pfn + (g - m.gfn) if m else 0

    # -- writes ------------------------------------------------------------------------------
    def set(self, field, p, value):
        self.set_range(field, p, 1, lambda _p: value)

    def set_range(self, field, lo, n, value_of):
        if not self._live():
            return
        column = self._pages.get(field)
        if column is None:
            column = self._pages[field] = list(getattr(self.pre, field))
        for p in range(max(lo, 0), min(lo + n, self.n)):  # holes have no metadata to write
            column[p] = value_of(p)

    def set_life(self, vm, value):
        if not self._live():
            return
        if self._life is None:
            self._life = list(self.pre.life)
        self._life[vm] = value

    def set_refs(self, vm, value):
        if not self._live():
            return
        if self._refs is None:
            self._refs = list(self.pre.refs)
        self._refs[vm] = value

    def set_memcache(self, vm, value):
        if not self._live() or not self.config.memcache:
            return
        if self._mc is None:
            self._mc = list(self.pre.mc)
        self._mc[vm] = value

    def _leaves(self, vm):
        if vm not in self._s2:
            self._s2[vm] = list(self.pre.s2[vm])
        return self._s2[vm]

    def map_leaf(self, vm, gfn, size, state, prot, pfn):
        """Install one leaf over gfns [gfn, gfn + size) (callers check the range was empty)."""
        if not self._live():
            return
        leaves = self._leaves(vm)
        leaves[:] = _carve(leaves, gfn, size)
        leaves.append(Leaf(gfn, size, size, state, prot, pfn))
        leaves.sort()

    def unmap_leaf(self, vm, gfn, size):
        """Clear every entry of [gfn, gfn + size)."""
        if not self._live():
            return
        leaves = self._leaves(vm)
        leaves[:] = _carve(leaves, gfn, size)

    def poison(self, vm, gfn):
        """Replace a page leaf by a POISON marker."""
        self.map_leaf(vm, gfn, 1, POISON, 0, 0)

    def set_entry_state(self, vm, gfn, state):
        """Change the page state bits of the page leaf at gfn, keeping its mapping."""
        if not self._live():
            return
        leaf = self._leaf(vm, gfn)
        self.map_leaf(vm, gfn, 1, state, leaf.prot, self.e_pfn(vm, gfn))

    def _mappings(self, vm):
        if vm not in self._maps:
            self._maps[vm] = list(self.pre.maps[vm])
        return self._maps[vm]

    def record_mapping(self, vm, gfn, nr, pfn):
        """The host inserts its record of a mapping it made (callers check none overlaps)."""
        if not self._live() or not self.config.host_records:
            return
        maps = self._mappings(vm)
        maps.append(Mapping(gfn, nr, pfn))
        maps.sort()

    def drop_mapping(self, vm, gfn, nr):
        """The host removes its records of mappings overlapping gfns [gfn, gfn + nr)."""
        if not self._live() or not self.config.host_records:
            return
        maps = self._mappings(vm)
        maps[:] = [m for m in maps if m.gfn + m.nr <= gfn or gfn + nr <= m.gfn]

    def drop_mappings(self, vm):
        """The host frees every record of the VM (with its kvm_pgtable)."""
        if not self._live() or not self.pre.maps[vm]:
            return
        self._maps[vm] = []

    def clear_vm(self, vm):
        if not self._live():
            return
        self._s2[vm] = []

    def no_valid_leaf(self, vm):
        """No guest named vm, or none of its entries is valid."""
        return not self.is_guest(vm) or not any(leaf.state != POISON for leaf in self.pre.s2[vm])

    def post(self) -> State:
        """The successor state: the pre-state with every write applied."""
        if (not self._pages and self._life is None and self._refs is None and self._mc is None
                and not self._s2 and not self._maps):
            return self.pre
        fields = [tuple(self._pages[f]) if f in self._pages else getattr(self.pre, f)
                  for f in PAGE_FIELDS]
        life = tuple(self._life) if self._life is not None else self.pre.life
        s2 = self.pre.s2
        if self._s2:
            s2 = tuple(tuple(self._s2[v]) if v in self._s2 else s2[v] for v in range(len(s2)))
        refs = tuple(self._refs) if self._refs is not None else self.pre.refs
        mc = tuple(self._mc) if self._mc is not None else self.pre.mc
        maps = self.pre.maps
        if self._maps:
            maps = tuple(tuple(self._maps[v]) if v in self._maps else maps[v]
                         for v in range(len(maps)))
        return State(*fields, life=life, s2=s2, refs=refs, mc=mc, maps=maps)


def _carve(leaves: list, gfn: int, size: int) -> list:
    """The leaves with gfns [gfn, gfn + size) cut out; entries outside keep their leaf size."""
    out = []
    for leaf in leaves:
        end = leaf.gfn + leaf.span
        if end <= gfn or gfn + size <= leaf.gfn:
            out.append(leaf)
            continue
        if leaf.gfn < gfn:
            out.append(leaf._replace(span=gfn - leaf.gfn))
        if gfn + size < end:
            cut = gfn + size - leaf.gfn
            pfn = leaf.pfn + cut if leaf.state != POISON else 0
            out.append(leaf._replace(gfn=gfn + size, span=end - gfn - size, pfn=pfn))
    return out
