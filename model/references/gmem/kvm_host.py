"""struct kvm and friends (include/linux/kvm_host.h), the MMU invalidation protocol, unmap.

Stage 2 is modelled for address space 0 only, at 4 KiB: `kvm.stage2` maps a gfn to one
Spte. Each call of the reference runs to completion, so an invalidation never overlaps a
fault; the begin/end sequence is still kept so a fault can assert it was not raced.
"""

from typing import NamedTuple, Optional

from .uapi import (
    KVM_ARM64_USER_MEM_SLOTS, KVM_ARM64_VM, KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE,
    KVM_X86_DEFAULT_VM, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM, KVM_X86_SNP_VM,
    KVM_X86_SW_PROTECTED_VM, KVM_X86_TDX_VM, KVM_X86_USER_MEM_SLOTS, PAGE_SHIFT, GmemUsageError,
)

# Internal memslot flags (include/linux/kvm_host.h).
KVM_MEMSLOT_INVALID = 1 << 16
KVM_MEMSLOT_GMEM_ONLY = 1 << 17

# enum kvm_gfn_range_filter
KVM_FILTER_SHARED = 1 << 0
KVM_FILTER_PRIVATE = 1 << 1

# Host and guest address limits: x86 MAXPHYADDR 52 and 4-level user VA; arm64 the default
# 40-bit IPA space and 48-bit VA with top-byte-ignore tags.
X86_MAXPHYADDR = 52
X86_TASK_SIZE_MAX = (1 << 47) - (1 << PAGE_SHIFT)
ARM64_IPA_BITS = 40
ARM64_TASK_SIZE = 1 << 48


class KvmArch(NamedTuple):
    """What the VM type decides (struct kvm_arch and the kvm_arch_*() predicates)."""
    name: str
    has_private_mem: bool        # kvm_arch_has_private_mem()
    supports_gmem_init_shared: bool   # kvm_arch_supports_gmem_init_shared()
    has_mem_attributes: bool     # CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES
    has_pre_fault_memory: bool   # CONFIG_KVM_GENERIC_PRE_FAULT_MEMORY
    pre_fault_allowed: bool      # kvm->arch.pre_fault_allowed
    has_mirrored_tdp: bool       # kvm_has_mirrored_tdp(): TDX only
    nr_memslot_as_ids: int       # kvm_arch_nr_memslot_as_ids()
    user_mem_slots: int          # KVM_USER_MEM_SLOTS
    max_gfn: int                 # largest gfn a slot may cover (x86) / IPA limit - 1 (arm64)
    task_size: int               # access_ok() limit
    tagged_addr: bool            # untagged_addr() strips the top byte (arm64 TBI)


def kvm_arch_init_vm(vm_type):
    """The arch part of KVM_CREATE_VM for the modelled VM types."""
    x86_max_gfn = (1 << (X86_MAXPHYADDR - PAGE_SHIFT)) - 1
    if vm_type == KVM_X86_DEFAULT_VM:
        return KvmArch("x86", False, True, True, True, True, False, 2, KVM_X86_USER_MEM_SLOTS,
                       x86_max_gfn, X86_TASK_SIZE_MAX, False)
    if vm_type == KVM_X86_SW_PROTECTED_VM:
        return KvmArch("x86", True, False, True, True, True, False, 1, KVM_X86_USER_MEM_SLOTS,
                       x86_max_gfn, X86_TASK_SIZE_MAX, False)
    if vm_type == KVM_ARM64_VM:
        return KvmArch("arm64", False, True, False, False, False, False, 1,
                       KVM_ARM64_USER_MEM_SLOTS, (1 << (ARM64_IPA_BITS - PAGE_SHIFT)) - 1,
                       ARM64_TASK_SIZE, True)
    if vm_type in (KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM, KVM_X86_TDX_VM):
        raise GmemUsageError(f"VM type {vm_type} (SEV/SNP/TDX) is not modelled")
    raise GmemUsageError(f"unknown VM type {vm_type!r}")


class KvmMemorySlot:
    """struct kvm_memory_slot; `gmem_file` is slot->gmem.file (a File) or None."""

    __slots__ = ("as_id", "id", "base_gfn", "npages", "flags", "userspace_addr", "gmem_file",
                 "gmem_pgoff")

    def __init__(self, as_id, id, base_gfn, npages, flags, userspace_addr):
        self.as_id = as_id
        self.id = id
        self.base_gfn = base_gfn
        self.npages = npages
        self.flags = flags
        self.userspace_addr = userspace_addr
        self.gmem_file = None
        self.gmem_pgoff = 0


class KvmGfnRange(NamedTuple):
    """struct kvm_gfn_range: gfns [start, end) of one slot, and which kind of leaf to zap."""
    slot: KvmMemorySlot
    start: int
    end: int
    attr_filter: int


class Spte(NamedTuple):
    """A stage-2 leaf: its kind, write permission, and what it maps: a guest_memfd folio
    (with the inode number and index it was found at) or the user page behind the slot."""
    private: bool
    writable: bool
    folio: Optional[object]
    ino: Optional[int]
    index: Optional[int]
    upage: Optional[int]


