"""The guest_memfd protocol of Linux 7.1: guest_memfd files, memslots bound to them, memory
attributes, the guest fault path and host mappings, one VM (sheet sections 2-5).

Each transition yields its checks in kernel order, `yield s.require(ok, errno, label)` with the
kernel function as label, then writes. Arguments are in pages, not bytes (the conformance
adapter converts). A failing call changes nothing; a guest access that ends in a KVM_RUN exit,
or a host access answered with a signal, is such a failing call whose code names the exit
(`states.memfault`, `EXIT_MMIO`, `SIGBUS`, `SIGSEGV`). Calls are atomic: the invalidation
protocol (begin, retry, end) is not split (sheet 3 "a model may make each call atomic").
"""

from __future__ import annotations

from errno import EBADF, EEXIST, EFAULT, EINVAL, EIO, ENODEV, ENOENT

from model.profiles.gmem.states import (
    ABSENT, ALLOCATED, CLOSED, DERIVED, DESTROYED, EXIT_MMIO, FORCE_PRIVATE, GUEST, HOST,
    INIT_SHARED, LOFF_PAGES, MMAP, MMAP_PAGES, NO_LEAF, OPEN, PRIVATE_ATTR, PRIVATE_LEAF,
    SHARED_LEAF, SIGBUS, SIGSEGV, VMFD, ZERO, exit_errno,
)
from model.transitions import Protocol

GMEM = Protocol()


# -- caller discipline: what the VMM never asks (and what the machine's tuples cannot hold) --------

def _in_gfns(s, gfn, n=1):
    return s.And(gfn + n <= s.gfn_limit(), n >= 0)


def _create_ok(s, size, flags):
    """At most `files` guest_memfds, each fitting the machine (or an invalid loff_t)."""
    return s.And(s.can_create(), s.size_fits(size))


def _slot_ok(s, slot, gfn, npages, *rest):
    """Slot ids and gfns of the machine; npages 0 would be a deletion (delete_slot)."""
    return s.And(s.is_slot(slot), npages >= 1, _in_gfns(s, gfn, npages))


def _attr_ok(s, gfn, count, private):
    return _in_gfns(s, gfn, count)


def _access_ok(s, gfn, kind):
    """A forced private kind (a fault racing a conversion) needs a VM with private memory (the
    reference refuses the call)."""
    return s.And(_in_gfns(s, gfn), s.Or(kind != FORCE_PRIVATE, s.has_private()), kind <= 2)


def _gfn_ok(s, gfn):
    return _in_gfns(s, gfn)


def _not_vmfd(s, file):
    """close_vm closes the VM's fd; close_file only guest_memfds."""
    return file != VMFD


def _vma_bound(s, file):
    return s.vmas(file) < s.vma_limit()


# -- shared pieces ----------------------------------------------------------------------------------

def vm_fd(s):
    """VM and vCPU ioctls on a closed VM fd: EBADF."""
    yield s.require(s.vm() == OPEN, EBADF, "kvm_vm_ioctl")


def zap(s, pred):
    """kvm_unmap_gfn_range() on every gfn with pred: without mirrored TDP every leaf in range
    goes, shared or private (sheet 3, reference doc 1)."""
    s.set_where("lkind", pred, lambda g: NO_LEAF)
    s.set_where("lfile", pred, lambda g: 0)
    s.set_where("lidx", pred, lambda g: 0)


def destroy(s):
    """kvm_destroy_vm(): slots, attributes and stage 2 freed (every gmem slot is file-less)."""
    s.set("vm", None, DESTROYED)
    for field in ("sn", "sbase", "sgmem", "sfile", "spgoff", "sonly"):
        s.set_where(field, lambda x: True, lambda x: 0)
    for field in ("attr", "gslot", "lkind", "lfile", "lidx"):
        s.set_where(field, lambda g: True, lambda g: 0)


