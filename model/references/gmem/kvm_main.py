"""virt/kvm/kvm_main.c: KVM_CREATE_VM, memslots, KVM_SET_MEMORY_ATTRIBUTES, pre-faulting.

Every check runs in the kernel's order and the first failure wins; a failing call changes
nothing, except a failing MOVE whose old slot was already zapped (as in the kernel) and the
pages KVM_PRE_FAULT_MEMORY mapped before an error.
"""

from errno import EEXIST, EINVAL, ENOMEM
from typing import NamedTuple

from .guest_memfd import kvm_gmem_bind, kvm_gmem_create, kvm_gmem_unbind
from .kvm_host import (
    KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KVM_MEMSLOT_INVALID, KvmGfnRange, KvmMemorySlot, KvmVm,
    kvm_arch_init_vm, kvm_for_each_memslot_in_gfn_range, kvm_mmu_invalidate_begin,
    kvm_mmu_invalidate_end, kvm_mmu_invalidate_range_add, kvm_put_kvm,
)
from .mm import File, FileOperations
from .mmu import (
    KVM_MR_CREATE, KVM_MR_DELETE, KVM_MR_FLAGS_ONLY, KVM_MR_MOVE, kvm_arch_flush_shadow_memslot,
    kvm_arch_prepare_memory_region, kvm_x86_pre_set_memory_attributes,
    kvm_x86_vcpu_pre_fault_memory,
)
from .uapi import (
    KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_MAX_NR_PAGES, KVM_MEM_READONLY,
    KVM_MEM_SLOTS_NUM, KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SHIFT, PAGE_SIZE, U64, s64,
)

# xa_reserve() of one entry per gfn is where a huge KVM_SET_MEMORY_ATTRIBUTES fails with
# ENOMEM (nothing changed); the model draws that line here.
KVM_MAX_ATTR_RANGE = 1 << 20


class KvmUserspaceMemoryRegion2(NamedTuple):
    """struct kvm_userspace_memory_region2, fields already cut to their C widths."""
    slot: int
    flags: int
    guest_phys_addr: int
    memory_size: int
    userspace_addr: int
    guest_memfd_offset: int
    guest_memfd: int


def kvm_vm_release(file):
    kvm_put_kvm(file.private_data)


kvm_vm_fops = FileOperations("kvm_vm_fops", release=kvm_vm_release)
kvm_chardev_ops = FileOperations("kvm_chardev_ops")


def kvm_dev_open(process):
    """open("/dev/kvm"): a character device, neither a VM nor a guest_memfd."""
    fd = process.get_unused_fd()
    process.fd_install(fd, File(kvm_chardev_ops, None, regular=False))
    return fd


def kvm_dev_ioctl_create_vm(process, vm_type):
    """KVM_CREATE_VM: (the VM, its fd). The fd holds the VM's first reference."""
    kvm = KvmVm(process, vm_type, kvm_arch_init_vm(vm_type))
    fd = process.get_unused_fd()
    process.fd_install(fd, File(kvm_vm_fops, kvm, regular=False))
    return kvm, fd


def kvm_vm_ioctl_create_guest_memfd(kvm, size, flags):
    return kvm_gmem_create(kvm, s64(size), flags & U64)


# -- memslots ----------------------------------------------------------------------------

def check_memory_region_flags(kvm, mem):
    valid_flags = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD
    if mem.flags & KVM_MEM_GUEST_MEMFD:
        valid_flags &= ~KVM_MEM_LOG_DIRTY_PAGES
    else:
        valid_flags |= KVM_MEM_READONLY      # kvm_arch_has_readonly_mem() on both modelled archs
    if mem.flags & ~valid_flags:
        return -EINVAL
    return 0


def untagged_addr(kvm, addr):
    return addr & ~(0xff << 56) if kvm.arch.tagged_addr else addr


def access_ok(kvm, addr, size):
    return addr + size <= kvm.arch.task_size


def kvm_check_memslot_overlap(kvm, as_id, id, start, end):
    return any(slot.id != id for slot in kvm_for_each_memslot_in_gfn_range(kvm, as_id, start, end))


