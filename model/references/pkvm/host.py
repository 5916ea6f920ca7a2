"""The host kernel's own record of what it shared with the hypervisor, shaped like
arch/arm64/kvm/mmu.c (`kvm_share_hyp()`, `kvm_unshare_hyp()`): `hyp_shared_pfns`, an rb-tree
of {pfn, count} (a dict here) beside the hypercalls, so that several kernel structures can
share one page and the hypercall runs only for the first share and the last unshare.

Upstream (mmu.c at commit 1c53a1ae of the index) inserts the record before the
__pkvm_host_share_hyp hypercall and keeps it when the hypercall fails, and erases it before
__pkvm_host_unshare_hyp and keeps it erased when that fails; this follows the later tree that
makes the hypercall first and reverts on failure (docs/contract.md, "The host's records").
"""

from errno import ENOENT

from .mem_protect import pkvm_host_share_hyp, pkvm_host_unshare_hyp


def share_pfn_hyp(pkvm, pfn):
    """A pfn shared already is only counted; a first share is recorded once the hypercall
    succeeds."""
    count = pkvm.hyp_shared_pfns.get(pfn)
    if count:
        pkvm.hyp_shared_pfns[pfn] = count + 1
        return 0

    ret = pkvm_host_share_hyp(pkvm, pfn)
    if ret:
        return ret

    pkvm.hyp_shared_pfns[pfn] = 1
    return 0


def unshare_pfn_hyp(pkvm, pfn):
    """No record: -ENOENT (the kernel WARNs); a pfn shared for several structures is only
    uncounted; the last unshare's hypercall drops the record when it succeeds, and a failing
    one leaves the counter as it was."""
    count = pkvm.hyp_shared_pfns.get(pfn)
    if not count:
        return -ENOENT
    if count > 1:
        pkvm.hyp_shared_pfns[pfn] = count - 1
        return 0

    ret = pkvm_host_unshare_hyp(pkvm, pfn)
    if ret:
        return ret

    del pkvm.hyp_shared_pfns[pfn]
    return 0