def release(s, f):
    """kvm_gmem_release(), the last fd or VMA gone: bound slots become file-less, their gfns are
    zapped, bindings erased, pages freed with the inode; the VM reference dropped (the last one
    destroys the VM)."""
    zap(s, lambda g: s.bound_file(g) == f + 1)
    s.set_where("sfile", lambda x: s.sfile(x) == f + 1, lambda x: 0)
    s.set_where("bind", lambda a, b: a == f, lambda a, b: 0)
    s.set_where("page", lambda a, b: a == f, lambda a, b: ABSENT)
    s.set_where("hpte", lambda a, b: a == f, lambda a, b: 0)
    last = s.forall_file(lambda other: s.Or(other == f, s.released(other)))
    with s.when(s.And(s.vm() == CLOSED, last)):
        destroy(s)


def hand_out(s, f, i):
    """kvm_gmem_mark_uptodate(): a page not uptodate is zeroed when guest_memfd hands it out."""
    return s.If(s.page(f, i) < ZERO, ZERO, s.page(f, i))


def fault_in(s, gfn, private, exits):
    """kvm_mmu_faultin_pfn() after the kind check (x86) / the gmem and user abort paths (arm64):
    no slot, the guest_memfd page or the userspace page, then the leaf. With `exits` an error
    leaves KVM_RUN as a memory fault exit (shared: MMIO); else as the errno of
    KVM_PRE_FAULT_MEMORY (shared: ENOENT)."""
    code = (lambda p, e: exit_errno(s.If(p, 1, 0), e)) if exits else (lambda p, e: e)
    x = s.slot_of(gfn)
    has_slot = s.gslot(gfn) != 0
    yield s.require(s.Or(has_slot, s.Not(private)), code(private, EFAULT), "kvm_handle_noslot_fault")
    yield s.require(has_slot, -EXIT_MMIO if exits else ENOENT, "kvm_handle_noslot_fault_mmio")
    # fault_from_gmem(): private or GMEM_ONLY; arm64 takes every gmem slot from guest_memfd
    from_gmem = s.Or(private, s.sonly(x) == 1, s.And(s.arm64(), s.sgmem(x) == 1))
    f = s.sfile(x) - 1
    i = s.index_of(gfn)
    with s.when(from_gmem):
        yield s.require(s.sgmem(x) == 1, code(private, EFAULT), "kvm_slot_has_gmem")
        yield s.require(s.sfile(x) != 0, code(private, EFAULT), "kvm_gmem_get_pfn_file")
        yield s.require(s.bind(f, i) == x + 1, code(private, EIO), "kvm_gmem_get_pfn_binding")
        s.set("page", (f, i), hand_out(s, f, i))
    s.set("lkind", gfn, s.If(private, PRIVATE_LEAF, SHARED_LEAF))
    s.set("lfile", gfn, s.If(from_gmem, s.sfile(x), 0))
    s.set("lidx", gfn, s.If(from_gmem, i, 0))


def guest_access(s, gfn, kind, write):
    """KVM_RUN until the access completes (kvm_mmu_page_fault / kvm_handle_guest_abort). An
    access through a present leaf completes without a fault, whatever its kind: none of these VM
    types has a private bit in hardware (SNP/TDX would). Only a fault gets a kind: KVM's (x86: the
    attribute; arm64 has none, every access is shared) or a forced one, which stands for a
    fault whose kind was taken before a racing attribute change (SW_PROTECTED)."""
    yield from vm_fd(s)
    private = s.If(kind == DERIVED, s.attr(gfn) == PRIVATE_ATTR, kind == FORCE_PRIVATE)
    spurious = s.lkind(gfn) != NO_LEAF
    with s.when(s.Not(spurious)):
        yield s.require(private == (s.attr(gfn) == PRIVATE_ATTR),
                        exit_errno(s.If(private, 1, 0), EFAULT), "kvm_mmu_faultin_pfn_kind")
        yield from fault_in(s, gfn, private, True)
    with s.when(write):
        # the store lands in the page the leaf maps; a userspace page is outside the model
        x = s.slot_of(gfn)
        f = s.If(spurious, s.lfile(gfn), s.If(s.Or(private, s.sonly(x) == 1,
                                                   s.And(s.arm64(), s.sgmem(x) == 1)),
                                              s.sfile(x), 0)) - 1
        i = s.If(spurious, s.lidx(gfn), s.index_of(gfn))
        with s.when(f >= 0):
            s.set("page", (f, i), GUEST)


