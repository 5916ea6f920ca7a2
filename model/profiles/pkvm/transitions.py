"""Every call of the pKVM page-ownership protocol, each written once (Linux 7.1 `mem_protect.c`).

A transition is a generator over a view `s` (`concrete.py`, `symbolic.py` beside this file): it
yields its checks in the kernel's order (`s.require(ok, errno, label)` is 0 or -errno, the label
the check's name) and then writes the new values. Reads always see the pre-state. The concrete
reading stops at the first failing check; the symbolic one turns the same text into a z3
relation. `docs/contract.md` is the table of these definitions.
"""

from __future__ import annotations

from errno import E2BIG, EAGAIN, EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM, EPERM, ERANGE

from model.profiles.pkvm.states import (
    BLOCK_PAGES, IPA_PAGES, MAP_PAGES, NOPAGE, OWNED, PA_PAGES, POISON, PROT_RWX, PROT_W,
    SHARED_BORROWED, SHARED_OWNED, Annotation, Contents, Life, Owner, PteKind, Region,
)
from model.transitions import EHWPOISON, Protocol, delegate, name_outcomes

# A failure after a call's first write (a WARN_ON or BUG at EL2) takes the hypervisor down: an
# outcome of its own, never an errno the host sees.
HYP_PANIC = -8192
name_outcomes({HYP_PANIC: "HYP_PANIC"})

# Argument kinds, so explorers and parsers know what each parameter ranges over.
PFN, NR, GFN, VM, PROT = "pfn", "nr", "gfn", "vm", "prot"

PKVM = Protocol()
transition = PKVM.transition


# -- shared checks and effects -----------------------------------------------------------------

def check_range(s, pfn, nr):
    """pfn_range_is_valid(), then check_range_allowed_memory() on [pfn, pfn + nr).

    The arguments are u64 (`DECLARE_REG(u64, ...)`). pfn_range_is_valid() is the kernel's
    `pfn < limit && limit - pfn >= nr`, written so that u64 cannot wrap; in exact arithmetic it
    reads `pfn < limit && pfn + nr <= limit` (only compared, the big constants stay out of the
    code-generation readings' arithmetic). Past it `pfn + nr` cannot wrap either, and `end - 1`
    wraps only for pfn 0 with nr 0, to the top of the address space, in no region.
    check_range_allowed_memory() looks up pfn and `end - 1`: for nr 0 the page before pfn, so
    nr 0 is -EINVAL on the first pfn of a region (and on pfn 0) and otherwise passes the range
    checks and changes nothing (docs/contract.md)."""
    yield s.require(s.And(pfn < PA_PAGES, pfn + nr <= PA_PAGES), EINVAL, "range_size")
    yield from check_allowed_memory(s, pfn, pfn + nr - 1)


def is_memory(s, pfn):
    """addr_is_memory(): the pfn lies in a memblock, RAM or no-map (not MMIO, not a hole)."""
    return s.Or(s.region(pfn) == Region.RAM, s.region(pfn) == Region.NOMAP)


def check_allowed_memory(s, pfn, last):
    """check_range_allowed_memory(): pfn and the range's last page in one region (a last page
    of -1 is u64 -1, in no region), a memblock (not MMIO or a hole) not flagged
    MEMBLOCK_NOMAP."""
    yield s.require(s.And(last >= 0, s.region(pfn) == s.region(last)), EINVAL, "range_region")
    yield s.require(is_memory(s, pfn), EPERM, "range_memory")
    yield s.require(s.region(pfn) != Region.NOMAP, EPERM, "range_nomap")


def check_vm(s, vm, *lives):
    """The handle names a guest in one of the given lifecycle states."""
    yield s.require(s.And(s.is_guest(vm), s.Or(*[s.life(vm) == life for life in lives])), EINVAL, "vm_handle")


def check_loaded_vcpu(s, vm):
    """The call acts for a vCPU of the VM that is loaded (pkvm_get_loaded_hyp_vcpu()): the
    host's guest-map hypercalls find the VM and its memcache through it, and a guest runs only
    on one. Loaded implies running (a dying VM's vCPUs cannot be loaded)."""
    yield s.require(s.And(s.is_guest(vm), s.life(vm) == Life.RUNNING, s.refs(vm) > 0), EINVAL,
                    "vcpu_loaded")


