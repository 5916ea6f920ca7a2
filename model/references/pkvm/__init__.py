"""Reference pKVM hypervisor: page-table-level code shaped like mem_protect.c.

Imports nothing from the rest of `model/`; docs/reference.md explains it.
"""

from .hypervisor import GuestLeaf, Hypervisor, PageView
from .memory import (
    BLOCK_PAGES, IPA_PAGES, PA_PAGES, Contents, HypPage, PkvmPageState, Region,
)
from .pte import KVM_PGTABLE_PROT_R as PROT_R
from .pte import KVM_PGTABLE_PROT_RWX as PROT_RWX
from .pte import KVM_PGTABLE_PROT_W as PROT_W
from .pte import KVM_PGTABLE_PROT_X as PROT_X
from .vm import VmState

__all__ = [
    "BLOCK_PAGES", "IPA_PAGES", "PA_PAGES", "PROT_R", "PROT_RWX", "PROT_W", "PROT_X",
    "Contents", "GuestLeaf", "HypPage", "Hypervisor", "PageView", "PkvmPageState", "Region",
    "VmState",
]
