"""The guest fault paths and the arch memslot hooks: arch/x86/kvm/mmu/mmu.c (TDP MMU) and
arch/arm64/kvm/mmu.c, in their 6.18/7.1 form.

A fault returns 0 once a leaf for the gfn is installed, RET_PF_EMULATE when the access
becomes MMIO for userspace, or -errno with vcpu.run describing the memory fault exit.
"""

from errno import EFAULT, EINVAL, ENOENT, EOPNOTSUPP

from .guest_memfd import kvm_gmem_get_index, kvm_gmem_get_pfn
from .kvm_host import (
    KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KvmGfnRange, Spte, gfn_to_memslot, kvm_mem_is_private,
    kvm_memslot_is_gmem_only, kvm_slot_has_gmem, kvm_unmap_gfn_range, mmu_invalidate_retry_gfn,
)
from .uapi import (
    KVM_MEM_READONLY, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE,
    KVM_X86_DEFAULT_VM, PAGE_SHIFT, PAGE_SIZE,
)

RET_PF_CONTINUE = 0
RET_PF_EMULATE = 2
RET_PF_FIXED = 5
RET_PF_SPURIOUS = 6

KVM_MR_CREATE, KVM_MR_DELETE, KVM_MR_MOVE, KVM_MR_FLAGS_ONLY = range(4)


class KvmPageFault:
    """struct kvm_page_fault: the access, then what kvm_mmu_faultin_pfn() resolved."""

    __slots__ = ("gfn", "write", "is_private", "prefetch", "slot", "mmu_seq", "folio", "index",
                 "upage", "map_writable")

    def __init__(self, gfn, write, is_private, prefetch):
        self.gfn = gfn
        self.write = write
        self.is_private = is_private
        self.prefetch = prefetch
        self.slot = None
        self.mmu_seq = 0
        self.folio = None
        self.index = None
        self.upage = None
        self.map_writable = False


def kvm_prepare_memory_fault_exit(vcpu, gpa, size, is_private):
    """Only the PRIVATE flag is reported (write/exec are not, in 7.1)."""
    vcpu.run = (KVM_MEMORY_EXIT_FLAG_PRIVATE if is_private else 0, gpa, size)


def __gfn_to_hva_memslot(slot, gfn):
    return slot.userspace_addr + ((gfn - slot.base_gfn) << PAGE_SHIFT)


def spte_permits(spte, write, is_private):
    return spte is not None and spte.private == is_private and (spte.writable or not write)


def install_spte(kvm, fault):
    """Map the resolved pfn, after checking no invalidation raced the fault. Calls are
    atomic here, so none can have: a stale fault would be a bug of this reference."""
    assert not mmu_invalidate_retry_gfn(kvm, fault.mmu_seq, fault.gfn)
    ino = fault.slot.gmem_file.private_data.i_ino if fault.folio is not None else None
    kvm.stage2[fault.gfn] = Spte(fault.is_private, fault.map_writable, fault.folio, ino,
                                 fault.index, fault.upage)


# -- x86 -------------------------------------------------------------------------------

def kvm_mmu_prepare_memory_fault_exit(vcpu, fault):
    kvm_prepare_memory_fault_exit(vcpu, fault.gfn << PAGE_SHIFT, PAGE_SIZE, fault.is_private)


def kvm_handle_noslot_fault(vcpu, fault):
    """Private: exit. Shared: emulated MMIO (the MMIO SPTE KVM caches is not modelled)."""
    if fault.is_private:
        kvm_mmu_prepare_memory_fault_exit(vcpu, fault)
        return -EFAULT
    return RET_PF_EMULATE


def kvm_mmu_faultin_pfn_gmem(vcpu, fault):
    if not kvm_slot_has_gmem(fault.slot):
        kvm_mmu_prepare_memory_fault_exit(vcpu, fault)
        return -EFAULT
    r, folio = kvm_gmem_get_pfn(vcpu.kvm, fault.slot, fault.gfn)
    if r:
        kvm_mmu_prepare_memory_fault_exit(vcpu, fault)
        return r
    fault.folio = folio
    fault.index = kvm_gmem_get_index(fault.slot, fault.gfn)
    fault.map_writable = not fault.slot.flags & KVM_MEM_READONLY
    return RET_PF_CONTINUE


def __kvm_mmu_faultin_pfn(vcpu, fault):
    """From guest_memfd iff private or GMEM_ONLY (fault_from_gmem()); else GUP on the user
    page, which the model lets succeed. A write to a READONLY slot is emulated MMIO."""
    if fault.is_private or kvm_memslot_is_gmem_only(fault.slot):
        return kvm_mmu_faultin_pfn_gmem(vcpu, fault)
    if fault.write and fault.slot.flags & KVM_MEM_READONLY:
        return RET_PF_EMULATE
    fault.upage = __gfn_to_hva_memslot(fault.slot, fault.gfn) >> PAGE_SHIFT
    fault.map_writable = not fault.slot.flags & KVM_MEM_READONLY
    return RET_PF_CONTINUE


def kvm_mmu_faultin_pfn(vcpu, fault):
    """Snapshot the invalidation sequence, then: kind mismatch, no slot, the pfn."""
    kvm = vcpu.kvm
    fault.mmu_seq = kvm.mmu_invalidate_seq
    if fault.is_private != kvm_mem_is_private(kvm, fault.gfn):
        kvm_mmu_prepare_memory_fault_exit(vcpu, fault)
        return -EFAULT
    if fault.slot is None:
        return kvm_handle_noslot_fault(vcpu, fault)
    return __kvm_mmu_faultin_pfn(vcpu, fault)


