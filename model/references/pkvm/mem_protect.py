"""Page ownership transitions, shaped like arch/arm64/kvm/hyp/nvhe/mem_protect.c.

Every transition runs all its checks first (the host side, then the hyp or
guest side) and only then updates both sides, so a failing call changes
nothing. Checks and errnos follow docs/contract.md. `pkvm` is the machine
(a Hypervisor): the kernel's globals host_mmu, pkvm_pgtable, hyp_vmemmap.

The kernel's __pkvm_* entry points are pkvm_* here (Python would mangle
double-underscore names called from the Hypervisor class).
"""

import errno
from errno import E2BIG, EAGAIN, EBUSY, EFAULT, EINVAL, ENOENT, EPERM, ERANGE

from .memory import (
    BLOCK_PAGES, CONTENTS_HOST, CONTENTS_PUBLIC, CONTENTS_SECRET, CONTENTS_ZERO,
    IPA_PAGES, PA_PAGES, PkvmPageState, Region,
    get_host_state, get_hyp_state, host_share_guest_count, hyp_page_count,
    hyp_set_page_count, set_host_share_guest_count, set_host_state, set_hyp_state,
)
from .pgtable import (
    KVM_PTE_LEAF_ATTR_MASK, kvm_pgtable_get_leaf, kvm_pgtable_map,
    kvm_pgtable_stage2_annotate, kvm_pgtable_unmap, kvm_pgtable_walk_leaves,
)
from .pte import (
    KVM_GUEST_INVALID_PTE_TYPE_POISONED, KVM_HOST_INVALID_PTE_TYPE_DONATION,
    KVM_PGTABLE_LAST_LEVEL, KVM_PGTABLE_PROT_RWX, KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W,
    PAGE_HYP, PAGE_SHIFT, PAGE_SIZE, PKVM_ID_GUEST, PKVM_ID_HOST, PKVM_ID_HYP,
    guest_poison_annotation, host_stage2_decode_gfn_meta, host_stage2_decode_owner,
    host_stage2_donation_annotation, host_stage2_encode_gfn_meta, kvm_granule_size,
    kvm_invalid_pte_type, kvm_pte_to_phys, kvm_pte_valid, pkvm_getstate, pkvm_mkstate,
    stage2_set_prot_attr,
)
from .memcache import pkvm_refill_memcache, stage2_map_memcache
from .vm import ALIVE, get_pkvm_hyp_vm, pkvm_get_loaded_hyp_vcpu

OWNED = PkvmPageState.OWNED
SHARED_OWNED = PkvmPageState.SHARED_OWNED
SHARED_BORROWED = PkvmPageState.SHARED_BORROWED
NOPAGE = PkvmPageState.NOPAGE
POISON = PkvmPageState.POISON

PKVM_HOST_MEM_PROT = KVM_PGTABLE_PROT_RWX

# Python's errno module lacks EHWPOISON on some builds; 133 is its Linux value.
EHWPOISON = getattr(errno, "EHWPOISON", 133)


# -- ranges ------------------------------------------------------------------

U64_MAX = (1 << 64) - 1  # hypercall arguments are u64 registers


def pfn_range_is_valid(pfn, nr_pages):
    """The range lies in the PA range, in u64 arithmetic that cannot wrap; nr 0 passes."""
    limit = PA_PAGES
    return pfn < limit and limit - pfn >= nr_pages


def check_range_allowed_memory(pkvm, start, end):
    """[start, end) physical addresses (u64): start and `end - 1` (the byte before start when
    the range is empty; ULONG_MAX when start is 0) in one region (-EINVAL), that region a
    memblock (-EPERM) not flagged MEMBLOCK_NOMAP (-EPERM)."""
    region = pkvm.region(start >> PAGE_SHIFT)
    if pkvm.region(((end - 1) & U64_MAX) >> PAGE_SHIFT) != region:
        return -EINVAL
    memblock = region in (Region.RAM, Region.NOMAP)  # find_mem_range() found a region
    if not memblock or region == Region.NOMAP:  # !reg || reg->flags & MEMBLOCK_NOMAP
        return -EPERM
    return 0


def check_pfn_range(pkvm, pfn, nr_pages):
    """pfn_range_is_valid() (-EINVAL), then check_range_allowed_memory() on the range in bytes
    (past the first check neither `phys + size` nor `nr_pages * PAGE_SIZE` can wrap)."""
    if not pfn_range_is_valid(pfn, nr_pages):
        return -EINVAL
    phys = pfn << PAGE_SHIFT
    return check_range_allowed_memory(pkvm, phys, phys + nr_pages * PAGE_SIZE)