def kvm_vm_ioctl_set_memory_region(kvm, mem):
    if (mem.slot & 0xffff) >= kvm.arch.user_mem_slots:
        return -EINVAL
    return kvm_set_memory_region(kvm, mem)


def kvm_set_memory_region(kvm, mem):
    r = check_memory_region_flags(kvm, mem)
    if r:
        return r
    as_id = mem.slot >> 16
    id = mem.slot & 0xffff
    if mem.memory_size & (PAGE_SIZE - 1):
        return -EINVAL
    if mem.guest_phys_addr & (PAGE_SIZE - 1):
        return -EINVAL
    if (mem.userspace_addr & (PAGE_SIZE - 1)
            or mem.userspace_addr != untagged_addr(kvm, mem.userspace_addr)
            or not access_ok(kvm, mem.userspace_addr, mem.memory_size)):
        return -EINVAL
    if mem.flags & KVM_MEM_GUEST_MEMFD and (
            mem.guest_memfd_offset & (PAGE_SIZE - 1)
            or mem.guest_memfd_offset + mem.memory_size > U64):
        return -EINVAL
    if as_id >= kvm.arch.nr_memslot_as_ids or id >= KVM_MEM_SLOTS_NUM:
        return -EINVAL
    if mem.guest_phys_addr + mem.memory_size > U64:
        return -EINVAL
    if id < kvm.arch.user_mem_slots and (mem.memory_size >> PAGE_SHIFT) > KVM_MEM_MAX_NR_PAGES:
        return -EINVAL

    old = kvm.memslots[as_id].get(id)
    if not mem.memory_size:
        if old is None:
            return -EINVAL
        return kvm_set_memslot(kvm, old, None, KVM_MR_DELETE)

    base_gfn = mem.guest_phys_addr >> PAGE_SHIFT
    npages = mem.memory_size >> PAGE_SHIFT
    if old is None:
        change = KVM_MR_CREATE
    else:
        # guest_memfd slots are immutable: they can only be deleted.
        if mem.flags & KVM_MEM_GUEST_MEMFD:
            return -EINVAL
        if (mem.userspace_addr != old.userspace_addr or npages != old.npages
                or (mem.flags ^ old.flags) & (KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD)):
            return -EINVAL
        if base_gfn != old.base_gfn:
            change = KVM_MR_MOVE
        elif mem.flags != old.flags:
            change = KVM_MR_FLAGS_ONLY
        else:
            return 0

    if change in (KVM_MR_CREATE, KVM_MR_MOVE) and kvm_check_memslot_overlap(
            kvm, as_id, id, base_gfn, base_gfn + npages):
        return -EEXIST

    new = KvmMemorySlot(as_id, id, base_gfn, npages, mem.flags, mem.userspace_addr)
    if mem.flags & KVM_MEM_GUEST_MEMFD:
        r = kvm_gmem_bind(kvm, new, mem.guest_memfd, s64(mem.guest_memfd_offset))
        if r:
            return r
    r = kvm_set_memslot(kvm, old, new, change)
    if r and mem.flags & KVM_MEM_GUEST_MEMFD:
        kvm_gmem_unbind(new)
    return r


def kvm_set_memslot(kvm, old, new, change):
    """Deleting or moving first marks the old slot INVALID and zaps it; an arch refusal after
    that reverts the flag but not the zap."""
    if change in (KVM_MR_DELETE, KVM_MR_MOVE):
        old.flags |= KVM_MEMSLOT_INVALID
        kvm_arch_flush_shadow_memslot(kvm, old)
    r = kvm_arch_prepare_memory_region(kvm, old, new, change)
    if change in (KVM_MR_DELETE, KVM_MR_MOVE):
        old.flags &= ~KVM_MEMSLOT_INVALID
    if r:
        return r
    slots = kvm.memslots[(old or new).as_id]
    if change == KVM_MR_DELETE:
        del slots[old.id]
        kvm_gmem_unbind(old)        # kvm_free_memslot()
    else:
        slots[new.id] = new
    return 0


# -- memory attributes -------------------------------------------------------------------

def kvm_supported_mem_attributes(kvm):
    return KVM_MEMORY_ATTRIBUTE_PRIVATE if kvm.arch.has_private_mem else 0