def check_leaf_size(s, nr, *addrs):
    """__guest_check_transition_size: one page, or one aligned level-2 block."""
    aligned = [a % BLOCK_PAGES == 0 for a in addrs]
    yield s.require(s.Or(nr == 1, s.And(nr == BLOCK_PAGES, *aligned)), EINVAL, "leaf_size")


def set_pte(s, pfn, nr, kind, annotation=Annotation.NONE, owner=Owner.HOST, handle=0, gfn=0):
    """Write the host stage-2 entries of [pfn, pfn + nr)."""
    for field, value in (("pte_kind", kind), ("pte_type", annotation), ("pte_owner", owner),
                         ("pte_handle", handle), ("pte_gfn", gfn)):
        s.set_range(field, pfn, nr, lambda _p, v=value: v)


def set_states(s, field, pfn, nr, state):
    s.set_range(field, pfn, nr, lambda _p: state)


def check_memcache(s, vm):
    """pkvm_refill_memcache() in the hypercall's handler, before the call runs: the vCPU's
    memcache must hold what the stage-2 map may take, else -ENOMEM."""
    yield s.require(s.memcache(vm) >= MAP_PAGES, ENOMEM, "memcache")


def stage2_map_memcache(s, vm):
    """kvm_pgtable_stage2_map() takes its table pages from the memcache after the call's first
    write; short of them, the WARN_ON around it panics the hypervisor."""
    yield s.require(s.memcache(vm) >= MAP_PAGES, -HYP_PANIC, "map_memcache")
    s.set_memcache(vm, s.memcache(vm) - MAP_PAGES)


def check_ipa_range(s, gfn, nr):
    """A stage-2 walk (_kvm_pgtable_walk()) refuses a range past the guest's IPA space, whose
    size is the host's: -ERANGE, before it reads an entry."""
    yield s.require(gfn + nr <= IPA_PAGES, ERANGE, "ipa_range")


def check_ipa_page(s, gfn):
    """check_ipa_range() of one page (kvm_pgtable_get_leaf()), written `gfn < IPA_PAGES`: the
    same condition, and `gfn + 1 <= IPA_PAGES` made one proof twice as slow."""
    yield s.require(gfn < IPA_PAGES, ERANGE, "ipa_range")


def check_guest_page_leaf(s, vm, gfn):
    """A guest's own hypercall on gfn needs a valid, unpoisoned, page-sized leaf
    (get_valid_guest_pte())."""
    yield from check_ipa_page(s, gfn)
    yield s.require(s.e_state(vm, gfn) != POISON, EHWPOISON, "poisoned")
    yield s.require(s.is_valid(s.e_state(vm, gfn)), ENOENT, "leaf_valid")
    yield s.require(s.e_size(vm, gfn) == 1, E2BIG, "leaf_level")


def check_host_mapping(s, vm, gfn, kind):
    """pkvm_pgtable_stage2_map() (arch/arm64/kvm/pkvm.c), with the host's records modelled and
    for the VM kind its hypercall serves, looks up its own record at gfn before any hypercall:
    one there is a racing vCPU's fault (-EAGAIN) or, for a protected VM, a fault on an IPA the
    host poisoned (__pkvm_vcpu_in_poison_fault: -EFAULT)."""
    free = s.Or(s.Not(s.host_records()), s.protected(vm) != kind, s.m_nr(vm, gfn) == 0)
    yield s.require(s.Or(free, s.e_state(vm, gfn) != POISON), EFAULT, "host_poisoned")
    yield s.require(free, EAGAIN, "host_record")


def recorded(s, vm, gfn):
    """Whether the host's wrapper makes the hypercall for gfn: always without records; with
    them, only for a gfn it has a record of (its loops walk pkvm_mappings: none, no call)."""
    return s.Or(s.Not(s.host_records()), s.m_nr(vm, gfn) != 0)


