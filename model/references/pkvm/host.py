"""The host kernel's own records beside the hypercalls.

`hyp_shared_pfns` (arch/arm64/kvm/mmu.c, `kvm_share_hyp()`, `kvm_unshare_hyp()`): an rb-tree
of {pfn, count} (a dict here), so that several kernel structures can share one page with the
hypervisor and the hypercall runs only for the first share and the last unshare.

`pkvm_mappings` (arch/arm64/kvm/pkvm.c, per VM): an interval tree of {gfn, pfn, nr_pages}
(here a dict per handle, gfn -> PkvmMapping) of what the host mapped into a guest, written by
`pkvm_pgtable_stage2_map()` once `__pkvm_host_share_guest` or `__pkvm_host_donate_guest`
succeeded, and erased by `__pkvm_pgtable_stage2_unshare()` / `__pkvm_pgtable_stage2_reclaim()`
once `__pkvm_host_unshare_guest` / `__pkvm_reclaim_dying_guest_page` succeeded (a failure is
WARNed and the mapping kept).

Upstream (mmu.c at commit 1c53a1ae of the index) inserts the record before the
__pkvm_host_share_hyp hypercall and keeps it when the hypercall fails, and erases it before
__pkvm_host_unshare_hyp and keeps it erased when that fails; this follows the later tree that
makes the hypercall first and reverts on failure (docs/contract.md, "The host's records").
"""

from errno import EAGAIN, EFAULT, ENOENT
from typing import NamedTuple

from .mem_protect import (
    POISON, guest_get_page_state, pkvm_host_donate_guest, pkvm_host_share_guest,
    pkvm_host_share_hyp, pkvm_host_unshare_guest, pkvm_host_unshare_hyp,
)
from .pgtable import kvm_pgtable_get_leaf
from .pkvm import pkvm_reclaim_dying_guest_page
from .pte import PAGE_SHIFT


def share_pfn_hyp(pkvm, pfn):
    """A pfn shared already is only counted; a first share is recorded once the hypercall
    succeeds."""
    count = pkvm.hyp_shared_pfns.get(pfn)
    if count:
        pkvm.hyp_shared_pfns[pfn] = count + 1
        return 0

    ret = pkvm_host_share_hyp(pkvm, pfn)
    if ret:
        return ret

    pkvm.hyp_shared_pfns[pfn] = 1
    return 0


def unshare_pfn_hyp(pkvm, pfn):
    """No record: -ENOENT (the kernel WARNs); a pfn shared for several structures is only
    uncounted; the last unshare's hypercall drops the record when it succeeds, and a failing
    one leaves the counter as it was."""
    count = pkvm.hyp_shared_pfns.get(pfn)
    if not count:
        return -ENOENT
    if count > 1:
        pkvm.hyp_shared_pfns[pfn] = count - 1
        return 0

    ret = pkvm_host_unshare_hyp(pkvm, pfn)
    if ret:
        return ret

    del pkvm.hyp_shared_pfns[pfn]
    return 0


class PkvmMapping(NamedTuple):
    """struct pkvm_mapping: gfns [gfn, gfn + nr_pages) mapped to pfns [pfn, pfn + nr_pages)."""
    gfn: int
    pfn: int
    nr_pages: int


def pkvm_mapping_iter_first(pkvm, handle, gfn):
    """The VM's mapping covering gfn, if the host has one."""
    for mapping in pkvm.pkvm_mappings.get(handle, {}).values():
        if mapping.gfn <= gfn < mapping.gfn + mapping.nr_pages:
            return mapping
    return None


def pkvm_mapping_insert(pkvm, handle, mapping):
    pkvm.pkvm_mappings.setdefault(handle, {})[mapping.gfn] = mapping


def pkvm_mapping_remove(pkvm, handle, mapping):
    mappings = pkvm.pkvm_mappings[handle]
    del mappings[mapping.gfn]
    if not mappings:
        del pkvm.pkvm_mappings[handle]


