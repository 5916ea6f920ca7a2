"""The reference hypervisor: machine state, the call API, read-only introspection.

Every call returns 0 or a negative errno and follows docs/contract.md. The
introspection methods read the state back from the page tables and the hyp
vmemmap; they never change it.
"""

from typing import NamedTuple, Tuple

from . import host, mem_protect, pkvm
from .memory import (
    PA_PAGES, U16_MAX, U32_MAX, Contents, HypPage, PkvmPageState, Region, decode_contents,
    find_mem_range,
    get_host_state, get_hyp_state, hyp_page,
)
from .pgtable import HypPool, KvmPgtable, kvm_pgtable_get_leaf, kvm_pgtable_leaves
from .pte import (
    KVM_GUEST_INVALID_PTE_TYPE_POISONED, PAGE_SHIFT, kvm_granule_size, kvm_invalid_pte_type,
    kvm_pte_to_phys, kvm_pte_valid,
)
from .vm import VmState


class PageView(NamedTuple):
    """Each entity's view of one RAM page; guests[h] is VM h's view (NOPAGE once torn down)."""
    host: PkvmPageState
    hyp: PkvmPageState
    ffa: PkvmPageState
    guests: Tuple[PkvmPageState, ...]


class GuestLeaf(NamedTuple):
    """A non-zero guest stage-2 leaf: gfn of its first page, level (3 page, 2 block), raw PTE."""
    gfn: int
    level: int
    pte: int


