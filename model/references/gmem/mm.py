"""The host process: its fd table (fs/file.c), its mm (mm/mmap.c, mm/memory.c), fallocate.

Files are reference counted like struct file: each fd and each VMA holds one; the last
fput() calls f_op.release. Anonymous memory, the host pages behind a memslot's
userspace_addr, is a store of one value per user page (0 until written).
"""

from errno import EBADF, EFBIG, EINVAL, ENODEV, EOPNOTSUPP

from .uapi import (
    FALLOC_FL_ALLOCATE_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE,
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_MODE_MASK, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_UNSHARE_RANGE,
    FALLOC_FL_WRITE_ZEROES, FALLOC_FL_ZERO_RANGE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE,
    MAP_TYPE, PAGE_SHIFT, PAGE_SIZE, Signal,
)

LLONG_MAX = (1 << 63) - 1
MAX_LFS_FILESIZE = LLONG_MAX
# Where mmap() places new VMAs (top-down allocation is irrelevant to the model).
MMAP_BASE = 0x7f0000000000


class FileOperations:
    """struct file_operations: only the hooks the model needs; None where the kernel has none."""

    __slots__ = ("name", "release", "fallocate", "mmap")

    def __init__(self, name, release=None, fallocate=None, mmap=None):
        self.name = name
        self.release = release
        self.fallocate = fallocate
        self.mmap = mmap


class File:
    """struct file: operations, private data, reference count, and whether the inode is S_IFREG."""

    __slots__ = ("f_op", "private_data", "f_count", "regular")

    def __init__(self, f_op, private_data, regular):
        self.f_op = f_op
        self.private_data = private_data
        self.f_count = 1
        self.regular = regular


class Vma:
    """struct vm_area_struct of a file mapping; `ptes` maps file index -> folio (the PTEs)."""

    __slots__ = ("vm_start", "vm_end", "vm_file", "vm_ops", "ptes")

    def __init__(self, vm_start, vm_end, vm_file):
        self.vm_start = vm_start
        self.vm_end = vm_end
        self.vm_file = vm_file
        self.vm_ops = None
        self.ptes = {}


class Process:
    """One host process: fd table, file VMAs, anonymous memory, and a bound on folios.

    `max_folios` bounds the folios of all guest_memfd page caches together, so that a huge
    fallocate fails with ENOMEM part-way, as the kernel's would, instead of exhausting Python.
    """

    def __init__(self, max_folios=1 << 16):
        self.fdtable = {}
        self.vmas = {}
        self.anon = {}
        self.inodes = {}
        self.next_ino = 1
        self.next_mmap = MMAP_BASE
        self.max_folios = max_folios
        self.nr_folios = 0

    # -- fd table ------------------------------------------------------------

    def get_unused_fd(self):
        """Lowest free fd above stdin/stdout/stderr."""
        fd = 3
        while fd in self.fdtable:
            fd += 1
        return fd

    def fd_install(self, fd, file):
        self.fdtable[fd] = file

    def fget(self, fd):
        """The open file behind fd with a new reference, or None."""
        file = self.fdtable.get(fd)
        if file is not None:
            file.f_count += 1
        return file

    def close_fd(self, fd):
        """close(2): drop the fd's reference."""
        file = self.fdtable.pop(fd, None)
        if file is None:
            return -EBADF
        fput(file)
        return 0

    # -- mm ------------------------------------------------------------------

    def find_file_vma(self, file, offset):
        """The lowest VMA mapping `file` whose range covers file offset `offset`, or None."""
        for start in sorted(self.vmas):
            vma = self.vmas[start]
            if vma.vm_file is file and 0 <= offset < vma.vm_end - vma.vm_start:
                return vma
        return None

    def unmap_mapping_range(self, inode, start, end):
        """Remove every PTE of `inode`'s indices [start, end) from every VMA of the file."""
        for vma in self.vmas.values():
            if vma.vm_file.private_data is inode:
                for index in [i for i in vma.ptes if start <= i < end]:
                    del vma.ptes[index]


def fput(file):
    """Drop a reference; the last one releases the file."""
    file.f_count -= 1
    if file.f_count == 0 and file.f_op.release is not None:
        file.f_op.release(file)


def vfs_fallocate(file, mode, offset, length):
    """fs/open.c vfs_fallocate(): generic checks in kernel order, then f_op->fallocate."""
    if offset < 0 or length <= 0:
        return -EINVAL
    if mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE):
        return -EOPNOTSUPP
    kind = mode & FALLOC_FL_MODE_MASK
    if kind == FALLOC_FL_PUNCH_HOLE:
        if not mode & FALLOC_FL_KEEP_SIZE:
            return -EOPNOTSUPP
    elif kind in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_WRITE_ZEROES):
        if mode & FALLOC_FL_KEEP_SIZE:
            return -EOPNOTSUPP
    elif kind not in (FALLOC_FL_ALLOCATE_RANGE, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE):
        return -EOPNOTSUPP
    if not file.regular:
        return -ENODEV
    if offset + length > MAX_LFS_FILESIZE:
        return -EFBIG
    if file.f_op.fallocate is None:
        return -EOPNOTSUPP
    return file.f_op.fallocate(file, mode, offset, length)


def ksys_mmap(process, fd, length, flags):
    """mmap(NULL, length, PROT_READ | PROT_WRITE, flags, fd, 0): the new address or -errno."""
    file = process.fget(fd)
    if file is None:
        return -EBADF
    r = do_mmap(process, file, length, flags)
    fput(file)
    return r


def do_mmap(process, file, length, flags):
    if length <= 0:
        return -EINVAL
    if flags & MAP_TYPE not in (MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE):
        return -EINVAL
    if file.f_op.mmap is None:
        return -ENODEV
    length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    vma = Vma(process.next_mmap, process.next_mmap + length, file)
    r = file.f_op.mmap(file, vma, flags)
    if r:
        return r
    file.f_count += 1
    process.vmas[vma.vm_start] = vma
    process.next_mmap = vma.vm_end + PAGE_SIZE
    return vma.vm_start


def vm_munmap(process, addr):
    """munmap() of the whole VMA starting at addr; nothing mapped there is not an error."""
    if addr & (PAGE_SIZE - 1):
        return -EINVAL
    vma = process.vmas.pop(addr, None)
    if vma is not None:
        vma.ptes.clear()
        fput(vma.vm_file)
    return 0


def handle_mm_access(process, fd, offset, write, value):
    """A load or store by the host through a mapping of fd's file at file offset `offset`.

    A present PTE completes at once; otherwise the VMA's fault handler runs
    (handle_mm_fault() -> vm_ops->fault) and either maps a folio or answers a signal.
    """
    file = process.fdtable.get(fd)
    if file is None:
        return -EBADF
    vma = process.find_file_vma(file, offset)
    if vma is None:
        return Signal("SIGSEGV")
    index = offset >> PAGE_SHIFT
    folio = vma.ptes.get(index)
    if folio is None:
        folio = vma.vm_ops.fault(vma, index)
        if isinstance(folio, Signal):
            return folio
        vma.ptes[index] = folio
    if write:
        folio.content = value
        return 0
    return folio.content
