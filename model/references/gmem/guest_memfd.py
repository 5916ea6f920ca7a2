"""virt/kvm/guest_memfd.c: the guest_memfd inode, its page cache and its memslot bindings.

7.1 gives each inode exactly one file, so struct gmem_inode and struct gmem_file are one
object here (GmemInode); its File carries the reference count of fds and VMAs. Bindings are
the xarray's ranges: `bindings[start] = (end, slot)` for indices [start, end).
"""

from errno import EBADF, EFAULT, EINVAL, EIO, ENODEV, ENOMEM, EOPNOTSUPP

from .kvm_host import (
    KVM_FILTER_PRIVATE, KVM_FILTER_SHARED, KVM_MEMSLOT_GMEM_ONLY, KvmGfnRange, kvm_get_kvm,
    kvm_mmu_invalidate_begin, kvm_mmu_invalidate_end, kvm_mmu_unmap_gfn_range, kvm_put_kvm,
)
from .mm import File, FileOperations, fput
from .uapi import (
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GUEST_MEMFD_FLAG_INIT_SHARED,
    GUEST_MEMFD_FLAG_MMAP, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE, PAGE_SHIFT, PAGE_SIZE,
    Signal,
)

ULONG_MAX = (1 << 64) - 1


class Folio:
    """An order-0 folio: `content` is undefined (None) until the folio is uptodate."""

    __slots__ = ("uptodate", "content")

    def __init__(self):
        self.uptodate = False
        self.content = None


class GmemInode:
    """struct gmem_inode with its struct gmem_file: size, flags, page cache, VM, bindings."""

    __slots__ = ("i_ino", "i_size", "flags", "i_pages", "kvm", "bindings", "file", "released")

    def __init__(self, ino, size, flags, kvm):
        self.i_ino = ino
        self.i_size = size
        self.flags = flags
        self.i_pages = {}
        self.kvm = kvm
        self.bindings = {}
        self.file = None
        self.released = False

    def bound(self, start, end):
        """The binding ranges (lo, hi, slot) overlapping indices [start, end)."""
        return [(lo, hi, slot) for lo, (hi, slot) in sorted(self.bindings.items())
                if lo < end and start < hi]

    def slot_at(self, index):
        for lo, hi, slot in self.bound(index, index + 1):
            return slot
        return None


def kvm_gmem_get_supported_flags(kvm):
    """include/linux/kvm_host.h: MMAP always; INIT_SHARED where the arch allows it."""
    flags = GUEST_MEMFD_FLAG_MMAP
    if kvm.arch.supports_gmem_init_shared:
        flags |= GUEST_MEMFD_FLAG_INIT_SHARED
    return flags


def kvm_gmem_get_index(slot, gfn):
    return gfn - slot.base_gfn + slot.gmem_pgoff


def kvm_gmem_get_folio(inode, index):
    """filemap_lock_folio(), else allocate a folio that is not uptodate (-ENOMEM past the
    process's folio budget)."""
    folio = inode.i_pages.get(index)
    if folio is not None:
        return folio
    process = inode.kvm.process
    if process.nr_folios >= process.max_folios:
        return -ENOMEM
    process.nr_folios += 1
    folio = inode.i_pages[index] = Folio()
    return folio


def kvm_gmem_mark_uptodate(folio):
    """clear_highpage() then folio_mark_uptodate(): every hand-out of a new folio zeroes it."""
    if not folio.uptodate:
        folio.content = 0
        folio.uptodate = True


def kvm_gmem_get_invalidate_filter(inode):
    if inode.flags & GUEST_MEMFD_FLAG_INIT_SHARED:
        return KVM_FILTER_SHARED
    return KVM_FILTER_PRIVATE


# -- invalidation -------------------------------------------------------------------

