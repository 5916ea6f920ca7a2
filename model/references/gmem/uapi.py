"""The user ABI: include/uapi/linux/kvm.h, linux/falloc.h, asm-generic/mman-common.h.

Values are the kernel's except KVM_ARM64_VM (see below). Results follow the
ioctl convention: 0, an fd or a value, or -errno; a host access that the
kernel would answer with a signal returns a Signal instead.
"""

import errno
from typing import NamedTuple

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
U16 = (1 << 16) - 1
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1

# KVM_CREATE_VM types (arch/x86/include/uapi/asm/kvm.h).
KVM_X86_DEFAULT_VM = 0
KVM_X86_SW_PROTECTED_VM = 1
KVM_X86_SEV_VM = 2
KVM_X86_SEV_ES_VM = 3
KVM_X86_SNP_VM = 4
KVM_X86_TDX_VM = 5
# Model-only value: arm64 creates VMs with type 0 plus KVM_VM_TYPE_ARM_IPA_SIZE(n) in bits
# 7:0, which would collide with KVM_X86_DEFAULT_VM in a model holding both architectures.
KVM_ARM64_VM = 1 << 16

# struct kvm_create_guest_memfd.flags
GUEST_MEMFD_FLAG_MMAP = 1 << 0
GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1

# struct kvm_userspace_memory_region2.flags
KVM_MEM_LOG_DIRTY_PAGES = 1 << 0
KVM_MEM_READONLY = 1 << 1
KVM_MEM_GUEST_MEMFD = 1 << 2

KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3

KVM_EXIT_MMIO = 6
KVM_EXIT_MEMORY_FAULT = 39
KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3

# fallocate(2) modes (include/uapi/linux/falloc.h).
FALLOC_FL_ALLOCATE_RANGE = 0x00
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_NO_HIDE_STALE = 0x04
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
FALLOC_FL_WRITE_ZEROES = 0x80
FALLOC_FL_MODE_MASK = (FALLOC_FL_ALLOCATE_RANGE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE
                       | FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE
                       | FALLOC_FL_WRITE_ZEROES)

# mmap(2) flags.
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0f

# include/linux/kvm_host.h: SHRT_MAX slots, minus the x86 internal ones (arch_user_mem_slots).
KVM_MEM_SLOTS_NUM = 0x7fff
KVM_X86_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM - 3
KVM_ARM64_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM
KVM_MEM_MAX_NR_PAGES = (1 << 31) - 1

# Python's errno lacks EHWPOISON on some builds; 133 is its Linux value.
EHWPOISON = getattr(errno, "EHWPOISON", 133)


class GmemUsageError(ValueError):
    """A call the kernel cannot even receive (unknown VM type, an argument that is no integer)."""


class Signal(NamedTuple):
    """A host access the kernel answers with a signal (VM_FAULT_SIGBUS, no VMA)."""
    name: str


class KvmExit(NamedTuple):
    """What KVM_RUN reports: struct kvm_run exit_reason and the memory_fault / mmio fields.

    A memory fault exit has errno EFAULT (or the kvm_gmem_get_pfn() error) and KVM_RUN
    returns -1; an MMIO exit has errno 0, `gpa` the exact address and `size` the access width.
    """
    reason: int
    flags: int
    gpa: int
    size: int
    errno: int


def u64(value):
    """Store an integer into a __u64 field, as C does."""
    return value & U64


def s64(value):
    """Read a __u64 as loff_t."""
    value &= U64
    return value - (1 << 64) if value >> 63 else value
