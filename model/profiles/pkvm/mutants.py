"""A catalog of seeded bugs: realistic mistakes a hypervisor developer could make in mem_protect.c.

Each mutant is an extension of the pKVM profile (`model/extensions.py`), written the way a user
writes a proposed change: it drops a labelled check, drops or hoists a write, or checks a range
by its first page only. Every mutant must be caught by some `always` property, by the prover,
the explorer and conformance alike; a mutant that survives is a hole in the checks.
"""

from __future__ import annotations

from errno import EINVAL

from model.profile import Mutant
from model.profiles.pkvm.states import OWNED, PA_PAGES, SHARED_OWNED, U64
from model.profiles.pkvm.transitions import check_allowed_memory

CATALOG: list[Mutant] = []


def mutant(transition: str):
    """Register `fn(ext)` as a mutant of `transition`; its docstring says what the bug is."""
    def register(fn):
        CATALOG.append(Mutant(fn.__name__, " ".join(fn.__doc__.split()), transition, fn))
        return fn
    return register


@mutant("host_unshare_hyp")
def unshare_hyp_ignores_pins(ext):
    """host_unshare_hyp forgets the pin refcount test: the hyp keeps a pinned mapping of a page
    the host took back"""
    ext.drop_check("host_unshare_hyp", "pin_count")


@mutant("host_donate_hyp")
def donate_hyp_checks_first_page(ext):
    """host_donate_hyp checks the host state of the first page of the range only"""
    ext.edit("host_donate_hyp",
             replace={"each_page": lambda s, lo, n, errno_of, label=None:
                      s.each_page(lo, 1, errno_of, label)})


@mutant("host_share_guest")
def share_guest_skips_guest_check(ext):
    """host_share_guest does not check that the guest IPA is free: it maps over an existing
    share"""
    ext.drop_check("host_share_guest", "guest_state")


@mutant("host_share_guest")
def share_guest_count_overflow(ext):
    """host_share_guest lets host_share_guest_count wrap past its maximum (narrowed to 1 so it
    is reachable)"""
    ext.edit("host_share_guest", replace={"count_max": -1})
    ext.config(count_max=1)


@mutant("host_share_guest")
def share_guest_to_protected(ext):
    """host_share_guest forgets that protected guests cannot borrow host pages"""
    ext.drop_check("host_share_guest", "vm_kind")


@mutant("host_unshare_guest")
def unshare_guest_keeps_count(ext):
    """host_unshare_guest unmaps the guest but never drops host_share_guest_count"""
    ext.drop_write("host_unshare_guest", "count")


@mutant("host_force_reclaim_page_guest")
def force_reclaim_no_zeroing(ext):
    """host_force_reclaim_page_guest hands the page back without zeroing it"""
    ext.drop_write("host_force_reclaim_page_guest", "contents")


@mutant("host_force_reclaim_page_guest")
def force_reclaim_no_poison(ext):
    """host_force_reclaim_page_guest leaves the guest's mapping in place instead of poisoning
    it"""
    ext.drop_write("host_force_reclaim_page_guest", "poison")


@mutant("reclaim_dying_guest_page")
def reclaim_dying_no_zeroing(ext):
    """reclaim_dying_guest_page returns a page the guest owned without zeroing it"""
    ext.drop_write("reclaim_dying_guest_page", "contents")


@mutant("hole_punch")
def punch_skips_unmap(ext):
    """hole_punch frees a non-protected guest's page without unmapping it from the guest"""
    ext.drop_write("hole_punch", "unmap_leaf")


@mutant("host_donate_guest")
def donate_guest_no_annotation(ext):
    """host_donate_guest gives the page to the guest but leaves the host stage-2 entry as it
    was"""
    ext.drop_write("host_donate_guest", "pte_kind", "pte_type", "pte_owner", "pte_handle",
                   "pte_gfn")


@mutant("hyp_unpin_shared_mem")
def unpin_keeps_mapping(ext):
    """hyp_unpin_shared_mem drops the last pin but keeps the hyp stage-1 mapping"""
    ext.drop_write("hyp_unpin_shared_mem", "hyp_mapped")


@mutant("hyp_donate_host")
def donate_host_keeps_hyp_mapping(ext):
    """hyp_donate_host returns pages to the host but leaves them mapped in hyp stage-1"""
    ext.drop_write("hyp_donate_host", "hyp_mapped")


@mutant("host_share_ffa")
def share_ffa_from_shared(ext):
    """host_share_ffa also accepts pages the host already shares (a second, untracked share)"""
    ext.edit("host_share_ffa", replace={
        "host": lambda s, p: s.If(s.host(p) == SHARED_OWNED, OWNED, s.host(p))})


@mutant("host_unshare_hyp")
def unshare_hyp_updates_before_check(ext):
    """host_unshare_hyp sets the host state before its checks: a refused call leaves it
    changed"""
    original = ext.original("host_unshare_hyp")

    @ext.override("host_unshare_hyp")
    def host_unshare_hyp(s, pfn):
        s.set("host", pfn, OWNED)
        yield from original(s, pfn)


@mutant("host_share_hyp")
def share_hyp_skips_host_check(ext):
    """host_share_hyp does not check the host's side: a page already lent to FF-A is shared
    again"""
    ext.drop_check("host_share_hyp", "host_state")


@mutant("host_share_hyp")
def share_hyp_allows_nomap(ext):
    """host_share_hyp checks that the page is memory, not that it is allowed memory (the
    MEMBLOCK_NOMAP test of check_range_allowed_memory() left out): the host shares a no-map
    page with the hypervisor"""
    ext.drop_check("host_share_hyp", "range_nomap")


