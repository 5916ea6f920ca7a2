"""The state of a pKVM machine: what every entity sees of every page, and the entries enforcing it.

A state is an immutable, hashable tuple of small tuples, so the explorer can hash millions of
them. Per physical page it holds the host's, the hypervisor's and FF-A's view, the pin refcount,
`host_share_guest_count`, the host stage-2 entry (zero, valid identity map, or invalid with an
annotation), whether hyp stage-1 maps it, what it holds and the host kernel's own record of
how often it shared it with the hypervisor (`hyp_shared_pfns`); per guest, its lifecycle, its
stage-2 leaves, its refcount, the pages in its memcache and the host kernel's own record of what
it mapped into the guest (`pkvm_mappings`). The static part of the machine (memory regions, guest kinds, the argument domains
the explorer tries) is the `Config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class PageState(IntEnum):
    """One entity's view of one page: the kernel's 2-bit `enum pkvm_page_state`, plus POISON."""

    OWNED = 0b00
    SHARED_OWNED = 0b01
    SHARED_BORROWED = 0b10
    NOPAGE = 0b11
    POISON = 0b100  # only in a guest stage-2: the host took the page back by force


OWNED, SHARED_OWNED, SHARED_BORROWED, NOPAGE, POISON = PageState
VALID_STATES = (OWNED, SHARED_OWNED, SHARED_BORROWED)


class Owner(IntEnum):
    """Component ids, also the lock order (host, then hyp or guest)."""

    HOST = 0
    HYP = 1
    GUEST = 2


class PteKind(IntEnum):
    """What a host stage-2 entry is: zero (host-owned, not faulted in), valid identity, annotated."""

    ZERO = 0
    VALID = 1
    ANNOTATED = 2


class Annotation(IntEnum):
    """Type of an invalid annotated host stage-2 entry (PTE bits 63:60)."""

    NONE = 0
    LOCKED = 1
    DONATION = 2
    POISONED = 3


class Life(IntEnum):
    """A guest's lifecycle in the hypervisor's VM table."""

    RUNNING = 0
    DYING = 1
    TORN_DOWN = 2


class Region(IntEnum):
    """Which region a pfn falls in: a memblock of RAM, MMIO (no memblock), a memblock of RAM
    marked MEMBLOCK_NOMAP (memory the hypervisor never lets the host give away), a hole."""

    RAM = 0
    MMIO = 1
    HOLE = 2
    NOMAP = 3


class Contents(IntEnum):
    """What a page holds; a protected guest's private data is SECRET_BASE + its handle."""

    ZERO = 0
    HOST = 1
    HYP = 2
    PUBLIC = 3
    SECRET_BASE = 4


PROT_X, PROT_W, PROT_R = 1, 2, 4
PROT_RWX = PROT_R | PROT_W | PROT_X
BLOCK_PAGES = 512  # one level-2 block of the 4 KiB granule: 2 MiB
PA_PAGES = 2**36  # 48-bit physical address space
IPA_PAGES = 2**36  # 48-bit guest IPA space
U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64 = 2**64  # hypercall arguments are u64 registers: values in [0, U64)
MAP_PAGES = 1  # memcache pages a guest stage-2 map takes (an abstraction of the tables it may need)


class Leaf(NamedTuple):
    """Guest stage-2 entries for gfns [gfn, gfn + span): one leaf of `size` pages, or what is
    left of it after part was overwritten (then span < size; the entries keep their leaf size)."""

    gfn: int
    span: int
    size: int
    state: int
    prot: int
    pfn: int  # pfn mapped at gfn (0 for POISON)


class Mapping(NamedTuple):
    """The host kernel's record of one guest mapping it made (arch/arm64/kvm/pkvm.c, `struct
    pkvm_mapping` in the VM's `pkvm_mappings` tree): gfns [gfn, gfn + nr) -> pfns [pfn, pfn + nr)."""

    gfn: int
    nr: int
    pfn: int


PAGE_FIELDS = (
    "host", "hyp", "ffa", "pins", "count",
    "pte_kind", "pte_type", "pte_owner", "pte_handle", "pte_gfn",
    "hyp_mapped", "contents", "shared",
)
# A page's value in every field when nothing has happened to it (also what a hole page reads).
PAGE_INIT = {
    "host": OWNED, "hyp": NOPAGE, "ffa": NOPAGE, "pins": 0, "count": 0,
    "pte_kind": PteKind.ZERO, "pte_type": Annotation.NONE, "pte_owner": Owner.HOST,
    "pte_handle": 0, "pte_gfn": 0, "hyp_mapped": False, "contents": Contents.ZERO, "shared": 0,
}



class PageReads:
    """The named reads of a page's fields, the same in every reading (each gives `page`)."""

    def host(self, p): return self.page("host", p)
    def hyp(self, p): return self.page("hyp", p)
    def ffa(self, p): return self.page("ffa", p)
    def pins(self, p): return self.page("pins", p)
    def count(self, p): return self.page("count", p)
    def pte_kind(self, p): return self.page("pte_kind", p)
    def pte_type(self, p): return self.page("pte_type", p)
    def pte_owner(self, p): return self.page("pte_owner", p)
    def pte_handle(self, p): return self.page("pte_handle", p)
    def pte_gfn(self, p): return self.page("pte_gfn", p)
    def hyp_mapped(self, p): return self.page("hyp_mapped", p)
    def contents(self, p): return self.page("contents", p)
    def shared(self, p): return self.page("shared", p)