# -- transitions ------------------------------------------------------------------------------------

@GMEM.transition("host", "kvm", discipline=_create_ok)
def create_file(s, size, flags):
    """KVM_CREATE_GUEST_MEMFD(size pages, flags): a new file, fd open, no page."""
    yield from vm_fd(s)
    valid = s.And(flags >= 0, flags <= MMAP | INIT_SHARED,
                  s.Or(s.supports_init_shared(), flags <= MMAP))
    yield s.require(valid, EINVAL, "kvm_gmem_get_supported_flags")
    yield s.require(s.And(size > 0, size < LOFF_PAGES), EINVAL, "kvm_gmem_create_size")
    f = s.nfiles()
    s.set("fsize", f, size)
    s.set("fflags", f, flags)
    s.set("fd", f, 1)
    s.set("vmas", f, 0)
    s.reset_row(f)
    s.set("nfiles", None, f + 1)


@GMEM.transition("host", "kvm", discipline=_slot_ok)
def bind_slot(s, slot, gfn, npages, file, pgoff):
    """KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD: a new slot bound to file indices
    [pgoff, pgoff + npages) (kvm_set_memory_region, kvm_gmem_bind, arch prepare)."""
    yield from vm_fd(s)
    yield s.require(s.sn(slot) == 0, EINVAL, "kvm_set_memory_region_gmem_immutable")
    yield s.each_page(gfn, npages, lambda g: s.If(s.gslot(g) != 0, -EEXIST, 0),
                      "kvm_check_memslot_overlap")
    yield s.require(s.fd_ok(file), EBADF, "kvm_gmem_bind_fget")
    yield s.require(file != VMFD, EINVAL, "kvm_gmem_bind_fops")
    yield s.require(pgoff + npages <= s.fsize(file), EINVAL, "kvm_gmem_bind_size")
    yield s.each_page(pgoff, npages, lambda j: s.If(s.bind(file, j) != 0, -EINVAL, 0),
                      "kvm_gmem_bind_bound")
    yield s.require(s.Or(s.Not(s.arm64()), s.has_flag(file, MMAP)), EINVAL,
                    "kvm_arch_prepare_memory_region")
    s.set("sn", slot, npages)
    s.set("sbase", slot, gfn)
    s.set("sgmem", slot, 1)
    s.set("sfile", slot, file + 1)
    s.set("spgoff", slot, pgoff)
    s.set("sonly", slot, s.If(s.has_flag(file, MMAP), 1, 0))
    s.set_where("gslot", lambda g: s.And(g >= gfn, g < gfn + npages), lambda g: slot + 1)
    s.set_where("bind", lambda a, b: s.And(a == file, b >= pgoff, b < pgoff + npages),
                lambda a, b: slot + 1)


@GMEM.transition("host", "kvm", discipline=_slot_ok)
def add_slot(s, slot, gfn, npages):
    """KVM_SET_USER_MEMORY_REGION2 without guest_memfd: a slot of userspace memory (the host
    page behind gfn g is its own). Re-issuing an existing slot unchanged is 0; any other change
    of an existing slot is EINVAL: a resize or a guest_memfd slot is EINVAL in the kernel too,
    but a new base with the same userspace_addr and size is KVM_MR_MOVE there (0 or EEXIST),
    which the model has not: here the userspace address follows the gfn (docs/gmem.md, "Not
    modelled"), so a new base is a new address, and that is EINVAL."""
    yield from vm_fd(s)
    existing = s.sn(slot) != 0
    with s.when(existing):
        yield s.require(s.And(s.sgmem(slot) == 0, s.sbase(slot) == gfn, s.sn(slot) == npages),
                        EINVAL, "kvm_set_memory_region_change")
    with s.when(s.Not(existing)):
        yield s.each_page(gfn, npages, lambda g: s.If(s.gslot(g) != 0, -EEXIST, 0),
                          "kvm_check_memslot_overlap")
        s.set("sn", slot, npages)
        s.set("sbase", slot, gfn)
        s.set_where("gslot", lambda g: s.And(g >= gfn, g < gfn + npages), lambda g: slot + 1)