@mutant("start_teardown_vm")
def teardown_ignores_refs(ext):
    """__pkvm_start_teardown_vm forgets the refcount test: a VM whose vCPU is loaded is marked
    dying (and can be finalized and freed under the running vCPU)"""
    ext.drop_check("start_teardown_vm", "vm_refs")


@mutant("host_share_guest")
def share_guest_skips_memcache_check(ext):
    """handle___pkvm_host_share_guest calls __pkvm_host_share_guest without refilling the
    vCPU's memcache first: the stage-2 map runs short after the host state was written, and
    its WARN_ON panics the hypervisor"""
    ext.drop_check("host_share_guest", "memcache")
    ext.config(memcache=1)


@mutant("host_donate_hyp")
def donate_hyp_wrapped_range_end(ext):
    """host_donate_hyp checks its range by its end, `pfn + nr` in u64, against the PA limit (the
    check pfn_range_is_valid() replaced): a huge nr wraps the end below pfn, the range checks
    pass on [pfn, end), and the donation of nr pages runs over MMIO and no-map pages"""
    ext.drop_check("host_donate_hyp", "range_size", "range_region", "range_memory", "range_nomap")
    checked = ext.original("host_donate_hyp")

    @ext.override("host_donate_hyp")
    def host_donate_hyp(s, pfn, nr):
        end = s.u64(pfn + nr)
        yield s.require(s.And(pfn < PA_PAGES, end <= PA_PAGES), EINVAL, "range_size")
        yield from check_allowed_memory(s, pfn, s.u64(end - 1))
        yield from checked(s, pfn, nr)

    ext.config(ram=3, guests=(False,), gfns=1, nrs=(1, U64 - 1))  # pfn 2, nr 2**64 - 1: the end wraps to 1


def _record_before_hypercall(ext, name: str, count: int, new: int) -> None:
    """The host wrapper `name` writes a pfn's record (count -> new) before its hypercall and
    leaves it written when the hypercall fails, as upstream mmu.c orders it."""
    original = ext.original(name)

    @ext.override(name)
    def body(s, pfn):
        with s.when(s.And(s.host_records(), s.shared(pfn) == count)):
            s.set("shared", pfn, new)
        yield from original(s, pfn)

    ext.config(host_records=True)


@mutant("host_share_hyp")
def share_hyp_keeps_record_on_failure(ext):
    """kvm_share_hyp() as upstream mmu.c writes it: share_pfn_hyp() inserts the pfn's record
    before the __pkvm_host_share_hyp hypercall and keeps it when the hypercall fails, so the
    host believes the hypervisor borrows a page it does not (and counts the next share without
    asking)"""
    _record_before_hypercall(ext, "host_share_hyp", 0, 1)


@mutant("host_unshare_hyp")
def unshare_hyp_drops_record_on_failure(ext):
    """kvm_unshare_hyp() as upstream mmu.c writes it: unshare_pfn_hyp() erases the pfn's last
    record before the __pkvm_host_unshare_hyp hypercall, and a refused unshare (the hypervisor
    has the page pinned) leaves the host without a record of a page the hypervisor still
    borrows"""
    _record_before_hypercall(ext, "host_unshare_hyp", 1, 0)


@mutant("host_share_guest")
def share_guest_records_before_hypercall(ext):
    """pkvm_pgtable_stage2_map() as first merged (the 6.14 arch/arm64/kvm/pkvm.c): the host
    inserts its pkvm_mapping for a page whatever __pkvm_host_share_guest returned but -EPERM;
    here the record is written before the hypercall and kept when it fails, so the host
    believes a guest maps a page it does not (and later unshares a gfn nothing maps)"""
    ext.drop_write("host_share_guest", "record_mapping")
    original = ext.original("host_share_guest")

    @ext.override("host_share_guest")
    def host_share_guest(s, pfn, gfn, nr, vm, prot):
        with s.when(s.And(s.host_records(), nr == 1, s.is_guest(vm), s.Not(s.protected(vm)),
                          s.m_nr(vm, gfn) == 0)):  # 6.14 maps pages only (else -EINVAL)
            s.record_mapping(vm, gfn, 1, pfn)
        yield from original(s, pfn, gfn, nr, vm, prot)

    ext.config(host_records=True)


@mutant("host_unshare_guest")
def unshare_guest_drops_record_on_failure(ext):
    """pkvm_pgtable_stage2_destroy() as first merged (6.14): the host erases each pkvm_mapping
    whatever __pkvm_host_unshare_guest returned; here the record at gfn is erased before the
    hypercall, and a refused unshare leaves a guest mapping the host no longer knows of (nor
    unshares at teardown)"""
    ext.drop_write("host_unshare_guest", "drop_mapping")
    original = ext.original("host_unshare_guest")

    @ext.override("host_unshare_guest")
    def host_unshare_guest(s, gfn, nr, vm):
        with s.when(s.And(s.host_records(), s.m_nr(vm, gfn) != 0)):
            s.drop_mapping(vm, gfn, s.m_nr(vm, gfn))
        yield from original(s, gfn, nr, vm)

    ext.config(host_records=True)


@mutant("finalize_teardown_vm")
def finalize_without_reclaim(ext):
    """the host finalizes a VM's teardown before reclaiming its pages (no host discipline)"""
    ext.config(host_discipline=False)


MUTANTS = {m.name: m for m in CATALOG}