def __pkvm_vcpu_in_poison_fault(pkvm, handle, gfn):
    """Whether the faulting IPA (gfn here) reads POISONED in the guest's stage-2."""
    pte, _level = kvm_pgtable_get_leaf(pkvm.vm_table[handle].pgt, gfn << PAGE_SHIFT)
    return guest_get_page_state(pte) == POISON


def _vm_is_protected(pkvm, handle):
    """kvm_vm_is_protected() of the host's struct kvm the handle names (None: no such VM)."""
    if not isinstance(handle, int) or not 0 <= handle < len(pkvm.vm_table):
        return None
    return pkvm.vm_table[handle].is_protected


def pkvm_pgtable_stage2_map(pkvm, handle, gfn, pfn, nr_pages, hypercall):
    """A mapping the host has already is a racing vCPU's fault (-EAGAIN), or for a protected
    VM a fault on an IPA it poisoned (-EFAULT): no hypercall. Else the hypercall, and the
    mapping recorded only when it succeeded."""
    if pkvm_mapping_iter_first(pkvm, handle, gfn):
        if _vm_is_protected(pkvm, handle) and __pkvm_vcpu_in_poison_fault(pkvm, handle, gfn):
            return -EFAULT
        return -EAGAIN

    ret = hypercall()
    if ret:  # WARN_ON(ret)
        return ret

    pkvm_mapping_insert(pkvm, handle, PkvmMapping(gfn, pfn, nr_pages))
    return 0


def host_share_guest(pkvm, pfn, gfn, nr, handle, prot):
    """pkvm_pgtable_stage2_map() of a non-protected VM: __pkvm_host_share_guest."""
    if _vm_is_protected(pkvm, handle) is not False:  # the host maps other VMs otherwise
        return pkvm_host_share_guest(pkvm, pfn, gfn, nr, handle, prot)
    return pkvm_pgtable_stage2_map(
        pkvm, handle, gfn, pfn, nr,
        lambda: pkvm_host_share_guest(pkvm, pfn, gfn, nr, handle, prot))


def host_donate_guest(pkvm, pfn, gfn, handle):
    """pkvm_pgtable_stage2_map() of a protected VM: __pkvm_host_donate_guest."""
    if not _vm_is_protected(pkvm, handle):
        return pkvm_host_donate_guest(pkvm, pfn, gfn, handle)
    return pkvm_pgtable_stage2_map(pkvm, handle, gfn, pfn, 1,
                                   lambda: pkvm_host_donate_guest(pkvm, pfn, gfn, handle))


def pkvm_pgtable_stage2_unshare(pkvm, gfn, nr, handle):
    """__pkvm_pgtable_stage2_unshare() of the mapping at gfn: none, no hypercall; the mapping
    erased once the hypercall succeeded, kept when it failed (WARN_ON(ret)). The hypercall gets
    the caller's gfn and nr (docs/contract.md: the kernel's loop passes the mapping's own)."""
    mapping = pkvm_mapping_iter_first(pkvm, handle, gfn)
    if mapping is None:
        return 0

    ret = pkvm_host_unshare_guest(pkvm, gfn, nr, handle)
    if ret:  # WARN_ON(ret): the mapping stays
        return ret

    pkvm_mapping_remove(pkvm, handle, mapping)
    return 0


def pkvm_pgtable_stage2_reclaim(pkvm, handle, gfn):
    """__pkvm_pgtable_stage2_reclaim() of the mapping at gfn of a dying protected VM: none, no
    hypercall; the mapping erased once the hypercall succeeded, kept when it failed (WARN)."""
    mapping = pkvm_mapping_iter_first(pkvm, handle, gfn)
    if mapping is None:
        return 0

    ret = pkvm_reclaim_dying_guest_page(pkvm, handle, gfn)
    if ret:  # WARN_ON(ret): continue, the mapping stays
        return ret

    pkvm_mapping_remove(pkvm, handle, mapping)
    return 0


def pkvm_pgtable_stage2_destroy(pkvm, handle):
    """The host frees its kvm_pgtable with the VM: the mappings left go with it."""
    pkvm.pkvm_mappings.pop(handle, None)