@GMEM.transition("host", "kvm", discipline=lambda s, slot: s.is_slot(slot))
def delete_slot(s, slot):
    """KVM_SET_USER_MEMORY_REGION2 with size 0: zap the slot (both kinds; on an x86 default VM
    every leaf), unbind it; pages, content and attributes stay."""
    yield from vm_fd(s)
    yield s.require(s.sn(slot) != 0, EINVAL, "kvm_set_memory_region_delete")
    zap(s, lambda g: s.Or(s.gslot(g) == slot + 1, s.slot_zap_all()))
    s.set_where("bind", lambda a, b: s.bind(a, b) == slot + 1, lambda a, b: 0)
    s.set_where("gslot", lambda g: s.gslot(g) == slot + 1, lambda g: 0)
    for field in ("sn", "sbase", "sgmem", "sfile", "spgoff", "sonly"):
        s.set(field, slot, 0)


@GMEM.transition("host", "kvm", discipline=_attr_ok)
def set_attributes(s, gfn, count, private):
    """KVM_SET_MEMORY_ATTRIBUTES on [gfn, gfn + count): PRIVATE (private=1) or shared. A range
    already so is 0 with nothing zapped; otherwise every leaf of the range inside a slot is
    zapped and the value set on every gfn, slot or not."""
    yield from vm_fd(s)
    yield s.require(s.Not(s.arm64()), EINVAL, "kvm_arch_vm_ioctl")
    yield s.require(s.Or(private == 0, s.And(private == 1, s.has_private())), EINVAL,
                    "kvm_supported_mem_attributes")
    yield s.require(count > 0, EINVAL, "kvm_vm_ioctl_set_mem_attributes_size")
    value = s.If(private == 1, PRIVATE_ATTR, 0)
    already = s.all_gfns(gfn, count, lambda g: s.attr(g) == value)
    inside = lambda g: s.And(g >= gfn, g < gfn + count)
    with s.when(s.Not(already)):
        zap(s, lambda g: s.And(inside(g), s.gslot(g) != 0))
        s.set_where("attr", inside, lambda g: value)


def _fallocate_checks(s, file, count):
    yield s.require(s.fd_ok(file), EBADF, "fget")
    yield s.require(count > 0, EINVAL, "vfs_fallocate_len")
    yield s.require(file != VMFD, ENODEV, "vfs_fallocate_regular")


@GMEM.transition("host", "guest_memfd")
def allocate(s, file, index, count):
    """fallocate(KEEP_SIZE) of indices [index, index + count): absent pages become allocated,
    not zeroed."""
    yield from _fallocate_checks(s, file, count)
    yield s.require(index + count <= s.fsize(file), EINVAL, "kvm_gmem_allocate")
    s.set_where("page", lambda a, b: s.And(a == file, b >= index, b < index + count,
                                           s.page(a, b) == ABSENT), lambda a, b: ALLOCATED)


@GMEM.transition("host", "guest_memfd")
def punch(s, file, index, count):
    """fallocate(KEEP_SIZE | PUNCH_HOLE): zap every gfn bound to a punched index, remove the host
    PTEs, free the pages (kvm_gmem_punch_hole; 0 also past the end)."""
    yield from _fallocate_checks(s, file, count)
    punched = lambda a, b: s.And(a == file, b >= index, b < index + count)
    zap(s, lambda g: s.And(s.bound_file(g) == file + 1, s.index_of(g) >= index,
                           s.index_of(g) < index + count))
    s.set_where("hpte", punched, lambda a, b: 0)
    s.set_where("page", punched, lambda a, b: ABSENT)