def __guest_check_transition_size(pfn, gfn, nr):
    """One page, or one level-2 block with pfn and gfn block-aligned."""
    if nr == 1:
        return 0
    if nr == BLOCK_PAGES and not pfn % BLOCK_PAGES and not gfn % BLOCK_PAGES:
        return 0
    return -EINVAL


# -- host side ----------------------------------------------------------------

def __host_check_page_state_range(pkvm, pfn, nr, state):
    for p in range(pfn, pfn + nr):
        if get_host_state(pkvm.hyp_vmemmap, p) != state:
            return -EPERM
    return 0


def __host_set_page_state_range(pkvm, pfn, nr, state):
    """Store the host state; a page coming back from NOPAGE is identity-mapped at once."""
    for p in range(pfn, pfn + nr):
        if get_host_state(pkvm.hyp_vmemmap, p) == NOPAGE and state != NOPAGE:
            host_stage2_idmap_locked(pkvm, p)
        set_host_state(pkvm.hyp_vmemmap, p, state)


def host_stage2_idmap_locked(pkvm, pfn):
    """Fault a host page in: a valid level-3 identity entry, RWX."""
    phys = pfn << PAGE_SHIFT
    kvm_pgtable_map(pkvm.host_mmu, phys, PAGE_SIZE, phys, stage2_set_prot_attr(PKVM_HOST_MEM_PROT))


def host_stage2_set_owner_metadata_locked(pkvm, pfn, nr, owner_id, meta):
    """Give pages away: annotate DONATION with owner and meta; host NOPAGE."""
    annotation = host_stage2_donation_annotation(owner_id, meta)
    kvm_pgtable_stage2_annotate(pkvm.host_mmu, pfn << PAGE_SHIFT, nr << PAGE_SHIFT,
                                KVM_HOST_INVALID_PTE_TYPE_DONATION, annotation)
    __host_set_page_state_range(pkvm, pfn, nr, NOPAGE)


def host_stage2_set_owner_locked(pkvm, pfn, nr, owner_id):
    """Owner HYP: annotation with zero meta. Owner HOST: host OWNED, and since the pages were
    NOPAGE, __host_set_page_state_range() replaces the annotation by a valid identity mapping."""
    if owner_id == PKVM_ID_HYP:
        host_stage2_set_owner_metadata_locked(pkvm, pfn, nr, PKVM_ID_HYP, 0)
        return
    assert owner_id == PKVM_ID_HOST
    __host_set_page_state_range(pkvm, pfn, nr, OWNED)


def host_stage2_get_guest_info(pkvm, pfn):
    """Decode the host entry of a page donated to a guest: (errno, vm, gfn)."""
    pte, _ = kvm_pgtable_get_leaf(pkvm.host_mmu, pfn << PAGE_SHIFT)
    if kvm_invalid_pte_type(pte) != KVM_HOST_INVALID_PTE_TYPE_DONATION:
        return -EINVAL, None, None
    if host_stage2_decode_owner(pte) != PKVM_ID_GUEST:
        return -EPERM, None, None
    handle, gfn = host_stage2_decode_gfn_meta(pte)
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    if vm is None:
        return -EAGAIN, None, None
    return 0, vm, gfn


def handle_host_mem_abort(pkvm, pfn):
    """The host touched a page: map it if its entry is still the lazy zero entry."""
    pte, _ = kvm_pgtable_get_leaf(pkvm.host_mmu, pfn << PAGE_SHIFT)
    if not pte:
        host_stage2_idmap_locked(pkvm, pfn)


# -- hyp side -----------------------------------------------------------------

def __hyp_check_page_state_range(pkvm, pfn, nr, state):
    for p in range(pfn, pfn + nr):
        if get_hyp_state(pkvm.hyp_vmemmap, p) != state:
            return -EPERM
    return 0


def __hyp_set_page_state_range(pkvm, pfn, nr, state):
    for p in range(pfn, pfn + nr):
        set_hyp_state(pkvm.hyp_vmemmap, p, state)


def pkvm_create_mappings_locked(pkvm, pfn, nr):
    """Map pages in hyp stage-1 (hyp VA = PA here), PAGE_HYP."""
    for p in range(pfn, pfn + nr):
        kvm_pgtable_map(pkvm.pkvm_pgtable, p << PAGE_SHIFT, PAGE_SIZE, p << PAGE_SHIFT, PAGE_HYP)