# -- host <-> hypervisor -----------------------------------------------------------------------

def _share_limit(s, pfn):
    """Exploration bound: the host shares one pfn for at most `max_shares` structures."""
    return s.shared(pfn) < s.config.max_shares


@transition("host", "hyp", bound=_share_limit)
def host_share_hyp(s, pfn):
    """The host lets the hypervisor access one of its pages. With its records modelled, through
    kvm_share_hyp(): share_pfn_hyp() counts a pfn it shared already, and records a first share
    only when the hypercall succeeds."""
    counted = s.And(s.host_records(), s.shared(pfn) > 0)
    with s.when(s.Not(counted)):
        yield from check_range(s, pfn, 1)
        yield s.require(s.host(pfn) == OWNED, EPERM, "host_state")
        yield s.require(s.hyp(pfn) == NOPAGE, EPERM, "hyp_state")
        s.set("host", pfn, SHARED_OWNED)
        s.set("hyp", pfn, SHARED_BORROWED)
    s.set("shared", pfn, s.If(counted, s.shared(pfn) + 1, s.If(s.host_records(), 1, 0)))


@transition("host", "hyp")
def host_unshare_hyp(s, pfn):
    """The host takes back a page it shared with the hypervisor; refused while pinned. With its
    records modelled, through kvm_unshare_hyp(): unshare_pfn_hyp() refuses a pfn it has no
    record of, only uncounts one shared for several structures, and drops the record when the
    last unshare's hypercall succeeds."""
    yield s.require(s.Or(s.Not(s.host_records()), s.shared(pfn) > 0), ENOENT, "host_record")
    counted = s.And(s.host_records(), s.shared(pfn) > 1)
    with s.when(s.Not(counted)):
        yield from check_range(s, pfn, 1)
        yield s.require(s.host(pfn) == SHARED_OWNED, EPERM, "host_state")
        yield s.require(s.hyp(pfn) == SHARED_BORROWED, EPERM, "hyp_state")
        yield s.require(s.pins(pfn) == 0, EBUSY, "pin_count")
        s.set("host", pfn, OWNED)
        s.set("hyp", pfn, NOPAGE)
    s.set("shared", pfn, s.If(counted, s.shared(pfn) - 1, 0))


def _pin_limit(s, pfn):
    """Exploration bound on the pin refcount (a host never pins without bound)."""
    return s.pins(pfn) < s.config.max_pins


@transition("hyp", "hyp", bound=_pin_limit)
def hyp_pin_shared_mem(s, pfn):
    """The hypervisor pins a page the host shared with it, mapping it on the first pin."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == SHARED_OWNED, EPERM, "host_state")
    yield s.require(s.hyp(pfn) == SHARED_BORROWED, EPERM, "hyp_state")
    yield s.require(s.pins(pfn) < s.pin_max, EBUSY, "pin_overflow")
    s.set("pins", pfn, s.pins(pfn) + 1)
    s.set("hyp_mapped", pfn, True)


@transition("hyp", "hyp")
def hyp_unpin_shared_mem(s, pfn):
    """The hypervisor drops a pin, unmapping the page on the last one."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == SHARED_OWNED, EPERM, "host_state")
    yield s.require(s.hyp(pfn) == SHARED_BORROWED, EPERM, "hyp_state")
    yield s.require(s.pins(pfn) > 0, EINVAL, "pin_count")
    s.set("pins", pfn, s.pins(pfn) - 1)
    s.set("hyp_mapped", pfn, s.pins(pfn) > 1)