class State(NamedTuple):
    """One machine state: a tuple per page field (indexed by pfn), per-guest lifecycle and leaves."""

    host: tuple
    hyp: tuple
    ffa: tuple
    pins: tuple
    count: tuple
    pte_kind: tuple
    pte_type: tuple
    pte_owner: tuple
    pte_handle: tuple
    pte_gfn: tuple
    hyp_mapped: tuple
    contents: tuple
    shared: tuple  # the host's own record, hyp_shared_pfns: how often it shared the pfn with hyp
    life: tuple  # Life per guest
    s2: tuple  # per guest: tuple of Leaf sorted by gfn
    refs: tuple  # per guest: the VM's refcount, one per loaded vCPU
    mc: tuple  # per guest: pages in its memcache (all 0 when the memcache is not modelled)
    maps: tuple  # per guest: the host's pkvm_mappings, tuple of Mapping sorted by gfn


@dataclass(frozen=True)
class Config:
    """The static machine plus the argument domains a bounded exploration tries."""

    ram: int = 2
    mmio: int = 1
    guests: tuple[bool, ...] = (True, False)  # protected flag of each guest, handle = index
    gfns: int = 2  # gfns [0, gfns) are tried
    nrs: tuple[int, ...] = (1, 2)  # nr_pages tried by multi-page calls
    prots: tuple[int, ...] = (PROT_R | PROT_W,)  # prot tried by host_share_guest
    max_pins: int = 2  # exploration bound on the pin refcount
    pin_max: int = U16_MAX  # width of the pin refcount (smaller widths reach overflow in a few steps)
    count_max: int = U32_MAX  # width of host_share_guest_count
    hole_pfns: int = 1  # pfns past the no-map pages tried (memory holes)
    nomap: int = 1  # MEMBLOCK_NOMAP pages after MMIO: RAM the host may not give away
    host_discipline: bool = True  # the host finalizes a VM only once it holds nothing
    vcpus: int = 1  # vCPUs of each VM (each loaded one holds a reference on its VM)
    memcache: int = 0  # 0: not modelled (always enough); N: the host tops a VM's up to N pages
    host_records: bool = False  # model the host kernel's hyp_shared_pfns and pkvm_mappings
    max_shares: int = 2  # exploration bound on the structures the host shares on one pfn

    @property
    def pages(self) -> int:
        """Pages the state stores: RAM, then MMIO, then no-map RAM."""
        return self.ram + self.mmio + self.nomap

    def validate(self) -> None:
        """Reject configurations that describe no machine, naming the problem."""
        if self.ram < 1:
            raise ValueError(f"need at least one RAM page, got {self.ram}")
        if self.mmio < 0 or self.hole_pfns < 0 or self.nomap < 0:
            raise ValueError("mmio, no-map and hole page counts cannot be negative")
        if self.gfns < 1:
            raise ValueError(f"need at least one gfn, got {self.gfns}")
        if any(not 0 <= nr < U64 for nr in self.nrs):
            raise ValueError(f"nr_pages must be u64 values (0 .. 2**64 - 1), got {self.nrs}")
        if any(not 0 <= p <= 15 for p in self.prots):
            raise ValueError(f"prot must be 0..15, got {self.prots}")
        if not 0 <= self.max_pins <= self.pin_max:
            raise ValueError(f"max_pins must be 0..{self.pin_max}, got {self.max_pins}")
        if self.memcache < 0:
            raise ValueError(f"memcache bound cannot be negative, got {self.memcache}")
        if self.vcpus < 1:
            raise ValueError(f"a VM needs at least one vCPU, got {self.vcpus}")
        if not 1 <= self.pin_max <= U16_MAX or not 1 <= self.count_max <= U32_MAX:
            raise ValueError("counter widths must be at least 1 and at most the kernel's")

    def region(self, pfn: int) -> Region:
        if pfn < self.ram:
            return Region.RAM
        if pfn < self.ram + self.mmio:
            return Region.MMIO
        if pfn < self.pages:
            return Region.NOMAP
        return Region.HOLE


def initial_state(config: Config) -> State:
    """Every RAM page host OWNED and untouched; every guest RUNNING with an empty stage-2, no
    vCPU loaded and an empty memcache."""
    n = config.pages
    pages = [tuple([PAGE_INIT[f]] * n) for f in PAGE_FIELDS]
    guests = len(config.guests)
    return State(*pages, life=(Life.RUNNING,) * guests, s2=((),) * guests, refs=(0,) * guests,
                 mc=(0,) * guests, maps=((),) * guests)


def find_leaf(leaves: tuple, gfn: int) -> Leaf | None:
    """The leaf of a guest stage-2 covering gfn, if any."""
    for leaf in leaves:
        if leaf.gfn <= gfn < leaf.gfn + leaf.span:
            return leaf
    return None


def find_mapping(maps: tuple, gfn: int) -> Mapping | None:
    """The host's record of a guest mapping covering gfn, if any."""
    for m in maps:
        if m.gfn <= gfn < m.gfn + m.nr:
            return m
    return None


def guest_view(state: State, vm: int, pfn: int) -> PageState:
    """Guest vm's view of physical page pfn: the state of a leaf mapping it, else NOPAGE."""
    for leaf in state.s2[vm]:
        if leaf.state != POISON and leaf.pfn <= pfn < leaf.pfn + leaf.span:
            return PageState(leaf.state)
    return NOPAGE


def views(config: Config, state: State, pfn: int) -> dict[str, PageState]:
    """Every entity's view of one page, keyed host, hyp, ffa, vm0, vm1, ..."""
    out = {
        "host": PageState(state.host[pfn]),
        "hyp": PageState(state.hyp[pfn]),
        "ffa": PageState(state.ffa[pfn]),
    }
    for vm in range(len(config.guests)):
        out[f"vm{vm}"] = guest_view(state, vm, pfn)
    return out
