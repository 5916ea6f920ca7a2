"""The hyp VM table: struct pkvm_hyp_vm and its lifecycle (arch/arm64/kvm/hyp/nvhe/pkvm.c)."""

from enum import IntEnum

from .memcache import KvmHypMemcache
from .pgtable import KvmPgtable


class VmState(IntEnum):
    """RUNNING until __pkvm_start_teardown_vm, DYING until __pkvm_finalize_teardown_vm."""
    RUNNING = 0
    DYING = 1
    TORN_DOWN = 2


class PkvmHypVm:
    """struct pkvm_hyp_vm: handle, kind, lifecycle, guest stage-2, its vCPUs and refcount.

    `loaded[i]` is vCPU i's `loaded_hyp_vcpu` (set while a physical CPU has it loaded);
    `refcount` is the VM's refcount, one per loaded vCPU (pkvm_load_hyp_vcpu() increments it,
    pkvm_put_hyp_vcpu() drops it); `memcache` the pages its stage-2 maps take."""

    __slots__ = ("handle", "is_protected", "state", "pgt", "loaded", "refcount", "memcache")

    def __init__(self, handle, is_protected, pool, nr_vcpus=1):
        self.handle = handle
        self.is_protected = is_protected
        self.state = VmState.RUNNING
        self.pgt = KvmPgtable(pool)
        self.loaded = [False] * nr_vcpus
        self.refcount = 0
        self.memcache = KvmHypMemcache()

    def clone(self, pool):
        new = PkvmHypVm.__new__(PkvmHypVm)
        new.handle = self.handle
        new.is_protected = self.is_protected
        new.state = self.state
        new.pgt = self.pgt.clone(pool)
        new.loaded = self.loaded[:]
        new.refcount = self.refcount
        new.memcache = self.memcache.clone()
        return new


ALIVE = (VmState.RUNNING, VmState.DYING)


def get_pkvm_hyp_vm(pkvm, handle, states):
    """The VM a handle names if its lifecycle state is one of `states`, else None."""
    if not isinstance(handle, int) or not 0 <= handle < len(pkvm.vm_table):
        return None
    vm = pkvm.vm_table[handle]
    return vm if vm.state in states else None


def pkvm_get_loaded_hyp_vcpu(pkvm, handle):
    """The VM of the vCPU loaded on the calling CPU, or None when none is (the handlers of the
    guest-map hypercalls then return -EINVAL, and a guest runs only on a loaded vCPU). CPUs are
    not modelled: the call comes from a CPU holding one of `handle`'s vCPUs, if one is loaded."""
    vm = get_pkvm_hyp_vm(pkvm, handle, (VmState.RUNNING,))
    return vm if vm is not None and any(vm.loaded) else None