def kvm_tdp_page_fault(vcpu, fault):
    """direct_page_fault(): resolve, then install (a slot is never INVALID between calls)."""
    kvm = vcpu.kvm
    if spte_permits(kvm.stage2.get(fault.gfn), fault.write, fault.is_private):
        return RET_PF_SPURIOUS
    fault.slot = gfn_to_memslot(kvm, 0, fault.gfn)
    r = kvm_mmu_faultin_pfn(vcpu, fault)
    if r != RET_PF_CONTINUE:
        return r
    install_spte(kvm, fault)
    return RET_PF_FIXED


def kvm_mmu_page_fault(vcpu, gpa, write, is_private):
    """A guest access from KVM_RUN; the fast path never takes a kind mismatch as spurious."""
    r = kvm_tdp_page_fault(vcpu, KvmPageFault(gpa >> PAGE_SHIFT, write, is_private, False))
    return 0 if r in (RET_PF_FIXED, RET_PF_SPURIOUS) else r


def kvm_tdp_map_page(vcpu, gpa, is_private):
    """A prefetch read fault: emulation (no slot) is ENOENT."""
    r = kvm_tdp_page_fault(vcpu, KvmPageFault(gpa >> PAGE_SHIFT, False, is_private, True))
    if r < 0:
        return r
    if r == RET_PF_EMULATE:
        return -ENOENT
    return 0


def kvm_x86_vcpu_pre_fault_memory(vcpu, gpa, size):
    """One 4 KiB page per call: the bytes done, or -errno. The kind is the attribute's."""
    kvm = vcpu.kvm
    if not kvm.arch.pre_fault_allowed:
        return -EOPNOTSUPP
    is_private = kvm.arch.has_private_mem and kvm_mem_is_private(kvm, gpa >> PAGE_SHIFT)
    r = kvm_tdp_map_page(vcpu, gpa, is_private)
    if r < 0:
        return r
    return min(size, PAGE_SIZE)


def kvm_x86_pre_set_memory_attributes(kvm, range, attributes):
    """Zap the old kind: the filter is SHARED when going private, PRIVATE otherwise."""
    attr_filter = (KVM_FILTER_SHARED if attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE
                   else KVM_FILTER_PRIVATE)
    return kvm_unmap_gfn_range(kvm, range._replace(attr_filter=attr_filter))


# -- arm64 ------------------------------------------------------------------------------

def gmem_abort(vcpu, fault):
    """Every fault on a gmem slot takes the page from guest_memfd; errors exit with flags 0."""
    r, folio = kvm_gmem_get_pfn(vcpu.kvm, fault.slot, fault.gfn)
    if r:
        kvm_prepare_memory_fault_exit(vcpu, fault.gfn << PAGE_SHIFT, PAGE_SIZE, False)
        return r
    fault.folio = folio
    fault.index = kvm_gmem_get_index(fault.slot, fault.gfn)
    fault.map_writable = not fault.slot.flags & KVM_MEM_READONLY
    install_spte(vcpu.kvm, fault)
    return 0


def user_mem_abort(vcpu, fault):
    fault.upage = __gfn_to_hva_memslot(fault.slot, fault.gfn) >> PAGE_SHIFT
    fault.map_writable = not fault.slot.flags & KVM_MEM_READONLY
    install_spte(vcpu.kvm, fault)
    return 0


def kvm_handle_guest_abort(vcpu, gpa, write):
    """No slot, or a write to a READONLY one, is MMIO (io_mem_abort()); arm64 has no private
    accesses."""
    kvm = vcpu.kvm
    fault = KvmPageFault(gpa >> PAGE_SHIFT, write, False, False)
    if spte_permits(kvm.stage2.get(fault.gfn), write, False):
        return 0
    fault.slot = gfn_to_memslot(kvm, 0, fault.gfn)
    if fault.slot is None or (write and fault.slot.flags & KVM_MEM_READONLY):
        return RET_PF_EMULATE
    fault.mmu_seq = kvm.mmu_invalidate_seq
    if kvm_slot_has_gmem(fault.slot):
        return gmem_abort(vcpu, fault)
    return user_mem_abort(vcpu, fault)


# -- memslot hooks --------------------------------------------------------------------------

def kvm_memslot_flush_zap_all(kvm):
    """x86 default VMs keep KVM_X86_QUIRK_SLOT_ZAP_ALL (on by default): a slot that goes takes
    every leaf with it (kvm_mmu_zap_all_fast())."""
    return kvm.vm_type == KVM_X86_DEFAULT_VM


def kvm_arch_flush_shadow_memslot(kvm, slot):
    """Deleting or moving a slot zaps all its leaves, both kinds, on both architectures; on an
    x86 default VM every leaf of the VM."""
    if kvm_memslot_flush_zap_all(kvm):
        kvm.stage2.clear()
        return
    kvm_unmap_gfn_range(kvm, KvmGfnRange(slot, slot.base_gfn, slot.base_gfn + slot.npages,
                                         KVM_FILTER_SHARED | KVM_FILTER_PRIVATE))


def kvm_arch_prepare_memory_region(kvm, old, new, change):
    """x86: beyond the MMU's gfn limit -> EINVAL. arm64: beyond the IPA space -> EFAULT, then
    a gmem slot whose file lacks MMAP (not GMEM_ONLY) -> EINVAL."""
    if kvm.arch.name == "x86":
        if change in (KVM_MR_CREATE, KVM_MR_MOVE) and new.base_gfn + new.npages - 1 > kvm.arch.max_gfn:
            return -EINVAL
        return 0
    if change not in (KVM_MR_CREATE, KVM_MR_MOVE, KVM_MR_FLAGS_ONLY):
        return 0
    if new.base_gfn + new.npages > kvm.arch.max_gfn + 1:
        return -EFAULT
    if kvm_slot_has_gmem(new) and not kvm_memslot_is_gmem_only(new):
        return -EINVAL
    return 0