@GMEM.transition("host", "mm", bound=_vma_bound)
def mmap(s, file):
    """mmap(MAP_SHARED) of MMAP_PAGES pages of the file: a VMA, holding a file reference."""
    yield s.require(s.fd_ok(file), EBADF, "fget")
    yield s.require(file != VMFD, ENODEV, "do_mmap")
    yield s.require(s.has_flag(file, MMAP), ENODEV, "kvm_gmem_mmap")
    s.set("vmas", file, s.vmas(file) + 1)


@GMEM.transition("host", "mm")
def munmap(s, file):
    """munmap() of the file's first VMA (the one its host PTEs are in); nothing mapped is 0.
    The last reference releases the file."""
    mapped = s.vmas(file) > 0
    with s.when(mapped):
        s.set("vmas", file, s.vmas(file) - 1)
        s.set_where("hpte", lambda a, b: a == file, lambda a, b: 0)
        with s.when(s.And(s.vmas(file) == 1, s.fd(file) == 0)):
            release(s, file)
    yield 0


def host_access(s, file, index, write):
    """A host load or store through the file's VMA (handle_mm_fault, kvm_gmem_fault_user_mapping:
    attributes are never read there)."""
    yield s.require(s.fd_ok(file), EBADF, "fget")
    yield s.require(s.And(file != VMFD, s.vmas(file) > 0, index < MMAP_PAGES), -SIGSEGV, "find_vma")
    present = s.hpte(file, index) == 1
    with s.when(s.Not(present)):
        yield s.require(index < s.fsize(file), -SIGBUS, "kvm_gmem_fault_user_mapping_size")
        yield s.require(s.has_flag(file, INIT_SHARED), -SIGBUS, "kvm_gmem_fault_user_mapping_shared")
        s.set("page", (file, index), hand_out(s, file, index))
        s.set("hpte", (file, index), 1)
    with s.when(write):
        s.set("page", (file, index), HOST)


@GMEM.transition("host", "mm")
def host_read(s, file, index):
    """The host reads index `index` of the file through its mapping."""
    yield from host_access(s, file, index, False)


@GMEM.transition("host", "mm")
def host_write(s, file, index):
    """The host writes index `index` of the file through its mapping."""
    yield from host_access(s, file, index, True)


@GMEM.transition("guest", "kvm", discipline=_access_ok)
def guest_read(s, gfn, kind):
    """The guest loads from gfn (kind: KVM's, or forced shared / private)."""
    yield from guest_access(s, gfn, kind, False)


@GMEM.transition("guest", "kvm", discipline=_access_ok)
def guest_write(s, gfn, kind):
    """The guest stores to gfn."""
    yield from guest_access(s, gfn, kind, True)


@GMEM.transition("host", "kvm", discipline=_gfn_ok)
def pre_fault(s, gfn):
    """KVM_PRE_FAULT_MEMORY of one page: a read fault without running the guest, errnos only."""
    yield from vm_fd(s)
    yield s.require(s.Not(s.arm64()), EINVAL, "kvm_arch_vcpu_ioctl")
    private = s.And(s.has_private(), s.attr(gfn) == PRIVATE_ATTR)
    spurious = s.lkind(gfn) == s.If(private, PRIVATE_LEAF, SHARED_LEAF)
    with s.when(s.Not(spurious)):
        yield from fault_in(s, gfn, private, False)


@GMEM.transition("host", "guest_memfd", discipline=_not_vmfd)
def close_file(s, file):
    """close() of the file's fd: released at once unless a VMA maps the file."""
    yield s.require(s.fd(file) == 1, EBADF, "close_fd")
    s.set("fd", file, 0)
    with s.when(s.vmas(file) == 0):
        release(s, file)


@GMEM.transition("host", "kvm")
def close_vm(s):
    """close() of the VM fd: the VM is destroyed once its last guest_memfd is released."""
    yield s.require(s.vm() == OPEN, EBADF, "close_fd")
    s.set("vm", None, CLOSED)
    with s.when(s.forall_file(lambda f: s.released(f))):
        destroy(s)


GUEST_ACCESSES = ("guest_read", "guest_write")
HOST_ACCESSES = ("host_read", "host_write")
