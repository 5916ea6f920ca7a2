"""Bit layouts of the 64-bit stage-2 and hyp stage-1 descriptors.

Names follow arch/arm64/include/asm/kvm_pgtable.h, arch/arm64/kvm/hyp/pgtable.c
and arch/arm64/kvm/hyp/nvhe/mem_protect.c.

Valid descriptors (4 KiB granule, levels 0..3):

    bit  0       KVM_PTE_VALID
    bit  1       KVM_PTE_TYPE: 1 = table (levels 0-2) or page (level 3), 0 = block
    bits 47:12   KVM_PTE_ADDR_MASK: output address (next table, page or block)
    bit  6       KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R   (stage-2 read)
    bit  7       KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W   (stage-2 write)
    bit  54      KVM_PTE_LEAF_ATTR_HI_S2_XN       (stage-2 execute-never)
    bits 56:55   KVM_PGTABLE_PROT_SW1:SW0: pKVM page state of a guest leaf
    bit  10      KVM_PTE_LEAF_ATTR_LO_S1_AF       (hyp stage-1 leaves only)
    bit  54      KVM_PTE_LEAF_ATTR_HI_S1_XN       (hyp stage-1 leaves only)

Memory attributes, shareability and the stage-2 access flag are not modelled.

Invalid, annotated descriptors (bit 0 clear, non-zero):

    bits 63:60   KVM_INVALID_PTE_TYPE_MASK: LOCKED 1, DONATION 2, POISONED 3
                 (enum kvm_invalid_pte_type, in kernel order)
    host stage-2, type DONATION:
      bits 3:1   KVM_HOST_DONATION_PTE_OWNER_MASK: owner id (HOST 0, HYP 1, GUEST 2)
      bits 59:4  KVM_HOST_DONATION_PTE_EXTRA_MASK: meta; for a guest owner
                 meta 15:0 = VM handle, meta 55:16 = gfn
                 (KVM_HOST_PTE_OWNER_GUEST_HANDLE_MASK / _GFN_MASK),
                 i.e. PTE bits 19:4 and 59:20.
    guest stage-2, type POISONED:
      bits 47:12 the physical address the leaf mapped when it was poisoned.
                 The kernel does not need it; the reference keeps it so that
                 page_state(pfn) can attribute POISON to a page (see docs/reference.md).
    any stage-2, type LOCKED: transient break-before-make marker.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


def GENMASK(h, l):
    return ((1 << (h - l + 1)) - 1) << l


_SHIFT = {}  # mask -> position of its lowest bit (FIELD_GET/FIELD_PREP run on every check)


def _shift(mask):
    shift = _SHIFT.get(mask)
    if shift is None:
        shift = _SHIFT[mask] = (mask & -mask).bit_length() - 1
    return shift


def FIELD_GET(mask, val):
    return (val & mask) >> _shift(mask)


def FIELD_PREP(mask, val):
    return (val << _shift(mask)) & mask


KVM_PTE_VALID = 1 << 0
KVM_PTE_TYPE = 1 << 1
KVM_PTE_TYPE_BLOCK = 0
KVM_PTE_TYPE_PAGE = 1
KVM_PTE_TYPE_TABLE = 1
KVM_PTE_ADDR_MASK = GENMASK(47, 12)

KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R = 1 << 6
KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W = 1 << 7
KVM_PTE_LEAF_ATTR_HI_S2_XN = 1 << 54
KVM_PTE_LEAF_ATTR_LO_S1_AF = 1 << 10
KVM_PTE_LEAF_ATTR_HI_S1_XN = 1 << 54

KVM_PGTABLE_PROT_SW0 = 1 << 55
KVM_PGTABLE_PROT_SW1 = 1 << 56
PKVM_PAGE_STATE_PROT_MASK = KVM_PGTABLE_PROT_SW0 | KVM_PGTABLE_PROT_SW1

# enum kvm_pgtable_prot, the bits the contract's `prot` uses.
KVM_PGTABLE_PROT_X = 1 << 0
KVM_PGTABLE_PROT_W = 1 << 1
KVM_PGTABLE_PROT_R = 1 << 2
KVM_PGTABLE_PROT_RWX = KVM_PGTABLE_PROT_R | KVM_PGTABLE_PROT_W | KVM_PGTABLE_PROT_X

KVM_INVALID_PTE_TYPE_MASK = GENMASK(63, 60)
KVM_INVALID_PTE_TYPE_LOCKED = 1
KVM_HOST_INVALID_PTE_TYPE_DONATION = 2
KVM_GUEST_INVALID_PTE_TYPE_POISONED = 3

KVM_HOST_DONATION_PTE_OWNER_MASK = GENMASK(3, 1)
KVM_HOST_DONATION_PTE_EXTRA_MASK = GENMASK(59, 4)
KVM_HOST_PTE_OWNER_GUEST_HANDLE_MASK = GENMASK(15, 0)
KVM_HOST_PTE_OWNER_GUEST_GFN_MASK = GENMASK(55, 16)

# enum pkvm_component_id: also the lock order.
PKVM_ID_HOST = 0
PKVM_ID_HYP = 1
PKVM_ID_GUEST = 2

KVM_PGTABLE_LAST_LEVEL = 3
PTRS_PER_TABLE = 512


def kvm_granule_shift(level):
    """Bytes covered by one entry at `level`, as a shift: 39, 30, 21, 12."""
    return (KVM_PGTABLE_LAST_LEVEL - level) * 9 + PAGE_SHIFT


def kvm_granule_size(level):
    return 1 << kvm_granule_shift(level)


def kvm_pte_valid(pte):
    return bool(pte & KVM_PTE_VALID)


def kvm_pte_table(pte, level):
    """A valid entry above the last level with the type bit set points to a table."""
    return level < KVM_PGTABLE_LAST_LEVEL and kvm_pte_valid(pte) and bool(pte & KVM_PTE_TYPE)


def kvm_pte_to_phys(pte):
    return pte & KVM_PTE_ADDR_MASK


def kvm_phys_to_pte(pa):
    return pa & KVM_PTE_ADDR_MASK


def kvm_init_table_pte(childp):
    return kvm_phys_to_pte(childp) | KVM_PTE_TYPE | KVM_PTE_VALID


def kvm_init_valid_leaf_pte(pa, attr, level):
    """A page at the last level (type bit set), a block above it (type bit clear)."""
    pte = kvm_phys_to_pte(pa) | attr | KVM_PTE_VALID
    if level == KVM_PGTABLE_LAST_LEVEL:
        pte |= KVM_PTE_TYPE
    return pte


def stage2_set_prot_attr(prot):
    """enum kvm_pgtable_prot to stage-2 S2AP/XN bits (stage2_set_prot_attr())."""
    attr = 0
    if prot & KVM_PGTABLE_PROT_R:
        attr |= KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R
    if prot & KVM_PGTABLE_PROT_W:
        attr |= KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W
    if not prot & KVM_PGTABLE_PROT_X:
        attr |= KVM_PTE_LEAF_ATTR_HI_S2_XN
    return attr


def kvm_pgtable_stage2_pte_prot(pte):
    """Stage-2 S2AP/XN bits back to enum kvm_pgtable_prot."""
    prot = 0
    if pte & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R:
        prot |= KVM_PGTABLE_PROT_R
    if pte & KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W:
        prot |= KVM_PGTABLE_PROT_W
    if not pte & KVM_PTE_LEAF_ATTR_HI_S2_XN:
        prot |= KVM_PGTABLE_PROT_X
    return prot


def pkvm_mkstate(attr, state):
    """Store a pKVM page state in SW0/SW1 of a guest leaf."""
    return (attr & ~PKVM_PAGE_STATE_PROT_MASK) | FIELD_PREP(PKVM_PAGE_STATE_PROT_MASK, state)


def pkvm_getstate(pte):
    return FIELD_GET(PKVM_PAGE_STATE_PROT_MASK, pte)


# Hyp stage-1 leaves are PAGE_HYP: read-write, never executable, accessed.
PAGE_HYP = KVM_PTE_LEAF_ATTR_LO_S1_AF | KVM_PTE_LEAF_ATTR_HI_S1_XN


def kvm_invalid_pte_type(pte):
    """The annotation type of an invalid entry; 0 for a valid or zero entry."""
    if kvm_pte_valid(pte):
        return 0
    return FIELD_GET(KVM_INVALID_PTE_TYPE_MASK, pte)


def kvm_init_invalid_leaf(type_, annotation):
    """An annotated invalid entry; the annotation may touch neither bit 0 nor 63:60."""
    assert type_ and not annotation & (KVM_PTE_VALID | KVM_INVALID_PTE_TYPE_MASK)
    return FIELD_PREP(KVM_INVALID_PTE_TYPE_MASK, type_) | annotation


def host_stage2_donation_annotation(owner_id, meta):
    """Owner id and extra metadata of a host stage-2 DONATION entry."""
    return (FIELD_PREP(KVM_HOST_DONATION_PTE_OWNER_MASK, owner_id)
            | FIELD_PREP(KVM_HOST_DONATION_PTE_EXTRA_MASK, meta))


def host_stage2_encode_gfn_meta(handle, gfn):
    return (FIELD_PREP(KVM_HOST_PTE_OWNER_GUEST_HANDLE_MASK, handle)
            | FIELD_PREP(KVM_HOST_PTE_OWNER_GUEST_GFN_MASK, gfn))


def host_stage2_decode_owner(pte):
    return FIELD_GET(KVM_HOST_DONATION_PTE_OWNER_MASK, pte)


def host_stage2_decode_meta(pte):
    return FIELD_GET(KVM_HOST_DONATION_PTE_EXTRA_MASK, pte)


def host_stage2_decode_gfn_meta(pte):
    """(handle, gfn) of a host DONATION entry owned by a guest."""
    meta = host_stage2_decode_meta(pte)
    return (FIELD_GET(KVM_HOST_PTE_OWNER_GUEST_HANDLE_MASK, meta),
            FIELD_GET(KVM_HOST_PTE_OWNER_GUEST_GFN_MASK, meta))


def guest_poison_annotation(phys):
    """Annotation of a POISONED guest entry: the address the leaf mapped."""
    return kvm_phys_to_pte(phys)