def kvm_pgtable_hyp_unmap(pkvm, pfn, nr):
    kvm_pgtable_unmap(pkvm.pkvm_pgtable, pfn << PAGE_SHIFT, nr << PAGE_SHIFT)


# -- guest side ---------------------------------------------------------------

def guest_get_page_state(pte):
    """POISON for a POISONED entry, NOPAGE for any other invalid one, else SW0/SW1."""
    if kvm_invalid_pte_type(pte) == KVM_GUEST_INVALID_PTE_TYPE_POISONED:
        return POISON
    if not kvm_pte_valid(pte):
        return NOPAGE
    return PkvmPageState(pkvm_getstate(pte))


def guest_leaf_phys(pte, level, ipa):
    """The physical address a valid leaf maps ipa to."""
    return kvm_pte_to_phys(pte) + (ipa & (kvm_granule_size(level) - 1))


def guest_walk_in_range(gfn, nr):
    """_kvm_pgtable_walk(): a range past the guest's IPA space (its ia_bits, the host's) is
    -ERANGE, before any entry is read."""
    return 0 <= gfn and gfn + nr <= IPA_PAGES


def __guest_check_page_state_range(vm, gfn, nr, state):
    if not guest_walk_in_range(gfn, nr):
        return -ERANGE
    for _, _, pte in kvm_pgtable_walk_leaves(vm.pgt, gfn << PAGE_SHIFT, nr << PAGE_SHIFT):
        if guest_get_page_state(pte) != state:
            return -EPERM
    return 0


def get_valid_guest_pte(vm, gfn):
    """(errno, pte): past the IPA space -ERANGE, POISON -EHWPOISON, invalid -ENOENT, not last
    level -E2BIG."""
    if not guest_walk_in_range(gfn, 1):
        return -ERANGE, 0
    pte, level = kvm_pgtable_get_leaf(vm.pgt, gfn << PAGE_SHIFT)
    if guest_get_page_state(pte) == POISON:
        return -EHWPOISON, pte
    if not kvm_pte_valid(pte):
        return -ENOENT, pte
    if level != KVM_PGTABLE_LAST_LEVEL:
        return -E2BIG, pte
    return 0, pte


def guest_set_page_state(vm, gfn, pte, state):
    """Rewrite a valid last-level guest leaf with a new SW0/SW1 state."""
    ipa = gfn << PAGE_SHIFT
    kvm_pgtable_map(vm.pgt, ipa, PAGE_SIZE, kvm_pte_to_phys(pte),
                    pkvm_mkstate(pte & KVM_PTE_LEAF_ATTR_MASK, state))


# -- host <-> hyp ---------------------------------------------------------------

def pkvm_host_share_hyp(pkvm, pfn):
    ret = check_pfn_range(pkvm, pfn, 1)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, 1, OWNED)
    if ret:
        return ret
    ret = __hyp_check_page_state_range(pkvm, pfn, 1, NOPAGE)
    if ret:
        return ret

    __host_set_page_state_range(pkvm, pfn, 1, SHARED_OWNED)
    __hyp_set_page_state_range(pkvm, pfn, 1, SHARED_BORROWED)
    return 0


def pkvm_host_unshare_hyp(pkvm, pfn):
    ret = check_pfn_range(pkvm, pfn, 1)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, 1, SHARED_OWNED)
    if ret:
        return ret
    ret = __hyp_check_page_state_range(pkvm, pfn, 1, SHARED_BORROWED)
    if ret:
        return ret
    if hyp_page_count(pkvm.hyp_vmemmap, pfn):
        return -EBUSY

    __host_set_page_state_range(pkvm, pfn, 1, OWNED)
    __hyp_set_page_state_range(pkvm, pfn, 1, NOPAGE)
    return 0


def hyp_pin_shared_mem(pkvm, pfn):
    ret = check_pfn_range(pkvm, pfn, 1)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, 1, SHARED_OWNED)
    if ret:
        return ret
    ret = __hyp_check_page_state_range(pkvm, pfn, 1, SHARED_BORROWED)
    if ret:
        return ret
    count = hyp_page_count(pkvm.hyp_vmemmap, pfn)
    if count >= pkvm.pin_max:
        return -EBUSY

    hyp_set_page_count(pkvm.hyp_vmemmap, pfn, count + 1)
    if not count:
        pkvm_create_mappings_locked(pkvm, pfn, 1)
    return 0