@transition("host", "hyp")
def host_donate_hyp(s, pfn, nr):
    """The host gives pages to the hypervisor for good (hyp-internal allocations)."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(s.host(p) == OWNED, EPERM), "host_state")
    yield s.each_page(pfn, nr, lambda p: s.require(s.hyp(p) == NOPAGE, EPERM), "hyp_state")
    set_states(s, "hyp", pfn, nr, OWNED)
    s.set_range("hyp_mapped", pfn, nr, lambda _p: True)
    set_states(s, "host", pfn, nr, NOPAGE)
    set_pte(s, pfn, nr, PteKind.ANNOTATED, Annotation.DONATION, Owner.HYP)


@transition("hyp", "host")
def hyp_donate_host(s, pfn, nr):
    """The hypervisor returns pages it owns to the host."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(s.hyp(p) == OWNED, EPERM), "hyp_state")
    yield s.each_page(pfn, nr, lambda p: s.require(s.host(p) == NOPAGE, EPERM), "host_state")
    set_states(s, "host", pfn, nr, OWNED)
    set_pte(s, pfn, nr, PteKind.VALID)
    set_states(s, "hyp", pfn, nr, NOPAGE)
    s.set_range("hyp_mapped", pfn, nr, lambda _p: False)


# -- host <-> FF-A -----------------------------------------------------------------------------

@transition("host", "ffa")
def host_share_ffa(s, pfn, nr):
    """The host lends pages to the secure world through the FF-A proxy."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(s.host(p) == OWNED, EPERM), "host_state")
    set_states(s, "host", pfn, nr, SHARED_OWNED)
    set_states(s, "ffa", pfn, nr, SHARED_BORROWED)


@transition("host", "ffa")
def host_unshare_ffa(s, pfn, nr):
    """The FF-A proxy reclaims pages it lent (only ones its records show as lent)."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(
        s.And(s.host(p) == SHARED_OWNED, s.ffa(p) == SHARED_BORROWED), EPERM), "ffa_state")
    set_states(s, "host", pfn, nr, OWNED)
    set_states(s, "ffa", pfn, nr, NOPAGE)


# -- host <-> non-protected guests -------------------------------------------------------------

def _share_guest_page(s, p):
    """Per-page host check of __pkvm_host_share_guest: only host -> np-guest multi-sharing."""
    return s.If(s.host(p) == OWNED, 0,
                s.If(s.host(p) == SHARED_OWNED,
                     s.If(s.count(p) == s.count_max, -EBUSY, s.If(s.count(p) > 0, 0, -EPERM)),
                     -EPERM))


@transition("host", "guest")
def host_share_guest(s, pfn, gfn, nr, vm, prot):
    """The host maps its page (or 2 MiB block) into a non-protected guest, which borrows it.
    With its records modelled, through pkvm_pgtable_stage2_map(): a record once the hypercall
    succeeded, none when it failed."""
    yield from check_host_mapping(s, vm, gfn, False)
    yield from check_loaded_vcpu(s, vm)
    yield s.require(s.Not(s.protected(vm)), EINVAL, "vm_kind")
    yield from check_memcache(s, vm)
    yield s.require(prot <= PROT_RWX, EINVAL, "prot")
    yield from check_leaf_size(s, nr, pfn, gfn)
    yield from check_range(s, pfn, nr)
    yield from check_ipa_range(s, gfn, nr)
    yield s.require(s.all_gfns(vm, gfn, nr, lambda g: s.e_state(vm, g) == NOPAGE), EPERM, "guest_state")
    yield s.each_page(pfn, nr, lambda p: _share_guest_page(s, p), "host_state")
    set_states(s, "host", pfn, nr, SHARED_OWNED)
    s.set_range("count", pfn, nr, lambda p: s.count(p) + 1)
    yield from stage2_map_memcache(s, vm)
    s.map_leaf(vm, gfn, nr, SHARED_BORROWED, prot, pfn)
    s.record_mapping(vm, gfn, nr, pfn)


