"""The call API of the reference (one VM, ioctl-shaped) and its read-only introspection.

Every call returns what the syscall would: 0, an fd, an address or a value, or -errno; a
host access may return a Signal, a guest access a KvmExit. Arguments are cut to the width
of their C field (a negative fd becomes a large __u32), as the ioctl structs do.
"""

from errno import EBADF
from typing import NamedTuple, Optional, Tuple

from . import kvm_main
from .guest_memfd import kvm_gmem_get_invalidate_filter, kvm_gmem_get_supported_flags
from .kvm_host import KVM_MEMSLOT_GMEM_ONLY, KvmVcpu, kvm_mem_is_private
from .mm import Process, fput, handle_mm_access, ksys_mmap, vfs_fallocate, vm_munmap
from .mmu import RET_PF_EMULATE, kvm_handle_guest_abort, kvm_mmu_page_fault
from .uapi import (
    KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO, PAGE_SHIFT, U32, U64, GmemUsageError, KvmExit, s64,
)

USER_FLAGS = U32 & ~0xffff0000
MMIO_ACCESS_SIZE = 8


class FileView(NamedTuple):
    size: int
    flags: int
    refs: int
    released: bool
    invalidate_filter: int


class PageView(NamedTuple):
    """state: "absent", "allocated" (not uptodate, content undefined) or "uptodate"."""
    state: str
    content: Optional[int]


class BindingView(NamedTuple):
    """File indices [start, end) bound to the slot (as_id, id)."""
    start: int
    end: int
    slot: Tuple[int, int]


class SlotView(NamedTuple):
    base_gfn: int
    npages: int
    userspace_addr: int
    flags: int
    file: Optional[int]
    pgoff: int
    gmem_only: bool


class LeafView(NamedTuple):
    """kind "private" or "shared"; backing ("gmem", ino, index) or ("user", user page)."""
    kind: str
    writable: bool
    backing: tuple


