"""VM lifecycle and teardown (arch/arm64/kvm/hyp/nvhe/pkvm.c), and the host's hole punch
(arch/arm64/kvm/pkvm.c): the paths by which the host takes guest memory back."""

from errno import EBUSY, EINVAL, ENOENT

from .memcache import reclaim_memcache, topup_hyp_memcache
from .mem_protect import (
    guest_leaf_phys, pkvm_host_force_reclaim_page_guest, pkvm_host_reclaim_page_guest,
)
from .pgtable import kvm_pgtable_destroy, kvm_pgtable_get_leaf
from .pte import PAGE_SHIFT, kvm_granule_size, kvm_pte_valid
from .vm import ALIVE, PkvmHypVm, VmState, get_pkvm_hyp_vm


def pkvm_init_vm(pkvm, is_protected, nr_vcpus=1):
    """Create a RUNNING VM with an empty stage-2 and `nr_vcpus` vCPUs, none loaded; handles
    count up from 0."""
    handle = len(pkvm.vm_table)
    pkvm.vm_table.append(PkvmHypVm(handle, bool(is_protected), pkvm.hyp_pool, nr_vcpus))
    return handle


def pkvm_load_hyp_vcpu(pkvm, handle):
    """Load the VM's first vCPU no CPU has loaded, taking a reference on the VM. The kernel
    returns NULL on every failure (handle___pkvm_vcpu_load() then returns with nothing
    loaded); here each failure has its errno: no VM -ENOENT, a dying VM -EINVAL, every vCPU
    already loaded -EBUSY (docs/contract.md)."""
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    if vm is None:
        return -ENOENT
    if vm.state == VmState.DYING:
        return -EINVAL
    for idx, loaded in enumerate(vm.loaded):
        if not loaded:
            break
    else:
        return -EBUSY

    vm.loaded[idx] = True
    vm.refcount += 1
    return 0


def pkvm_put_hyp_vcpu(pkvm, handle):
    """Put a loaded vCPU of the VM back, dropping its reference (the kernel puts the vCPU the
    calling CPU has loaded, and does nothing when it has none: -EINVAL here)."""
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    if vm is None:
        return -ENOENT
    for idx in reversed(range(len(vm.loaded))):
        if vm.loaded[idx]:
            break
    else:
        return -EINVAL

    vm.loaded[idx] = False
    vm.refcount -= 1
    return 0


def pkvm_host_topup_memcache(pkvm, handle):
    """The host puts a page in a running VM's memcache for its next stage-2 maps (without
    modelled memcaches the host's pages are just what each map takes: nothing to keep)."""
    vm = get_pkvm_hyp_vm(pkvm, handle, (VmState.RUNNING,))
    if vm is None:
        return -EINVAL
    if pkvm.memcaches:
        topup_hyp_memcache(pkvm.hyp_pool, vm.memcache)
    return 0


def get_pkvm_unref_hyp_vm_locked(pkvm, handle):
    """The VM a handle names if no vCPU holds a reference on it, else None."""
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    return None if vm is None or vm.refcount else vm


def pkvm_start_teardown_vm(pkvm, handle):
    """Mark an unreferenced VM dying; an unknown, referenced or dying one is -EINVAL."""
    vm = get_pkvm_unref_hyp_vm_locked(pkvm, handle)
    if vm is None or vm.state == VmState.DYING:
        return -EINVAL

    vm.state = VmState.DYING
    return 0


def pkvm_reclaim_dying_guest_page(pkvm, handle, gfn):
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    if vm is None:
        return -EINVAL
    if vm.state != VmState.DYING:
        return -EINVAL
    return pkvm_host_reclaim_page_guest(pkvm, vm, gfn)


def pkvm_finalize_teardown_vm(pkvm, handle):
    """Free the guest stage-2 and give the memcache's pages back. Pages the VM still holds are
    not reclaimed: they stay stranded. An unknown, referenced or not dying VM is -EINVAL."""
    vm = get_pkvm_unref_hyp_vm_locked(pkvm, handle)
    if vm is None or vm.state != VmState.DYING:
        return -EINVAL

    kvm_pgtable_destroy(vm.pgt)
    reclaim_memcache(pkvm.hyp_pool, vm.memcache)
    vm.state = VmState.TORN_DOWN
    return 0


def pkvm_hole_punch(pkvm, handle, gfn):
    """The host frees guest memory: force reclaim (protected) or unshare the whole leaf."""
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    if vm is None:
        return -EINVAL
    ipa = gfn << PAGE_SHIFT
    pte, level = kvm_pgtable_get_leaf(vm.pgt, ipa)
    if not kvm_pte_valid(pte):
        return -ENOENT
    if vm.is_protected:
        return pkvm_host_force_reclaim_page_guest(pkvm, guest_leaf_phys(pte, level, ipa) >> PAGE_SHIFT)
    granule = kvm_granule_size(level)
    # the host's unmap path (kvm_unmap_gfn_range): through its records when it keeps them
    return pkvm.host_unshare_guest((ipa & ~(granule - 1)) >> PAGE_SHIFT, granule >> PAGE_SHIFT,
                                   handle)