@transition("host", "guest")
def host_unshare_guest(s, gfn, nr, vm):
    """The host unmaps a page (or block) it shared with a non-protected guest. With its records
    modelled, through __pkvm_pgtable_stage2_unshare(): only a gfn it has a record of, whose
    record goes once the hypercall succeeded and stays when it failed (the kernel WARNs)."""
    with s.when(recorded(s, vm, gfn)):
        yield from check_vm(s, vm, Life.RUNNING, Life.DYING)
        yield s.require(s.Not(s.protected(vm)), EINVAL, "vm_kind")
        yield from check_leaf_size(s, nr, gfn)
        yield from check_ipa_page(s, gfn)
        yield s.require(s.is_valid(s.e_state(vm, gfn)), ENOENT, "leaf_valid")
        yield s.require(s.e_size(vm, gfn) == nr, E2BIG, "leaf_level")
        yield s.require(s.e_state(vm, gfn) == SHARED_BORROWED, EPERM, "guest_state")
        pfn = s.e_pfn(vm, gfn)
        yield s.each_page(pfn, nr, lambda p: s.If(s.host(p) != SHARED_OWNED, -EPERM,
                                                    s.If(s.count(p) == 0, -EINVAL, 0)),
                          "host_state")
        s.unmap_leaf(vm, gfn, nr)
        s.set_range("count", pfn, nr, lambda p: s.count(p) - 1)
        s.set_range("host", pfn, nr, lambda p: s.If(s.count(p) == 1, OWNED, SHARED_OWNED))
        s.drop_mapping(vm, gfn, nr)


# -- host <-> protected guests -----------------------------------------------------------------

@transition("host", "guest")
def host_donate_guest(s, pfn, gfn, vm):
    """On a protected guest's fault the host donates a page; the guest owns it, mapped RWX.
    With its records modelled, through pkvm_pgtable_stage2_map(): a record once the hypercall
    succeeded, none when it failed."""
    yield from check_host_mapping(s, vm, gfn, True)
    yield from check_loaded_vcpu(s, vm)
    yield s.require(s.protected(vm), EINVAL, "vm_kind")
    yield from check_memcache(s, vm)
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == OWNED, EPERM, "host_state")
    yield from check_ipa_page(s, gfn)
    yield s.require(s.e_state(vm, gfn) == NOPAGE, EPERM, "guest_state")
    s.set("host", pfn, NOPAGE)
    set_pte(s, pfn, 1, PteKind.ANNOTATED, Annotation.DONATION, Owner.GUEST, vm, gfn)
    yield from stage2_map_memcache(s, vm)
    s.map_leaf(vm, gfn, 1, OWNED, PROT_RWX, pfn)
    s.record_mapping(vm, gfn, 1, pfn)


@transition("guest", "host")
def guest_share_host(s, vm, gfn):
    """A protected guest shares one of its pages back with the host (MEM_SHARE)."""
    yield from check_loaded_vcpu(s, vm)
    yield from check_guest_page_leaf(s, vm, gfn)
    yield s.require(s.e_state(vm, gfn) == OWNED, EPERM, "guest_state")
    pfn = s.e_pfn(vm, gfn)
    yield s.require(s.host(pfn) == NOPAGE, EPERM, "host_state")
    s.set_entry_state(vm, gfn, SHARED_OWNED)
    s.set("host", pfn, SHARED_BORROWED)
    set_pte(s, pfn, 1, PteKind.VALID)
    secret = Contents.SECRET_BASE + vm
    s.set("contents", pfn, s.If(s.contents(pfn) == secret, Contents.PUBLIC, s.contents(pfn)))


@transition("guest", "host")
def guest_unshare_host(s, vm, gfn):
    """A protected guest takes back a page it shared with the host (MEM_UNSHARE)."""
    yield from check_loaded_vcpu(s, vm)
    yield from check_guest_page_leaf(s, vm, gfn)
    yield s.require(s.e_state(vm, gfn) == SHARED_OWNED, EPERM, "guest_state")
    pfn = s.e_pfn(vm, gfn)
    yield s.require(s.host(pfn) == SHARED_BORROWED, EPERM, "host_state")
    s.set_entry_state(vm, gfn, OWNED)
    s.set("host", pfn, NOPAGE)
    set_pte(s, pfn, 1, PteKind.ANNOTATED, Annotation.DONATION, Owner.GUEST, vm, gfn)


