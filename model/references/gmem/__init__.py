"""Reference KVM guest_memfd, memslots and memory attributes, shaped like the kernel's
virt/kvm/guest_memfd.c and kvm_main.c (Linux 7.1) and the x86/arm64 fault paths.

Imports nothing from the rest of `model/`; docs/gmem-reference.md explains it.
"""

from .kvm_host import KVM_FILTER_PRIVATE, KVM_FILTER_SHARED
from .mm import Process
from .uapi import *  # noqa: F401,F403  (the ABI constants are the API's vocabulary)
from .uapi import GmemUsageError, KvmExit, Signal
from .vm import BindingView, FileView, Kvm, LeafView, PageView, SlotView

__all__ = [name for name in dir() if not name.startswith("_")]
