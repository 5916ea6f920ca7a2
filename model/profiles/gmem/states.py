"""The gmem profile's vocabulary: VM types, page and leaf encodings, the outcome codes of
KVM_RUN exits and host signals, the state and the configuration.

One page = one gfn = one file index (4 KiB). Every value is a small integer so that a state is
a NamedTuple of tuples (hashable, cheap to memoise) and reads the same as a z3 integer.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from functools import lru_cache
from errno import EFAULT, EIO, ENOMEM
from typing import NamedTuple

from model import transitions as _transitions
from model.transitions import EHWPOISON

# -- VM types (sheet 1.1; reference kvm_arch_init_vm) ------------------------------------------
X86_DEFAULT, SW_PROTECTED, ARM64 = 0, 1, 2
VM_TYPES = {"x86": X86_DEFAULT, "sw_protected": SW_PROTECTED, "arm64": ARM64}
VM_NAMES = {v: k for k, v in VM_TYPES.items()}

# guest_memfd creation flags (uapi)
MMAP, INIT_SHARED = 1, 2
FLAG_NAMES = {0: "0", MMAP: "MMAP", INIT_SHARED: "INIT_SHARED", MMAP | INIT_SHARED: "MMAP|INIT_SHARED"}

# VM lifecycle: the VM fd open; the fd closed (the VM lives on while a guest_memfd does); freed.
OPEN, CLOSED, DESTROYED = 0, 1, 2
VM_STATE_NAMES = {OPEN: "running", CLOSED: "fd_closed", DESTROYED: "destroyed"}

# Backing page of a file index (sheet 1.3): absent, allocated (not uptodate: never observable),
# uptodate with content: zero, or last written by the guest or by the host.
ABSENT, ALLOCATED, ZERO, GUEST, HOST = 0, 1, 2, 3, 4
PAGE_NAMES = {ABSENT: "absent", ALLOCATED: "allocated", ZERO: "zero", GUEST: "guest", HOST: "host"}
# The values the conformance adapter writes (the reference keeps one integer per page).
GUEST_VALUE, HOST_VALUE = 1, 2

# Memory attributes per gfn (sheet 1.5)
SHARED_ATTR, PRIVATE_ATTR = 0, 1

# Stage-2 leaf kind per gfn (sheet 1.6); its backing is lfile (0: the userspace page behind the
# slot, f + 1: guest_memfd file f) and lidx (the file index).
NO_LEAF, SHARED_LEAF, PRIVATE_LEAF = 0, 1, 2
LEAF_NAMES = {NO_LEAF: "none", SHARED_LEAF: "shared", PRIVATE_LEAF: "private"}

# The kind a guest access faults with: derived by KVM, or forced (a fault racing a conversion).
DERIVED, FORCE_SHARED, FORCE_PRIVATE = 0, 1, 2

# The file argument naming the VM's own fd (not a guest_memfd): bind -> EINVAL, fallocate and
# mmap -> ENODEV. Far above any file index (the VMM makes fewer guest_memfds than this).
VMFD = 1 << 31
# loff_t: a size of 2^51 pages or more is 2^63 bytes or more, negative as loff_t.
LOFF_PAGES = 1 << 51
# The host maps this many pages of a file per mmap() (the adapter's choice, kept by the model:
# a host access past it finds no VMA).
MMAP_PAGES = 64

# -- outcomes that are not errnos --------------------------------------------------------------
# KVM_RUN ending in KVM_EXIT_MEMORY_FAULT {flags, gpa = gfn << 12, size = 4096} with KVM_RUN's
# errno; KVM_EXIT_MMIO; a host access answered with a signal. Each is a distinct negative code,
# so a failing call (which changes nothing) names its exact outcome; gpa and size are implied by
# the call (the adapter checks them). The codes are registered as names the machinery knows.
EXIT_BASE = 4096
EXIT_MMIO = -(EXIT_BASE + 1000)
SIGBUS = -(EXIT_BASE + 1001)
SIGSEGV = -(EXIT_BASE + 1002)
EXIT_ERRNOS = (EFAULT, EIO, ENOMEM, EHWPOISON)


def memfault(private, errno: int):
    """The code of a memory fault exit: PRIVATE flag iff the access was private (a bool or z3
    Bool through `If`), KVM_RUN -1 with errno."""
    return -(EXIT_BASE + 2 * errno) - private


def exit_errno(private, errno: int):
    """The same code as a positive "errno" for `s.require` (which negates it)."""
    return EXIT_BASE + 2 * errno + private


def memfault_code(private: bool, errno: int) -> int:
    return -(EXIT_BASE + 2 * errno) - (1 if private else 0)


def exit_codes() -> dict[int, str]:
    out = {EXIT_MMIO: "EXIT_MMIO", SIGBUS: "SIGBUS", SIGSEGV: "SIGSEGV"}
    for errno in EXIT_ERRNOS:
        name = _transitions.ERRNO_NAMES[-errno]
        out[memfault_code(False, errno)] = f"MEMFAULT_{name}"
        out[memfault_code(True, errno)] = f"MEMFAULT_PRIVATE_{name}"
    return out


EXIT_CODES = exit_codes()
MEMFAULT_CODES = frozenset(c for c in EXIT_CODES if c not in (EXIT_MMIO, SIGBUS, SIGSEGV))
# Exits and signals are outcomes of a call like errnos: named once, for reports, scenario files
# and the explorer's check that every failing call returns a known outcome.
_transitions.name_outcomes(EXIT_CODES)


# -- the state ----------------------------------------------------------------------------------

class State(NamedTuple):
    vm: int  # OPEN, CLOSED, DESTROYED
    nfiles: int  # guest_memfds created so far (file f exists iff f < nfiles)
    # per file
    fsize: tuple  # pages
    fflags: tuple  # MMAP | INIT_SHARED
    fd: tuple  # 1 while its fd is open
    vmas: tuple  # host VMAs mapping it (each holds a file reference)
    # per file, per index
    page: tuple  # ABSENT ... HOST
    bind: tuple  # slot + 1 bound at the index, 0 none
    hpte: tuple  # 1 when a host PTE maps the index
    # per slot (address space 0, id = slot)
    sn: tuple  # npages, 0 = no slot
    sbase: tuple  # base gfn
    sgmem: tuple  # KVM_MEM_GUEST_MEMFD
    sfile: tuple  # f + 1 (slot->gmem.file), 0 = none (NULL after release)
    spgoff: tuple
    sonly: tuple  # KVM_MEMSLOT_GMEM_ONLY
    # per gfn
    attr: tuple  # SHARED_ATTR / PRIVATE_ATTR
    gslot: tuple  # slot + 1 covering the gfn, 0 none (a function of the slots, kept for the prover)
    lkind: tuple  # NO_LEAF / SHARED_LEAF / PRIVATE_LEAF
    lfile: tuple  # 0: userspace page, f + 1: guest_memfd file f
    lidx: tuple  # file index of a guest_memfd leaf


SCALARS = ("vm", "nfiles")
FILE_FIELDS = ("fsize", "fflags", "fd", "vmas")
INDEX_FIELDS = ("page", "bind", "hpte")
SLOT_FIELDS = ("sn", "sbase", "sgmem", "sfile", "spgoff", "sonly")
GFN_FIELDS = ("attr", "gslot", "lkind", "lfile", "lidx")
FIELD_KIND = {**{f: "scalar" for f in SCALARS}, **{f: "file" for f in FILE_FIELDS},
              **{f: "index" for f in INDEX_FIELDS}, **{f: "slot" for f in SLOT_FIELDS},
              **{f: "gfn" for f in GFN_FIELDS}}
assert tuple(FIELD_KIND) == State._fields


@dataclass(frozen=True)
class Config:
    """One VM of `vm` type with at most `files` guest_memfds of at most `pages` pages, `slots`
    memslot ids and `gfns` guest frames; the rest are the argument domains an exploration
    tries."""

    vm: str = "sw_protected"
    files: int = 1
    slots: int = 2
    gfns: int = 2
    pages: int = 2
    sizes: tuple = (0, 2)  # create_file sizes tried (0: EINVAL)
    flags: tuple = (0, MMAP, INIT_SHARED, MMAP | INIT_SHARED, 4)
    spans: tuple = (1, 2)  # npages of slots and attribute ranges
    counts: tuple = (0, 1, 2)  # npages of fallocate
    max_vmas: int = 1  # exploration bound on VMAs per file
    discipline: bool = True

    @property
    def vm_type(self) -> int:
        return VM_TYPES[self.vm]

    def validate(self) -> None:
        if self.vm not in VM_TYPES:
            raise ValueError(f"unknown VM type {self.vm!r}; one of: {', '.join(VM_TYPES)}")
        for name, low, high in (("files", 1, 8), ("slots", 1, 8), ("gfns", 1, 64),
                                ("pages", 1, 64), ("max_vmas", 0, 8)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be {low}..{high}, got {value!r}")
        if any(not isinstance(n, int) or n < 0 for n in (*self.sizes, *self.spans, *self.counts)):
            raise ValueError("sizes, spans and counts must be natural numbers")
        if any(n > self.pages and n < LOFF_PAGES for n in self.sizes):
            raise ValueError(f"a file size in {self.sizes} exceeds {self.pages} pages per file")


class Layout(NamedTuple):
    """The fields of a state: the profile's own, then those extensions add (`StateField`s,
    `ext.field`), each with its kind of key and initial value, and the tuple type holding them."""

    names: tuple
    kind: dict
    initial: dict
    extra: tuple  # the extensions' StateFields
    type: type


@lru_cache(maxsize=None)
def layout(extra: tuple = ()) -> Layout:
    kind = {**FIELD_KIND, **{f.name: f.kind for f in extra}}
    names = State._fields + tuple(f.name for f in extra)
    return Layout(names, kind, {**{f: 0 for f in State._fields}, **{f.name: f.initial for f in extra}},
                  extra, namedtuple("State", names) if extra else State)


BASE = layout()


def initial_state(config: Config, fields: Layout = BASE) -> State:
    f, p, s, g = config.files, config.pages, config.slots, config.gfns
    shape = {"scalar": lambda v: v, "file": lambda v: (v,) * f, "index": lambda v: ((v,) * p,) * f,
             "slot": lambda v: (v,) * s, "gfn": lambda v: (v,) * g}
    return fields.type(*[shape[fields.kind[n]](fields.initial[n]) for n in fields.names])