def hyp_unpin_shared_mem(pkvm, pfn):
    ret = check_pfn_range(pkvm, pfn, 1)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, 1, SHARED_OWNED)
    if ret:
        return ret
    ret = __hyp_check_page_state_range(pkvm, pfn, 1, SHARED_BORROWED)
    if ret:
        return ret
    count = hyp_page_count(pkvm.hyp_vmemmap, pfn)
    if not count:
        return -EINVAL

    hyp_set_page_count(pkvm.hyp_vmemmap, pfn, count - 1)
    if count == 1:
        kvm_pgtable_hyp_unmap(pkvm, pfn, 1)
    return 0


def pkvm_host_donate_hyp(pkvm, pfn, nr):
    ret = check_pfn_range(pkvm, pfn, nr)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, nr, OWNED)
    if ret:
        return ret
    ret = __hyp_check_page_state_range(pkvm, pfn, nr, NOPAGE)
    if ret:
        return ret

    __hyp_set_page_state_range(pkvm, pfn, nr, OWNED)
    pkvm_create_mappings_locked(pkvm, pfn, nr)
    host_stage2_set_owner_locked(pkvm, pfn, nr, PKVM_ID_HYP)
    return 0


def pkvm_hyp_donate_host(pkvm, pfn, nr):
    ret = check_pfn_range(pkvm, pfn, nr)
    if ret:
        return ret
    ret = __hyp_check_page_state_range(pkvm, pfn, nr, OWNED)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, nr, NOPAGE)
    if ret:
        return ret

    __hyp_set_page_state_range(pkvm, pfn, nr, NOPAGE)
    kvm_pgtable_hyp_unmap(pkvm, pfn, nr)
    host_stage2_set_owner_locked(pkvm, pfn, nr, PKVM_ID_HOST)
    return 0


# -- host <-> FF-A ---------------------------------------------------------------

def pkvm_host_share_ffa(pkvm, pfn, nr):
    ret = check_pfn_range(pkvm, pfn, nr)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, nr, OWNED)
    if ret:
        return ret

    __host_set_page_state_range(pkvm, pfn, nr, SHARED_OWNED)
    for p in range(pfn, pfn + nr):
        pkvm.ffa_borrowed[p] = 1
    return 0


def pkvm_host_unshare_ffa(pkvm, pfn, nr):
    ret = check_pfn_range(pkvm, pfn, nr)
    if ret:
        return ret
    for p in range(pfn, pfn + nr):
        if get_host_state(pkvm.hyp_vmemmap, p) != SHARED_OWNED or not pkvm.ffa_borrowed[p]:
            return -EPERM

    __host_set_page_state_range(pkvm, pfn, nr, OWNED)
    for p in range(pfn, pfn + nr):
        pkvm.ffa_borrowed[p] = 0
    return 0


# -- host <-> non-protected guest ---------------------------------------------------

def pkvm_host_share_guest(pkvm, pfn, gfn, nr, handle, prot):
    vm = pkvm_get_loaded_hyp_vcpu(pkvm, handle)
    if vm is None:
        return -EINVAL
    if vm.is_protected:
        return -EINVAL
    ret = pkvm_refill_memcache(pkvm, vm.memcache)
    if ret:
        return ret
    if prot < 0 or prot & ~KVM_PGTABLE_PROT_RWX:
        return -EINVAL
    ret = __guest_check_transition_size(pfn, gfn, nr)
    if ret:
        return ret
    ret = check_pfn_range(pkvm, pfn, nr)
    if ret:
        return ret
    ret = __guest_check_page_state_range(vm, gfn, nr, NOPAGE)
    if ret:
        return ret
    for p in range(pfn, pfn + nr):
        state = get_host_state(pkvm.hyp_vmemmap, p)
        if state == OWNED:
            continue
        if state != SHARED_OWNED:
            return -EPERM
        count = host_share_guest_count(pkvm.hyp_vmemmap, p)
        if count >= pkvm.count_max:
            return -EBUSY
        if not count:
            return -EPERM

    for p in range(pfn, pfn + nr):
        set_host_state(pkvm.hyp_vmemmap, p, SHARED_OWNED)
        set_host_share_guest_count(pkvm.hyp_vmemmap, p, host_share_guest_count(pkvm.hyp_vmemmap, p) + 1)
    stage2_map_memcache(pkvm, vm.memcache)
    kvm_pgtable_map(vm.pgt, gfn << PAGE_SHIFT, nr << PAGE_SHIFT, pfn << PAGE_SHIFT,
                    pkvm_mkstate(stage2_set_prot_attr(prot), SHARED_BORROWED))
    return 0