@transition("host", "guest")
def host_force_reclaim_page_guest(s, pfn):
    """The host's fault handler takes back a donated page: zeroed, and POISON for the guest.
    The host keeps its record of the mapping (pkvm_force_reclaim_guest_page() leaves
    pkvm_mappings alone: the page stays pinned until the guest is destroyed). The kernel's only
    range check is host_stage2_get_guest_info()'s addr_is_memory(): -EFAULT off memory (MMIO,
    a hole, past the PA range); a no-map page is memory, host OWNED, so -EAGAIN."""
    yield s.require(s.And(pfn < PA_PAGES, is_memory(s, pfn)), EFAULT, "range_memory")
    yield s.require(s.host(pfn) == NOPAGE, EAGAIN, "host_state")
    yield s.require(s.And(s.pte_kind(pfn) == PteKind.ANNOTATED,
                          s.pte_type(pfn) == Annotation.DONATION), EINVAL, "annotation")
    yield s.require(s.pte_owner(pfn) == Owner.GUEST, EPERM, "owner")
    vm, gfn = s.pte_handle(pfn), s.pte_gfn(pfn)
    yield s.require(s.And(s.is_guest(vm),
                          s.Or(s.life(vm) == Life.RUNNING, s.life(vm) == Life.DYING)), EAGAIN, "vm_handle")
    yield s.require(s.And(s.e_state(vm, gfn) == OWNED, s.e_pfn(vm, gfn) == pfn), EPERM, "guest_state")
    s.set("contents", pfn, Contents.ZERO)
    s.poison(vm, gfn)
    s.set("host", pfn, OWNED)
    set_pte(s, pfn, 1, PteKind.VALID)


# -- the hypervisor's memcache -----------------------------------------------------------------

def _memcache_limit(s, vm):
    """Exploration bound: the host tops a memcache up to the configured number of pages."""
    return s.memcache(vm) < s.config.memcache


@transition("host", "hyp", bound=_memcache_limit)
def host_topup_memcache(s, vm):
    """The host puts a page in a running VM's memcache (topup_hyp_memcache; the hypervisor
    admits it with __pkvm_host_donate_hyp at the next refill) for its next stage-2 maps."""
    yield from check_vm(s, vm, Life.RUNNING)
    s.set_memcache(vm, s.memcache(vm) + 1)


# -- teardown ----------------------------------------------------------------------------------

def check_vm_exists(s, vm, errno=EINVAL):
    """The handle names a VM of the hyp's table (get_vm_by_handle(): not yet finalized); the
    teardown calls refuse an unknown one with -EINVAL, vcpu_load and vcpu_put with -ENOENT (the
    kernel returns nothing there: docs/contract.md)."""
    yield s.require(s.And(s.is_guest(vm), s.life(vm) != Life.TORN_DOWN), errno, "vm_exists")


@transition("host", "hyp")
def vcpu_load(s, vm):
    """The host loads one of a VM's vCPUs on a CPU (__pkvm_vcpu_load), which holds a reference
    on the VM until it is put; a dying VM's vCPUs cannot be loaded."""
    yield from check_vm_exists(s, vm, ENOENT)
    yield s.require(s.life(vm) != Life.DYING, EINVAL, "vm_dying")
    yield s.require(s.refs(vm) < s.vcpus, EBUSY, "vcpu_loaded")
    s.set_refs(vm, s.refs(vm) + 1)


@transition("host", "hyp")
def vcpu_put(s, vm):
    """The host puts a loaded vCPU of the VM back (__pkvm_vcpu_put), dropping its reference."""
    yield from check_vm_exists(s, vm, ENOENT)
    yield s.require(s.refs(vm) > 0, EINVAL, "vcpu_loaded")
    s.set_refs(vm, s.refs(vm) - 1)


@transition("host", "hyp")
def start_teardown_vm(s, vm):
    """The host starts destroying a VM no vCPU references: no vCPU can run from now on
    (get_pkvm_unref_hyp_vm_locked(): an unknown or referenced VM is -EINVAL, as is one already
    dying)."""
    yield from check_vm_exists(s, vm)
    yield s.require(s.refs(vm) == 0, EINVAL, "vm_refs")
    yield s.require(s.life(vm) != Life.DYING, EINVAL, "vm_dying")
    s.set_life(vm, Life.DYING)