class Hypervisor:
    """pKVM's memory-protection state for a machine of `ram_pages` RAM and `mmio_pages` MMIO pages."""

    # The call API (docs/contract.md), and the read-only introspection API: every public
    # method is one or the other, or create_vm.
    CALLS = (
        "host_share_hyp", "host_unshare_hyp", "hyp_pin_shared_mem", "hyp_unpin_shared_mem",
        "host_donate_hyp", "hyp_donate_host", "host_share_ffa", "host_unshare_ffa",
        "host_share_guest", "host_unshare_guest", "host_donate_guest", "guest_share_host",
        "guest_unshare_host", "host_force_reclaim_page_guest", "start_teardown_vm",
        "reclaim_dying_guest_page", "finalize_teardown_vm", "hole_punch", "guest_write",
        "host_write", "vcpu_load", "vcpu_put", "host_topup_memcache",
    )
    INTROSPECTION = (
        "region", "vm_refcount", "vm_loaded_vcpus", "vm_nr_vcpus", "vm_memcache_pages",
        "host_stage2_pte", "host_stage2_leaves", "hyp_stage1_pte", "hyp_stage1_maps",
        "hyp_stage1_leaves", "hyp_page", "ffa_state", "contents", "nr_vms", "vm_state",
        "vm_is_protected", "guest_leaves", "guest_pfn_states", "page_states", "page_state",
        "hyp_shared_pfn_count", "host_mappings",
        "snapshot", "identical", "clone",
    )

    __slots__ = ("nr_ram_pages", "nr_mmio_pages", "nr_nomap_pages", "pin_max", "count_max",
                 "memcaches", "host_records", "hyp_shared_pfns", "pkvm_mappings", "hyp_pool", "host_mmu",
                 "pkvm_pgtable", "hyp_vmemmap", "ffa_borrowed", "phys_mem", "vm_table")

    def __init__(self, ram_pages, mmio_pages, pin_max=U16_MAX, count_max=U32_MAX, nomap_pages=0,
                 memcaches=False, host_records=False):
        """`pin_max` and `count_max` are the largest values the pin refcount and
        host_share_guest_count may reach: the kernel's u16 and u32 by default, narrowed in
        tests so that overflow is reachable in a few calls. `nomap_pages` of memory flagged
        MEMBLOCK_NOMAP follow the MMIO pages: no transition may take them, so they need no
        struct hyp_page here (it would stay zero). With `memcaches`, every guest stage-2 map
        takes its pages from the VM's memcache, which host_topup_memcache fills; without, the
        host is taken to top up just what each map takes before the call (as upstream's host
        does), so the memcache stays empty and -ENOMEM never happens."""
        assert 0 < ram_pages and 0 <= mmio_pages and 0 <= nomap_pages
        assert ram_pages + mmio_pages + nomap_pages <= PA_PAGES
        assert 1 <= pin_max <= U16_MAX and 1 <= count_max <= U32_MAX
        self.nr_ram_pages = ram_pages
        self.nr_mmio_pages = mmio_pages
        self.nr_nomap_pages = nomap_pages
        self.pin_max = pin_max
        self.count_max = count_max
        self.memcaches = memcaches
        self.host_records = host_records
        self.hyp_shared_pfns = {}  # the host kernel's record (mmu.c): pfn -> count
        self.pkvm_mappings = {}  # the host's per-VM records (pkvm.c): handle -> {gfn: mapping}
        self.hyp_pool = HypPool()
        self.host_mmu = KvmPgtable(self.hyp_pool)
        self.pkvm_pgtable = KvmPgtable(self.hyp_pool)
        self.hyp_vmemmap = [0] * ram_pages
        self.ffa_borrowed = bytearray(ram_pages)
        self.phys_mem = [0] * ram_pages
        self.vm_table = []

    # -- calls ---------------------------------------------------------------

    def create_vm(self, protected, nr_vcpus=1):
        return pkvm.pkvm_init_vm(self, protected, nr_vcpus)

    def vcpu_load(self, vm):
        return pkvm.pkvm_load_hyp_vcpu(self, vm)

    def vcpu_put(self, vm):
        return pkvm.pkvm_put_hyp_vcpu(self, vm)

    def host_topup_memcache(self, vm):
        return pkvm.pkvm_host_topup_memcache(self, vm)

    def host_share_hyp(self, pfn):
        """With host records, the host's kvm_share_hyp() of one page; else the bare hypercall."""
        if self.host_records:
            return host.share_pfn_hyp(self, pfn)
        return mem_protect.pkvm_host_share_hyp(self, pfn)

    def host_unshare_hyp(self, pfn):
        if self.host_records:
            return host.unshare_pfn_hyp(self, pfn)
        return mem_protect.pkvm_host_unshare_hyp(self, pfn)

    def hyp_pin_shared_mem(self, pfn):
        return mem_protect.hyp_pin_shared_mem(self, pfn)

    def hyp_unpin_shared_mem(self, pfn):
        return mem_protect.hyp_unpin_shared_mem(self, pfn)

    def host_donate_hyp(self, pfn, nr):
        return mem_protect.pkvm_host_donate_hyp(self, pfn, nr)

    def hyp_donate_host(self, pfn, nr):
        return mem_protect.pkvm_hyp_donate_host(self, pfn, nr)

    def host_share_ffa(self, pfn, nr):
        return mem_protect.pkvm_host_share_ffa(self, pfn, nr)

    def host_unshare_ffa(self, pfn, nr):
        return mem_protect.pkvm_host_unshare_ffa(self, pfn, nr)

    def host_share_guest(self, pfn, gfn, nr, vm, prot):
        """With host records, through the host's pkvm_pgtable_stage2_map(); else the bare
        hypercall (so for the next two)."""
        if self.host_records:
            return host.host_share_guest(self, pfn, gfn, nr, vm, prot)
        return mem_protect.pkvm_host_share_guest(self, pfn, gfn, nr, vm, prot)

    def host_unshare_guest(self, gfn, nr, vm):
        if self.host_records:
            return host.pkvm_pgtable_stage2_unshare(self, gfn, nr, vm)
        return mem_protect.pkvm_host_unshare_guest(self, gfn, nr, vm)

    def host_donate_guest(self, pfn, gfn, vm):
        if self.host_records:
            return host.host_donate_guest(self, pfn, gfn, vm)
        return mem_protect.pkvm_host_donate_guest(self, pfn, gfn, vm)

    def guest_share_host(self, vm, gfn):
        return mem_protect.pkvm_guest_share_host(self, vm, gfn)

    def guest_unshare_host(self, vm, gfn):
        return mem_protect.pkvm_guest_unshare_host(self, vm, gfn)

    def host_force_reclaim_page_guest(self, pfn):
        return mem_protect.pkvm_host_force_reclaim_page_guest(self, pfn)

    def start_teardown_vm(self, vm):
        return pkvm.pkvm_start_teardown_vm(self, vm)

    def reclaim_dying_guest_page(self, vm, gfn):
        if self.host_records:
            return host.pkvm_pgtable_stage2_reclaim(self, vm, gfn)
        return pkvm.pkvm_reclaim_dying_guest_page(self, vm, gfn)

    def finalize_teardown_vm(self, vm):
        ret = pkvm.pkvm_finalize_teardown_vm(self, vm)
        if not ret:
            host.pkvm_pgtable_stage2_destroy(self, vm)
        return ret

    def hole_punch(self, vm, gfn):
        return pkvm.pkvm_hole_punch(self, vm, gfn)

    def guest_write(self, vm, gfn):
        return mem_protect.guest_write(self, vm, gfn)

    def host_write(self, pfn):
        return mem_protect.host_write(self, pfn)

    # -- introspection -------------------------------------------------------

    def region(self, pfn):
        """RAM, MMIO, NOMAP or HOLE."""
        return find_mem_range(pfn, self.nr_ram_pages, self.nr_mmio_pages, self.nr_nomap_pages)

    def host_stage2_pte(self, pfn):
        """(raw pte, level) where a host stage-2 walk of pfn stops; (0, level) = not yet mapped."""
        return kvm_pgtable_get_leaf(self.host_mmu, pfn << PAGE_SHIFT)

    def hyp_stage1_pte(self, pfn):
        """(raw pte, level) where a hyp stage-1 walk of pfn's hyp VA (= PA) stops."""
        return kvm_pgtable_get_leaf(self.pkvm_pgtable, pfn << PAGE_SHIFT)

    def hyp_stage1_maps(self, pfn):
        return kvm_pte_valid(self.hyp_stage1_pte(pfn)[0])

    def host_stage2_leaves(self):
        """(pfn, level, raw pte) of every non-zero host stage-2 leaf, valid or annotated, by pfn."""
        for addr, level, pte in kvm_pgtable_leaves(self.host_mmu):
            yield addr >> PAGE_SHIFT, level, pte

    def hyp_stage1_leaves(self):
        """(pfn of the hyp VA, level, raw pte) of every non-zero hyp stage-1 leaf, by address."""
        for addr, level, pte in kvm_pgtable_leaves(self.pkvm_pgtable):
            yield addr >> PAGE_SHIFT, level, pte

    def hyp_page(self, pfn) -> HypPage:
        """struct hyp_page of a RAM page: raw packed value, raw fields, decoded states."""
        return hyp_page(self.hyp_vmemmap, pfn)

    def hyp_shared_pfn_count(self, pfn):
        """The host's hyp_shared_pfns count of pfn (0: no record)."""
        return self.hyp_shared_pfns.get(pfn, 0)

    def host_mappings(self, vm):
        """The host's pkvm_mappings of a VM as (gfn, nr_pages, pfn), by gfn."""
        return sorted((m.gfn, m.nr_pages, m.pfn) for m in self.pkvm_mappings.get(vm, {}).values())

    def ffa_state(self, pfn):
        """The FF-A proxy's record: SHARED_BORROWED for a page shared with the secure world."""
        return PkvmPageState.SHARED_BORROWED if self.ffa_borrowed[pfn] else PkvmPageState.NOPAGE

    def contents(self, pfn) -> Contents:
        return decode_contents(self.phys_mem[pfn])

    def nr_vms(self):
        return len(self.vm_table)

    def vm_state(self, vm) -> VmState:
        return self.vm_table[vm].state

    def vm_is_protected(self, vm):
        return self.vm_table[vm].is_protected

    def vm_refcount(self, vm):
        """The VM's refcount (one reference per loaded vCPU)."""
        return self.vm_table[vm].refcount

    def vm_loaded_vcpus(self, vm):
        return sum(self.vm_table[vm].loaded)

    def vm_memcache_pages(self, vm):
        """Pages in the VM's memcache (`nr_pages`; its list, walked from `head`, must agree)."""
        mc = self.vm_table[vm].memcache
        pages, phys = 0, mc.head
        while phys:
            pages += 1
            phys = self.hyp_pool.pages[phys][0]
        if pages != mc.nr_pages:
            raise ValueError(f"vm{vm} memcache lists {pages} pages, nr_pages {mc.nr_pages}")
        return mc.nr_pages

    def vm_nr_vcpus(self, vm):
        return len(self.vm_table[vm].loaded)

    def guest_leaves(self, vm):
        """Every valid or annotated leaf of a VM's stage-2, by gfn; none once torn down."""
        for addr, level, pte in kvm_pgtable_leaves(self.vm_table[vm].pgt):
            yield GuestLeaf(addr >> PAGE_SHIFT, level, pte)

    def guest_pfn_states(self, vm):
        """{pfn: state} for one VM: the state of valid leaves mapping the pfn, else POISON
        if a POISONED entry remembers it."""
        states = {}
        for addr, level, pte in kvm_pgtable_leaves(self.vm_table[vm].pgt):
            pfn = kvm_pte_to_phys(pte) >> PAGE_SHIFT
            if kvm_pte_valid(pte):
                state = mem_protect.guest_get_page_state(pte)
                for p in range(pfn, pfn + (kvm_granule_size(level) >> PAGE_SHIFT)):
                    states[p] = state
            elif kvm_invalid_pte_type(pte) == KVM_GUEST_INVALID_PTE_TYPE_POISONED:
                states.setdefault(pfn, PkvmPageState.POISON)
        return states

    def page_states(self):
        """page_state() of every RAM page, in pfn order, with one walk per VM."""
        guests = [self.guest_pfn_states(h) for h in range(len(self.vm_table))]
        nopage = PkvmPageState.NOPAGE
        return tuple(
            PageView(get_host_state(self.hyp_vmemmap, pfn), get_hyp_state(self.hyp_vmemmap, pfn),
                     self.ffa_state(pfn), tuple(g.get(pfn, nopage) for g in guests))
            for pfn in range(self.nr_ram_pages))

    def page_state(self, pfn) -> PageView:
        """Each entity's view of a RAM page, read back from the tables and the vmemmap."""
        if self.region(pfn) != Region.RAM:
            raise ValueError(f"pfn {pfn:#x} is not RAM")
        return PageView(get_host_state(self.hyp_vmemmap, pfn), get_hyp_state(self.hyp_vmemmap, pfn),
                        self.ffa_state(pfn),
                        tuple(self.guest_pfn_states(h).get(pfn, PkvmPageState.NOPAGE)
                              for h in range(len(self.vm_table))))

    def snapshot(self):
        """The complete machine state as nested tuples: equal iff bit-for-bit equal."""
        return (self.nr_ram_pages, self.nr_mmio_pages, self.nr_nomap_pages, self.pin_max,
                self.count_max, self.memcaches, self.host_records,
                tuple(sorted(self.hyp_shared_pfns.items())),
                tuple(sorted((vm, tuple(sorted(ms.items()))) for vm, ms in self.pkvm_mappings.items())),
                self.hyp_pool.snapshot(),
                self.host_mmu.pgd, self.pkvm_pgtable.pgd, tuple(self.hyp_vmemmap),
                bytes(self.ffa_borrowed), tuple(self.phys_mem),
                tuple((vm.handle, vm.is_protected, int(vm.state), vm.pgt.pgd, tuple(vm.loaded),
                       vm.refcount, vm.memcache.head, vm.memcache.nr_pages)
                      for vm in self.vm_table))

    def identical(self, other):
        """`self.snapshot() == other.snapshot()`, without building the snapshots."""
        if (self.hyp_vmemmap != other.hyp_vmemmap or self.phys_mem != other.phys_mem
                or self.ffa_borrowed != other.ffa_borrowed
                or self.hyp_shared_pfns != other.hyp_shared_pfns
                or self.pkvm_mappings != other.pkvm_mappings
                or self.host_mmu.pgd != other.host_mmu.pgd
                or self.pkvm_pgtable.pgd != other.pkvm_pgtable.pgd
                or not self.hyp_pool.identical(other.hyp_pool)
                or len(self.vm_table) != len(other.vm_table)):
            return False
        for a, b in zip(self.vm_table, other.vm_table):
            if (a.state != b.state or a.pgt.pgd != b.pgt.pgd or a.handle != b.handle
                    or a.is_protected != b.is_protected or a.loaded != b.loaded
                    or a.refcount != b.refcount or a.memcache.head != b.memcache.head
                    or a.memcache.nr_pages != b.memcache.nr_pages):
                return False
        return (self.nr_ram_pages == other.nr_ram_pages and self.nr_mmio_pages == other.nr_mmio_pages
                and self.nr_nomap_pages == other.nr_nomap_pages
                and self.pin_max == other.pin_max and self.count_max == other.count_max
                and self.memcaches == other.memcaches and self.host_records == other.host_records)

    def clone(self):
        """An independent copy: vmemmap and contents copied one level deep (they hold ints),
        table pages shared copy-on-write."""
        new = Hypervisor.__new__(Hypervisor)
        new.nr_ram_pages = self.nr_ram_pages
        new.nr_mmio_pages = self.nr_mmio_pages
        new.nr_nomap_pages = self.nr_nomap_pages
        new.pin_max = self.pin_max
        new.count_max = self.count_max
        new.memcaches = self.memcaches
        new.host_records = self.host_records
        new.hyp_shared_pfns = dict(self.hyp_shared_pfns)
        new.pkvm_mappings = {vm: dict(ms) for vm, ms in self.pkvm_mappings.items()}
        new.hyp_pool = pool = self.hyp_pool.clone()
        new.host_mmu = self.host_mmu.clone(pool)
        new.pkvm_pgtable = self.pkvm_pgtable.clone(pool)
        new.hyp_vmemmap = self.hyp_vmemmap[:]
        new.ffa_borrowed = self.ffa_borrowed[:]
        new.phys_mem = self.phys_mem[:]
        new.vm_table = [vm.clone(pool) for vm in self.vm_table]
        return new