def pkvm_host_unshare_guest(pkvm, gfn, nr, handle):
    vm = get_pkvm_hyp_vm(pkvm, handle, ALIVE)
    if vm is None:
        return -EINVAL
    if vm.is_protected:
        return -EINVAL
    ret = __guest_check_transition_size(0, gfn, nr)
    if ret:
        return ret
    if not guest_walk_in_range(gfn, 1):  # kvm_pgtable_get_leaf()
        return -ERANGE
    pte, level = kvm_pgtable_get_leaf(vm.pgt, gfn << PAGE_SHIFT)
    if not kvm_pte_valid(pte):
        return -ENOENT
    if kvm_granule_size(level) != nr << PAGE_SHIFT:
        return -E2BIG
    if guest_get_page_state(pte) != SHARED_BORROWED:
        return -EPERM
    pfn = kvm_pte_to_phys(pte) >> PAGE_SHIFT
    for p in range(pfn, pfn + nr):
        if get_host_state(pkvm.hyp_vmemmap, p) != SHARED_OWNED:
            return -EPERM
        if not host_share_guest_count(pkvm.hyp_vmemmap, p):
            return -EINVAL

    kvm_pgtable_unmap(vm.pgt, gfn << PAGE_SHIFT, nr << PAGE_SHIFT)
    for p in range(pfn, pfn + nr):
        count = host_share_guest_count(pkvm.hyp_vmemmap, p) - 1
        set_host_share_guest_count(pkvm.hyp_vmemmap, p, count)
        if not count:
            set_host_state(pkvm.hyp_vmemmap, p, OWNED)
    return 0


# -- host <-> protected guest -------------------------------------------------------

def pkvm_host_donate_guest(pkvm, pfn, gfn, handle):
    vm = pkvm_get_loaded_hyp_vcpu(pkvm, handle)
    if vm is None:
        return -EINVAL
    if not vm.is_protected:
        return -EINVAL
    ret = pkvm_refill_memcache(pkvm, vm.memcache)
    if ret:
        return ret
    ret = check_pfn_range(pkvm, pfn, 1)
    if ret:
        return ret
    ret = __host_check_page_state_range(pkvm, pfn, 1, OWNED)
    if ret:
        return ret
    ret = __guest_check_page_state_range(vm, gfn, 1, NOPAGE)
    if ret:
        return ret

    host_stage2_set_owner_metadata_locked(pkvm, pfn, 1, PKVM_ID_GUEST,
                                          host_stage2_encode_gfn_meta(handle, gfn))
    stage2_map_memcache(pkvm, vm.memcache)
    kvm_pgtable_map(vm.pgt, gfn << PAGE_SHIFT, PAGE_SIZE, pfn << PAGE_SHIFT,
                    pkvm_mkstate(stage2_set_prot_attr(KVM_PGTABLE_PROT_RWX), OWNED))
    return 0


def pkvm_guest_share_host(pkvm, handle, gfn):
    vm = pkvm_get_loaded_hyp_vcpu(pkvm, handle)
    if vm is None:
        return -EINVAL
    ret, pte = get_valid_guest_pte(vm, gfn)
    if ret:
        return ret
    if guest_get_page_state(pte) != OWNED:
        return -EPERM
    pfn = kvm_pte_to_phys(pte) >> PAGE_SHIFT
    ret = __host_check_page_state_range(pkvm, pfn, 1, NOPAGE)
    if ret:
        return ret

    __host_set_page_state_range(pkvm, pfn, 1, SHARED_BORROWED)
    guest_set_page_state(vm, gfn, pte, SHARED_OWNED)
    if pkvm.phys_mem[pfn] == CONTENTS_SECRET + handle:
        pkvm.phys_mem[pfn] = CONTENTS_PUBLIC
    return 0


def pkvm_guest_unshare_host(pkvm, handle, gfn):
    vm = pkvm_get_loaded_hyp_vcpu(pkvm, handle)
    if vm is None:
        return -EINVAL
    ret, pte = get_valid_guest_pte(vm, gfn)
    if ret:
        return ret
    if guest_get_page_state(pte) != SHARED_OWNED:
        return -EPERM
    pfn = kvm_pte_to_phys(pte) >> PAGE_SHIFT
    ret = __host_check_page_state_range(pkvm, pfn, 1, SHARED_BORROWED)
    if ret:
        return ret

    host_stage2_set_owner_metadata_locked(pkvm, pfn, 1, PKVM_ID_GUEST,
                                          host_stage2_encode_gfn_meta(handle, gfn))
    guest_set_page_state(vm, gfn, pte, OWNED)
    return 0