def kvm_range_has_memory_attributes(kvm, start, end, mask, attrs):
    """Whether every gfn in [start, end) has (attributes & mask) == attrs."""
    mask &= kvm_supported_mem_attributes(kvm)
    if attrs & ~mask:
        return False
    if not attrs:
        return not any(start <= gfn < end for gfn in kvm.mem_attr_array)
    return end - start == sum(1 for gfn, value in kvm.mem_attr_array.items()
                              if start <= gfn < end and value & mask == attrs)


def kvm_handle_gfn_range(kvm, start, end, handler, on_lock):
    """Run handler on each slot's part of [start, end), in every address space; on_lock once,
    before the first. Returns whether any handler wants a TLB flush."""
    found_memslot = False
    flush = False
    for as_id in range(kvm.arch.nr_memslot_as_ids):
        for slot in kvm_for_each_memslot_in_gfn_range(kvm, as_id, start, end):
            gfn_range = KvmGfnRange(slot, max(start, slot.base_gfn),
                                    min(end, slot.base_gfn + slot.npages),
                                    KVM_FILTER_SHARED | KVM_FILTER_PRIVATE)
            if not found_memslot:
                found_memslot = True
                on_lock(kvm)
            flush |= handler(kvm, gfn_range)
    return flush


def kvm_vm_set_mem_attributes(kvm, start, end, attributes):
    """Equal already: nothing, not even a zap. Otherwise zap the old kind in every slot in
    range, store the value on every gfn (slot or not), end the invalidation."""
    if kvm_range_has_memory_attributes(kvm, start, end, ~0, attributes):
        return 0
    if end - start > KVM_MAX_ATTR_RANGE:
        return -ENOMEM

    def pre_set(kvm, range):
        kvm_mmu_invalidate_range_add(kvm, range.start, range.end)
        return kvm_x86_pre_set_memory_attributes(kvm, range, attributes)

    kvm_handle_gfn_range(kvm, start, end, pre_set, kvm_mmu_invalidate_begin)
    for gfn in range(start, end):
        if attributes:
            kvm.mem_attr_array[gfn] = attributes
        else:
            kvm.mem_attr_array.pop(gfn, None)
    # kvm_arch_post_set_memory_attributes() keeps the hugepage "mixed" flags: no huge leaves
    # are modelled, so only the invalidation ends.
    kvm_handle_gfn_range(kvm, start, end, lambda kvm, range: False, kvm_mmu_invalidate_end)
    return 0


def kvm_vm_ioctl_set_mem_attributes(kvm, address, size, attributes, flags):
    if not kvm.arch.has_mem_attributes:
        return -EINVAL        # no such VM ioctl: kvm_arch_vm_ioctl() answers -EINVAL
    if flags:
        return -EINVAL
    if attributes & ~kvm_supported_mem_attributes(kvm):
        return -EINVAL
    if size == 0 or address + size > U64:
        return -EINVAL
    if address & (PAGE_SIZE - 1) or size & (PAGE_SIZE - 1):
        return -EINVAL
    return kvm_vm_set_mem_attributes(kvm, address >> PAGE_SHIFT, (address + size) >> PAGE_SHIFT,
                                     attributes)


# -- KVM_PRE_FAULT_MEMORY ----------------------------------------------------------------

def kvm_vcpu_pre_fault_memory(vcpu, gpa, size, flags):
    """(r, gpa, size): r is 0 if at least one page was mapped, else the first error; gpa and
    size are written back past the pages done."""
    if not vcpu.kvm.arch.has_pre_fault_memory:
        return -EINVAL, gpa, size        # unknown vCPU ioctl on arm64 in 7.1
    if flags:
        return -EINVAL, gpa, size
    if gpa & (PAGE_SIZE - 1) or size & (PAGE_SIZE - 1) or gpa + size <= gpa or gpa + size > U64:
        return -EINVAL, gpa, size
    full_size = size
    r = 0
    while size:
        r = kvm_x86_vcpu_pre_fault_memory(vcpu, gpa, size)
        if r < 0:
            break
        size -= r
        gpa += r
    return (0 if size != full_size else r), gpa, size