def __kvm_gmem_invalidate_begin(inode, start, end, attr_filter):
    """Zap the gfns bound to indices [start, end); the MMU invalidation opens only if a
    binding is found."""
    kvm = inode.kvm
    found_memslot = False
    for lo, hi, slot in inode.bound(start, end):
        pgoff = slot.gmem_pgoff
        gfn_range = KvmGfnRange(slot, slot.base_gfn + max(pgoff, start) - pgoff,
                                slot.base_gfn + min(pgoff + slot.npages, end) - pgoff, attr_filter)
        if not found_memslot:
            found_memslot = True
            kvm_mmu_invalidate_begin(kvm)
        kvm_mmu_unmap_gfn_range(kvm, gfn_range)
    return found_memslot


def __kvm_gmem_invalidate_end(inode, start, end):
    if inode.bound(start, end):
        kvm_mmu_invalidate_end(inode.kvm)


def kvm_gmem_invalidate_begin(inode, start, end):
    __kvm_gmem_invalidate_begin(inode, start, end, kvm_gmem_get_invalidate_filter(inode))


def kvm_gmem_invalidate_end(inode, start, end):
    __kvm_gmem_invalidate_end(inode, start, end)


# -- fallocate ----------------------------------------------------------------------

def truncate_inode_pages_range(inode, start, end):
    """Unmap the host PTEs of indices [start, end), then drop their folios."""
    process = inode.kvm.process
    process.unmap_mapping_range(inode, start, end)
    for index in [i for i in inode.i_pages if start <= i < end]:
        del inode.i_pages[index]
        process.nr_folios -= 1


def kvm_gmem_punch_hole(inode, offset, length):
    """Zap bound gfns, truncate, end the invalidation. Past the end there is simply nothing."""
    start = offset >> PAGE_SHIFT
    end = (offset + length) >> PAGE_SHIFT
    kvm_gmem_invalidate_begin(inode, start, end)
    truncate_inode_pages_range(inode, start, end)
    kvm_gmem_invalidate_end(inode, start, end)
    return 0


def kvm_gmem_allocate(inode, offset, length):
    """Populate the page cache, not zeroed; not all-or-nothing: folios made before an error
    stay."""
    if offset + length > inode.i_size:
        return -EINVAL
    for index in range(offset >> PAGE_SHIFT, (offset + length) >> PAGE_SHIFT):
        folio = kvm_gmem_get_folio(inode, index)
        if isinstance(folio, int):
            return folio
    return 0


def kvm_gmem_fallocate(file, mode, offset, length):
    if not mode & FALLOC_FL_KEEP_SIZE:
        return -EOPNOTSUPP
    if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE):
        return -EOPNOTSUPP
    if offset & (PAGE_SIZE - 1) or length & (PAGE_SIZE - 1):
        return -EINVAL
    if mode & FALLOC_FL_PUNCH_HOLE:
        return kvm_gmem_punch_hole(file.private_data, offset, length)
    return kvm_gmem_allocate(file.private_data, offset, length)


# -- release, mmap, host faults -----------------------------------------------------------

def kvm_gmem_release(file):
    """Last fd or VMA gone: every bound slot becomes file-less, every bound gfn is zapped,
    the bindings go, the VM reference is dropped. The inode is evicted at once in 7.1."""
    inode = file.private_data
    kvm = inode.kvm
    for lo, hi, slot in inode.bound(0, ULONG_MAX):
        slot.gmem_file = None
    __kvm_gmem_invalidate_begin(inode, 0, ULONG_MAX, kvm_gmem_get_invalidate_filter(inode))
    __kvm_gmem_invalidate_end(inode, 0, ULONG_MAX)
    inode.bindings.clear()
    inode.released = True
    kvm.process.nr_folios -= len(inode.i_pages)
    inode.i_pages.clear()
    kvm_put_kvm(kvm)


def kvm_gmem_fault_user_mapping(vma, pgoff):
    """The host fault handler: SIGBUS past the size or without INIT_SHARED; attributes are
    never read here."""
    inode = vma.vm_file.private_data
    if (pgoff << PAGE_SHIFT) >= inode.i_size:
        return Signal("SIGBUS")
    if not inode.flags & GUEST_MEMFD_FLAG_INIT_SHARED:
        return Signal("SIGBUS")
    folio = kvm_gmem_get_folio(inode, pgoff)
    if isinstance(folio, int):
        return Signal("SIGBUS")    # vmf_error(-ENOMEM) is VM_FAULT_OOM; no OOM killer here
    kvm_gmem_mark_uptodate(folio)
    return folio