def pkvm_host_force_reclaim_page_guest(pkvm, pfn):
    """host_stage2_get_guest_info(): off memory -EFAULT (its only range check: a no-map page is
    memory, host OWNED), a page the host can reach -EAGAIN, then the annotation decoded."""
    region = pkvm.region(pfn) if 0 <= pfn < PA_PAGES else Region.HOLE
    if region not in (Region.RAM, Region.NOMAP):
        return -EFAULT  # !addr_is_memory(phys)
    # A no-map page keeps its boot state, host OWNED (no call gives it away; the vmemmap
    # here covers RAM only).
    if region == Region.NOMAP or get_host_state(pkvm.hyp_vmemmap, pfn) != NOPAGE:
        return -EAGAIN
    ret, vm, gfn = host_stage2_get_guest_info(pkvm, pfn)
    if ret:
        return ret
    ipa = gfn << PAGE_SHIFT
    pte, level = kvm_pgtable_get_leaf(vm.pgt, ipa)
    if (not kvm_pte_valid(pte) or guest_leaf_phys(pte, level, ipa) != pfn << PAGE_SHIFT
            or guest_get_page_state(pte) != OWNED):
        return -EPERM

    kvm_pgtable_stage2_annotate(vm.pgt, ipa, PAGE_SIZE, KVM_GUEST_INVALID_PTE_TYPE_POISONED,
                                guest_poison_annotation(pfn << PAGE_SHIFT))
    hyp_poison_page(pkvm, pfn)
    host_stage2_set_owner_locked(pkvm, pfn, 1, PKVM_ID_HOST)
    return 0


def pkvm_host_reclaim_page_guest(pkvm, vm, gfn):
    """Take a page back from a dying guest; a page it owned is zeroed first. A POISON entry
    was forcibly reclaimed already: success, and the entry stays (until finalize)."""
    ipa = gfn << PAGE_SHIFT
    ret, pte = get_valid_guest_pte(vm, gfn)
    if ret:
        return 0 if ret == -EHWPOISON else ret
    state = guest_get_page_state(pte)
    if state not in (OWNED, SHARED_OWNED):
        return -EPERM
    pfn = kvm_pte_to_phys(pte) >> PAGE_SHIFT

    kvm_pgtable_unmap(vm.pgt, ipa, PAGE_SIZE)
    if state == OWNED:
        hyp_poison_page(pkvm, pfn)
    # Host NOPAGE (OWNED case) gets its identity mapping back; host SHARED_BORROWED keeps its entry.
    __host_set_page_state_range(pkvm, pfn, 1, OWNED)
    return 0


def hyp_poison_page(pkvm, pfn):
    """Clear a page before the host gets it back."""
    pkvm.phys_mem[pfn] = CONTENTS_ZERO


# -- memory accesses -------------------------------------------------------------

def host_write(pkvm, pfn):
    """A host store: faults the identity map in; refused on a page the host gave away."""
    ret = check_pfn_range(pkvm, pfn, 1)
    if ret:
        return ret
    if get_host_state(pkvm.hyp_vmemmap, pfn) == NOPAGE:
        return -EPERM

    handle_host_mem_abort(pkvm, pfn)
    pkvm.phys_mem[pfn] = CONTENTS_HOST
    return 0


def guest_write(pkvm, handle, gfn):
    """A guest store through its stage-2: SECRET into a page a protected guest owns, else PUBLIC."""
    vm = pkvm_get_loaded_hyp_vcpu(pkvm, handle)
    if vm is None:
        return -EINVAL
    ipa = gfn << PAGE_SHIFT
    pte, level = kvm_pgtable_get_leaf(vm.pgt, ipa)
    if not kvm_pte_valid(pte) or not pte & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W:
        return -EFAULT

    pfn = guest_leaf_phys(pte, level, ipa) >> PAGE_SHIFT
    if vm.is_protected and guest_get_page_state(pte) == OWNED:
        pkvm.phys_mem[pfn] = CONTENTS_SECRET + handle
    else:
        pkvm.phys_mem[pfn] = CONTENTS_PUBLIC
    return 0