@transition("host", "guest")
def reclaim_dying_guest_page(s, vm, gfn):
    """The host takes back a dying guest's page, zeroing what the guest owned. A POISON entry
    (forcibly reclaimed already) is a success that changes nothing: get_valid_guest_pte()'s
    -EHWPOISON is returned as 0 and the entry stays until finalize. With its records modelled,
    through __pkvm_pgtable_stage2_unmap(): only a gfn it has a record of, whose record goes once
    the hypercall succeeded (POISON too) and stays when it failed (WARN)."""
    with s.when(recorded(s, vm, gfn)):
        yield from check_vm_exists(s, vm)
        yield s.require(s.life(vm) == Life.DYING, EINVAL, "vm_dying")
        yield from check_ipa_page(s, gfn)
        state = s.e_state(vm, gfn)
        with s.when(state != POISON):
            yield s.require(s.is_valid(state), ENOENT, "leaf_valid")
            yield s.require(s.e_size(vm, gfn) == 1, E2BIG, "leaf_level")
            yield s.require(s.Or(state == OWNED, state == SHARED_OWNED), EPERM, "guest_state")
            pfn = s.e_pfn(vm, gfn)
            s.unmap_leaf(vm, gfn, 1)
            with s.when(state == OWNED):
                s.set("contents", pfn, Contents.ZERO)
                set_pte(s, pfn, 1, PteKind.VALID)
            s.set("host", pfn, OWNED)
        s.drop_mapping(vm, gfn, 1)


def _holds_nothing(s, vm):
    """Host discipline: finalize only a VM whose every page was reclaimed or unshared."""
    return s.no_valid_leaf(vm)


@transition("host", "hyp", discipline=_holds_nothing)
def finalize_teardown_vm(s, vm):
    """The host finishes destroying a dying VM; its stage-2 and memcache go back to the host,
    and the host frees its own records of the VM's mappings with its kvm_pgtable. Every refusal
    is -EINVAL (get_pkvm_unref_hyp_vm_locked(), then not dying)."""
    yield from check_vm_exists(s, vm)
    yield s.require(s.refs(vm) == 0, EINVAL, "vm_refs")
    yield s.require(s.life(vm) == Life.DYING, EINVAL, "vm_dying")
    s.set_life(vm, Life.TORN_DOWN)
    s.clear_vm(vm)
    s.set_memcache(vm, 0)
    s.drop_mappings(vm)


# -- the VMM frees guest memory ----------------------------------------------------------------

@transition("host", "guest")
def hole_punch(s, vm, gfn):
    """The VMM frees the memory behind gfn: force reclaim (protected) or unshare (otherwise)."""
    yield from check_vm(s, vm, Life.RUNNING, Life.DYING)
    yield s.require(s.is_valid(s.e_state(vm, gfn)), ENOENT, "leaf_valid")
    with s.when(s.protected(vm)):
        yield from delegate(s, "host_force_reclaim_page_guest", s.e_pfn(vm, gfn))
    with s.when(s.Not(s.protected(vm))):
        size = s.e_size(vm, gfn)
        base = s.If(size == BLOCK_PAGES, gfn - gfn % BLOCK_PAGES, gfn)
        yield from delegate(s, "host_unshare_guest", base, size, vm)


# -- memory accesses ---------------------------------------------------------------------------

@transition("guest", "guest")
def guest_write(s, vm, gfn):
    """A running guest writes through its stage-2; a protected guest's own page becomes secret."""
    yield from check_loaded_vcpu(s, vm)
    yield s.require(s.is_valid(s.e_state(vm, gfn)), EFAULT, "leaf_valid")
    yield s.require(s.bit(s.e_prot(vm, gfn), PROT_W), EFAULT, "writable")
    private = s.And(s.protected(vm), s.e_state(vm, gfn) == OWNED)
    s.set("contents", s.e_pfn(vm, gfn),
          s.If(private, Contents.SECRET_BASE + vm, Contents.PUBLIC))


@transition("host", "host")
def host_write(s, pfn):
    """The host writes a page it can access, faulting its identity mapping in."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) != NOPAGE, EPERM, "host_state")
    s.set("contents", pfn, Contents.HOST)
    set_pte(s, pfn, 1, PteKind.VALID)