class VmOperations:
    """struct vm_operations_struct: the fault hook."""

    __slots__ = ("fault",)

    def __init__(self, fault):
        self.fault = fault


kvm_gmem_vm_ops = VmOperations(kvm_gmem_fault_user_mapping)


def kvm_gmem_mmap(file, vma, flags):
    if not file.private_data.flags & GUEST_MEMFD_FLAG_MMAP:
        return -ENODEV
    if flags & MAP_TYPE not in (MAP_SHARED, MAP_SHARED_VALIDATE):
        return -EINVAL
    vma.vm_ops = kvm_gmem_vm_ops
    return 0


kvm_gmem_fops = FileOperations("kvm_gmem_fops", release=kvm_gmem_release,
                               fallocate=kvm_gmem_fallocate, mmap=kvm_gmem_mmap)


# -- create, bind, unbind, get_pfn ----------------------------------------------------------

def __kvm_gmem_create(kvm, size, flags):
    process = kvm.process
    fd = process.get_unused_fd()
    inode = GmemInode(process.next_ino, size, flags, kvm)
    process.next_ino += 1
    inode.file = File(kvm_gmem_fops, inode, regular=True)
    kvm_get_kvm(kvm)
    process.inodes[inode.i_ino] = inode
    process.fd_install(fd, inode.file)
    return fd


def kvm_gmem_create(kvm, size, flags):
    """Flags before size; size is an loff_t, so >= 2^63 is negative."""
    if flags & ~kvm_gmem_get_supported_flags(kvm):
        return -EINVAL
    if size <= 0 or size & (PAGE_SIZE - 1):
        return -EINVAL
    return __kvm_gmem_create(kvm, size, flags)


def kvm_gmem_bind(kvm, slot, fd, offset):
    """Bind a new slot to [offset, offset + size) of the file; the binding keeps no
    reference to the file (the file pins the VM, not the other way round)."""
    file = kvm.process.fget(fd)
    if file is None:
        return -EBADF
    r = __kvm_gmem_bind(kvm, slot, file, offset)
    fput(file)
    return r


def __kvm_gmem_bind(kvm, slot, file, offset):
    if file.f_op is not kvm_gmem_fops:
        return -EINVAL
    inode = file.private_data
    if inode.kvm is not kvm:
        return -EINVAL
    if offset < 0 or offset & (PAGE_SIZE - 1) or offset + (slot.npages << PAGE_SHIFT) > inode.i_size:
        return -EINVAL
    start = offset >> PAGE_SHIFT
    end = start + slot.npages
    if inode.bound(start, end):
        return -EINVAL
    slot.gmem_file = file
    slot.gmem_pgoff = start
    if inode.flags & GUEST_MEMFD_FLAG_MMAP:
        slot.flags |= KVM_MEMSLOT_GMEM_ONLY
    inode.bindings[start] = (end, slot)
    return 0


def kvm_gmem_unbind(slot):
    """Erase the slot's bindings; nothing to do once release made the slot file-less."""
    if slot.gmem_file is None:
        return
    del slot.gmem_file.private_data.bindings[slot.gmem_pgoff]
    slot.gmem_file = None


def kvm_gmem_get_pfn(kvm, slot, gfn):
    """(0, folio) for the guest, the folio zeroed if it was not uptodate; else (-errno, None).

    EFAULT if the file is gone, EIO if the index is bound to another slot (a kernel WARN)."""
    file = slot.gmem_file
    if file is None:
        return -EFAULT, None
    inode = file.private_data
    index = kvm_gmem_get_index(slot, gfn)
    if inode.slot_at(index) is not slot:
        return -EIO, None
    folio = kvm_gmem_get_folio(inode, index)
    if isinstance(folio, int):
        return folio, None
    kvm_gmem_mark_uptodate(folio)
    return 0, folio
