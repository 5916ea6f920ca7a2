"""The hyp VM table: struct pkvm_hyp_vm and its lifecycle (arch/arm64/kvm/hyp/nvhe/pkvm.c)."""

from enum import IntEnum

from .pgtable import KvmPgtable


class VmState(IntEnum):
    """RUNNING until __pkvm_start_teardown_vm, DYING until __pkvm_finalize_teardown_vm."""
    RUNNING = 0
    DYING = 1
    TORN_DOWN = 2


class PkvmHypVm:
    """struct pkvm_hyp_vm: handle, kind, lifecycle and guest stage-2."""

    __slots__ = ("handle", "is_protected", "state", "pgt")

    def __init__(self, handle, is_protected, pool):
        self.handle = handle
        self.is_protected = is_protected
        self.state = VmState.RUNNING
        self.pgt = KvmPgtable(pool)

    def clone(self, pool):
        new = PkvmHypVm.__new__(PkvmHypVm)
        new.handle = self.handle
        new.is_protected = self.is_protected
        new.state = self.state
        new.pgt = self.pgt.clone(pool)
        return new


ALIVE = (VmState.RUNNING, VmState.DYING)


def get_pkvm_hyp_vm(pkvm, handle, states):
    """The VM a handle names if its lifecycle state is one of `states`, else None."""
    if not isinstance(handle, int) or not 0 <= handle < len(pkvm.vm_table):
        return None
    vm = pkvm.vm_table[handle]
    return vm if vm.state in states else None