def _int(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise GmemUsageError(f"{name} must be an integer, not {value!r}")
    return value


class Kvm:
    """One VM of type `vm_type` in a host process (a new one unless `process` is given, so
    that several VMs can share an fd table, as two VMs of one VMM do)."""

    def __init__(self, vm_type, process=None):
        self.process = process if process is not None else Process()
        self.kvm_fd = kvm_main.kvm_dev_open(self.process)
        self.kvm, self.vm_fd = kvm_main.kvm_dev_ioctl_create_vm(self.process, _int("vm_type", vm_type))
        self.vcpu = KvmVcpu(self.kvm)
        self.pre_fault_range = None

    def _vm_fd_ok(self):
        file = self.process.fdtable.get(self.vm_fd)
        return file is not None and file.private_data is self.kvm

    # -- VM ioctls ----------------------------------------------------------------

    def create_guest_memfd(self, size, flags=0):
        """KVM_CREATE_GUEST_MEMFD: the new fd or -errno."""
        if not self._vm_fd_ok():
            return -EBADF
        return kvm_main.kvm_vm_ioctl_create_guest_memfd(self.kvm, _int("size", size),
                                                        _int("flags", flags))

    def set_user_memory_region2(self, slot, flags, guest_phys_addr, memory_size, userspace_addr,
                                guest_memfd=0, guest_memfd_offset=0):
        """KVM_SET_USER_MEMORY_REGION2: create, move, change flags or (size 0) delete."""
        if not self._vm_fd_ok():
            return -EBADF
        mem = kvm_main.KvmUserspaceMemoryRegion2(
            _int("slot", slot) & U32, _int("flags", flags) & U32,
            _int("guest_phys_addr", guest_phys_addr) & U64, _int("memory_size", memory_size) & U64,
            _int("userspace_addr", userspace_addr) & U64,
            _int("guest_memfd_offset", guest_memfd_offset) & U64,
            _int("guest_memfd", guest_memfd) & U32)
        return kvm_main.kvm_vm_ioctl_set_memory_region(self.kvm, mem)

    def set_memory_attributes(self, address, size, attributes, flags=0):
        """KVM_SET_MEMORY_ATTRIBUTES."""
        if not self._vm_fd_ok():
            return -EBADF
        return kvm_main.kvm_vm_ioctl_set_mem_attributes(
            self.kvm, _int("address", address) & U64, _int("size", size) & U64,
            _int("attributes", attributes) & U64, _int("flags", flags) & U64)

    def supported_guest_memfd_flags(self):
        """KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD_FLAGS) on the VM."""
        return kvm_gmem_get_supported_flags(self.kvm)

    def supported_memory_attributes(self):
        """KVM_CHECK_EXTENSION(KVM_CAP_MEMORY_ATTRIBUTES) on the VM."""
        return kvm_main.kvm_supported_mem_attributes(self.kvm)

    # -- vCPU ioctls (the one vCPU lives as long as the VM fd) ------------------------------

    def pre_fault_memory(self, gpa, size, flags=0):
        """KVM_PRE_FAULT_MEMORY: 0 or -errno; the written-back (gpa, size) is left in
        `pre_fault_range`."""
        if not self._vm_fd_ok():
            return -EBADF
        r, gpa, size = kvm_main.kvm_vcpu_pre_fault_memory(
            self.vcpu, _int("gpa", gpa) & U64, _int("size", size) & U64, _int("flags", flags) & U64)
        self.pre_fault_range = (gpa, size)
        return r

    def guest_read(self, gpa, private=None):
        """A guest load at gpa (KVM_RUN until it completes): the value, or a KvmExit."""
        return self._guest_access(gpa, False, None, private)

    def guest_write(self, gpa, value, private=None):
        """A guest store: 0, or a KvmExit."""
        return self._guest_access(gpa, True, _int("value", value), private)

    def _guest_access(self, gpa, write, value, private):
        """An access through a present leaf (writable, for a store) completes without a fault:
        these VM types have no private bit in hardware. A fault's kind is KVM's (x86: the gfn's
        attribute; arm64: always shared) with `private` None; forced, it is the kind of a fault
        that raced an attribute change (taken before it)."""
        if not self._vm_fd_ok():
            return -EBADF
        gpa = _int("gpa", gpa) & U64
        arch = self.kvm.arch
        if private and not arch.has_private_mem:
            raise GmemUsageError(f"a {arch.name} VM of type {self.kvm.vm_type} has no private accesses")
        present = self.kvm.stage2.get(gpa >> PAGE_SHIFT)
        if present is not None and (present.writable or not write):
            r = 0  # the TDP / stage-2 walk succeeds: no fault
        elif arch.name == "x86":
            is_private = kvm_mem_is_private(self.kvm, gpa >> PAGE_SHIFT) if private is None else private
            r = kvm_mmu_page_fault(self.vcpu, gpa, write, bool(is_private))
        else:
            r = kvm_handle_guest_abort(self.vcpu, gpa, write)
        if r == RET_PF_EMULATE:
            return KvmExit(KVM_EXIT_MMIO, 0, gpa, MMIO_ACCESS_SIZE, 0)
        if r < 0:
            flags, exit_gpa, size = self.vcpu.run
            return KvmExit(KVM_EXIT_MEMORY_FAULT, flags, exit_gpa, size, -r)
        spte = self.kvm.stage2[gpa >> PAGE_SHIFT]
        if spte.folio is not None:
            if write:
                spte.folio.content = value
            return 0 if write else spte.folio.content
        if write:
            self.process.anon[spte.upage] = value
            return 0
        return self.process.anon.get(spte.upage, 0)

    # -- host syscalls -------------------------------------------------------------------

    def close(self, fd):
        return self.process.close_fd(_int("fd", fd))

    def fallocate(self, fd, mode, offset, length):
        file = self.process.fget(_int("fd", fd))
        if file is None:
            return -EBADF
        r = vfs_fallocate(file, _int("mode", mode) & U32, s64(_int("offset", offset)),
                          s64(_int("length", length)))
        fput(file)
        return r

    def mmap(self, fd, length, flags):
        """mmap(NULL, length, PROT_READ|PROT_WRITE, flags, fd, 0): the address or -errno."""
        return ksys_mmap(self.process, _int("fd", fd), _int("length", length), _int("flags", flags))

    def munmap(self, addr):
        return vm_munmap(self.process, _int("addr", addr))

    def host_read(self, fd, offset):
        """A host load through a mapping of fd's file at that file offset."""
        return handle_mm_access(self.process, _int("fd", fd), _int("offset", offset), False, None)

    def host_write(self, fd, offset, value):
        return handle_mm_access(self.process, _int("fd", fd), _int("offset", offset), True,
                                _int("value", value))

    def user_read(self, addr):
        """A host load from anonymous memory (what a non-gmem slot's userspace_addr names)."""
        return self.process.anon.get(_int("addr", addr) >> PAGE_SHIFT, 0)

    def user_write(self, addr, value):
        self.process.anon[_int("addr", addr) >> PAGE_SHIFT] = _int("value", value)
        return 0

    # -- introspection ------------------------------------------------------------------

    @property
    def destroyed(self):
        return self.kvm.destroyed

    def vm_refs(self):
        return self.kvm.users_count

    def invalidate_seq(self):
        return self.kvm.mmu_invalidate_seq

    def _inodes(self):
        return {ino: inode for ino, inode in self.process.inodes.items() if inode.kvm is self.kvm}

    def file_of_fd(self, fd):
        """The inode number of the guest_memfd an fd names, or None."""
        file = self.process.fdtable.get(fd)
        inode = getattr(file, "private_data", None)
        return inode.i_ino if inode in self._inodes().values() else None

    def files(self):
        return {ino: FileView(inode.i_size, inode.flags, inode.file.f_count, inode.released,
                              kvm_gmem_get_invalidate_filter(inode))
                for ino, inode in self._inodes().items()}

    def page(self, ino, index):
        folio = self._inodes()[ino].i_pages.get(index)
        if folio is None:
            return PageView("absent", None)
        return PageView("uptodate", folio.content) if folio.uptodate else PageView("allocated", None)

    def pages(self, ino):
        """Every index that is not absent."""
        return {index: self.page(ino, index) for index in sorted(self._inodes()[ino].i_pages)}

    def bindings(self, ino):
        return tuple(BindingView(lo, hi, (slot.as_id, slot.id))
                     for lo, hi, slot in self._inodes()[ino].bound(0, U64))

    def slots(self):
        return {(slot.as_id, slot.id): SlotView(
                    slot.base_gfn, slot.npages, slot.userspace_addr, slot.flags & USER_FLAGS,
                    slot.gmem_file.private_data.i_ino if slot.gmem_file else None,
                    slot.gmem_pgoff, bool(slot.flags & KVM_MEMSLOT_GMEM_ONLY))
                for slots in self.kvm.memslots for slot in slots.values()}

    def attributes(self):
        return dict(sorted(self.kvm.mem_attr_array.items()))

    def leaves(self):
        return {gfn: LeafView("private" if spte.private else "shared", spte.writable,
                              ("gmem", spte.ino, spte.index) if spte.folio is not None
                              else ("user", spte.upage))
                for gfn, spte in sorted(self.kvm.stage2.items())}

    def host_mappings(self):
        """ino -> the indices faulted in through any of its VMAs."""
        out = {}
        for vma in self.process.vmas.values():
            inode = vma.vm_file.private_data
            if inode.kvm is self.kvm:
                out[inode.i_ino] = out.get(inode.i_ino, frozenset()) | frozenset(vma.ptes)
        return out

    def user_memory(self):
        return dict(sorted(self.process.anon.items()))

    def snapshot(self):
        """Everything observable, as plain comparable data."""
        files = self.files()
        return (self.vm_refs(), self.destroyed, files,
                {ino: self.pages(ino) for ino in files}, {ino: self.bindings(ino) for ino in files},
                self.slots(), self.attributes(), self.leaves(), self.host_mappings(),
                self.user_memory(), tuple(sorted(self.process.fdtable)))