class KvmVm:
    """struct kvm: users_count, memslots per address space, mem_attr_array, stage 2."""

    def __init__(self, process, vm_type, arch):
        self.process = process
        self.vm_type = vm_type
        self.arch = arch
        self.users_count = 1
        self.memslots = [dict() for _ in range(arch.nr_memslot_as_ids)]
        self.mem_attr_array = {}
        self.stage2 = {}
        self.mmu_invalidate_seq = 0
        self.mmu_invalidate_in_progress = 0
        self.mmu_invalidate_range_start = 0
        self.mmu_invalidate_range_end = 0
        self.destroyed = False


class KvmVcpu:
    """The one vCPU: `run` holds the memory_fault fields of the last prepared exit."""

    def __init__(self, kvm):
        self.kvm = kvm
        self.run = None


def kvm_get_kvm(kvm):
    kvm.users_count += 1


def kvm_put_kvm(kvm):
    kvm.users_count -= 1
    if kvm.users_count == 0:
        kvm_destroy_vm(kvm)


def kvm_destroy_vm(kvm):
    """Free slots, attributes and stage 2. Every guest_memfd held a VM reference, so all were
    released before this runs and every gmem slot is already file-less: kvm_free_memslot()'s
    kvm_gmem_unbind() has nothing to do."""
    for slots in kvm.memslots:
        assert all(slot.gmem_file is None for slot in slots.values())
        slots.clear()
    kvm.mem_attr_array.clear()
    kvm.stage2.clear()
    kvm.destroyed = True


# -- memslots and attributes ---------------------------------------------------

def gfn_to_memslot(kvm, as_id, gfn):
    for slot in kvm.memslots[as_id].values():
        if slot.base_gfn <= gfn < slot.base_gfn + slot.npages:
            return slot
    return None


def kvm_for_each_memslot_in_gfn_range(kvm, as_id, start, end):
    return [slot for slot in kvm.memslots[as_id].values()
            if slot.base_gfn < end and start < slot.base_gfn + slot.npages]


def kvm_slot_has_gmem(slot):
    return slot is not None and bool(slot.flags & KVM_MEM_GUEST_MEMFD)


def kvm_memslot_is_gmem_only(slot):
    return bool(slot.flags & KVM_MEMSLOT_GMEM_ONLY)


def kvm_get_memory_attributes(kvm, gfn):
    return kvm.mem_attr_array.get(gfn, 0)


def kvm_mem_is_private(kvm, gfn):
    return bool(kvm_get_memory_attributes(kvm, gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE)


# -- invalidation (virt/kvm/kvm_main.c) -------------------------------------------

def kvm_mmu_invalidate_begin(kvm):
    kvm.mmu_invalidate_in_progress += 1
    if kvm.mmu_invalidate_in_progress == 1:
        kvm.mmu_invalidate_range_start = None
        kvm.mmu_invalidate_range_end = None


def kvm_mmu_invalidate_range_add(kvm, start, end):
    if kvm.mmu_invalidate_range_start is None:
        kvm.mmu_invalidate_range_start, kvm.mmu_invalidate_range_end = start, end
    else:
        kvm.mmu_invalidate_range_start = min(kvm.mmu_invalidate_range_start, start)
        kvm.mmu_invalidate_range_end = max(kvm.mmu_invalidate_range_end, end)


def kvm_mmu_invalidate_end(kvm):
    kvm.mmu_invalidate_seq += 1
    kvm.mmu_invalidate_in_progress -= 1


def mmu_invalidate_retry_gfn(kvm, mmu_seq, gfn):
    """True if an invalidation covering gfn is open, or one ended since mmu_seq was read."""
    if kvm.mmu_invalidate_in_progress and (
            kvm.mmu_invalidate_range_start is not None
            and kvm.mmu_invalidate_range_start <= gfn < kvm.mmu_invalidate_range_end):
        return True
    return kvm.mmu_invalidate_seq != mmu_seq


def kvm_gfn_range_filter_to_root_types(kvm, attr_filter):
    """Which leaf kinds a zap may touch: only mirrored TDP (TDX) keeps private leaves in
    separate roots and honours the filter; every other VM loses all leaves in range."""
    if not kvm.arch.has_mirrored_tdp:
        return (True, False)
    return tuple(kind for kind, bit in ((True, KVM_FILTER_PRIVATE), (False, KVM_FILTER_SHARED))
                 if attr_filter & bit)


def kvm_unmap_gfn_range(kvm, range):
    """Zap the leaves of range.slot's address space in [start, end) that the filter selects.
    Returns whether anything was zapped (the caller then flushes TLBs)."""
    if range.slot.as_id != 0:
        return False
    kinds = kvm_gfn_range_filter_to_root_types(kvm, range.attr_filter)
    doomed = [gfn for gfn, spte in kvm.stage2.items()
              if range.start <= gfn < range.end and spte.private in kinds]
    for gfn in doomed:
        del kvm.stage2[gfn]
    return bool(doomed)


def kvm_mmu_unmap_gfn_range(kvm, range):
    kvm_mmu_invalidate_range_add(kvm, range.start, range.end)
    return kvm_unmap_gfn_range(kvm, range)
