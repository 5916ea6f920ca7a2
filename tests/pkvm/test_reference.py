"""Tests of the reference hypervisor (model/references/pkvm) against docs/contract.md."""

import errno

import pytest
from hypothesis import given, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule
from hypothesis import strategies as st

from model.references.pkvm import (
    BLOCK_PAGES, IPA_PAGES, PA_PAGES, PROT_R, PROT_RWX, PROT_W, Contents, Hypervisor,
    PkvmPageState, VmState,
)
from model.references.pkvm import memory, pgtable, pte
from model.references.pkvm.mem_protect import EHWPOISON, host_stage2_set_owner_metadata_locked

OWNED = PkvmPageState.OWNED
SHARED_OWNED = PkvmPageState.SHARED_OWNED
SHARED_BORROWED = PkvmPageState.SHARED_BORROWED
NOPAGE = PkvmPageState.NOPAGE
POISON = PkvmPageState.POISON

RAM = 1024
MMIO = 16
NP, PVM = 0, 1


@pytest.fixture
def hyp():
    """1024 RAM pages, 16 MMIO pages, a non-protected VM 0 and a protected VM 1, each with its
    vCPU loaded (share_guest, donate_guest and the guest's own calls act for a loaded vCPU)."""
    h = Hypervisor(RAM, MMIO)
    assert h.create_vm(False) == NP
    assert h.create_vm(True) == PVM
    assert h.vcpu_load(NP) == 0 and h.vcpu_load(PVM) == 0
    return h


def rejects(h, call, err, *args):
    """The call fails with -err and changes nothing."""
    before = h.snapshot()
    assert getattr(h, call)(*args) == -err
    assert h.snapshot() == before


def view(h, pfn):
    return h.page_state(pfn)


def tables_of(h, pgt):
    """Every table page reachable from a root."""
    out, todo = [], [(pgt.pgd, 0)]
    while todo:
        phys, level = todo.pop()
        out.append(phys)
        todo.extend((pte.kvm_pte_to_phys(d), level + 1) for d in h.hyp_pool.pages[phys]
                    if pte.kvm_pte_table(d, level))
    return out


def identity_mapped(h, pfn):
    """The host stage-2 entry of pfn is a valid page mapping it to itself (IPA == PA)."""
    desc, level = h.host_stage2_pte(pfn)
    return (pte.kvm_pte_valid(desc) and level == 3
            and pte.kvm_pte_to_phys(desc) == pfn << pte.PAGE_SHIFT)


# -- descriptor layouts ----------------------------------------------------------

pfns = st.integers(0, PA_PAGES - 1)
gfns = st.integers(0, IPA_PAGES - 1)
states = st.sampled_from([OWNED, SHARED_OWNED, SHARED_BORROWED])


@given(pfns, st.integers(0, PROT_RWX), states, st.sampled_from([2, 3]))
def test_valid_leaf_round_trip(pfn, prot, state, level):
    attr = pte.pkvm_mkstate(pte.stage2_set_prot_attr(prot), state)
    desc = pte.kvm_init_valid_leaf_pte(pfn << pte.PAGE_SHIFT, attr, level)
    assert pte.kvm_pte_valid(desc)
    assert pte.kvm_pte_to_phys(desc) == pfn << pte.PAGE_SHIFT
    assert pte.kvm_pgtable_stage2_pte_prot(desc) == prot
    assert pte.pkvm_getstate(desc) == state
    assert bool(desc & pte.KVM_PTE_TYPE) == (level == 3)
    assert not pte.kvm_pte_table(desc, level) or level < 3
    assert desc < 1 << 64


def test_stage2_permission_bits():
    assert pte.stage2_set_prot_attr(PROT_R) == (1 << 6) | (1 << 54)
    assert pte.stage2_set_prot_attr(PROT_W) == (1 << 7) | (1 << 54)
    assert pte.stage2_set_prot_attr(PROT_RWX) == (1 << 6) | (1 << 7)
    assert pte.pkvm_mkstate(0, SHARED_OWNED) == 1 << 55
    assert pte.pkvm_mkstate(0, SHARED_BORROWED) == 1 << 56


@given(st.integers(0, 0xFFFF), gfns)
def test_donation_annotation_round_trip(handle, gfn):
    annotation = pte.host_stage2_donation_annotation(
        pte.PKVM_ID_GUEST, pte.host_stage2_encode_gfn_meta(handle, gfn))
    desc = pte.kvm_init_invalid_leaf(pte.KVM_HOST_INVALID_PTE_TYPE_DONATION, annotation)
    assert not pte.kvm_pte_valid(desc) and desc < 1 << 64
    assert desc >> 60 == pte.KVM_HOST_INVALID_PTE_TYPE_DONATION
    assert (desc >> 1) & 0b111 == pte.PKVM_ID_GUEST
    assert pte.host_stage2_decode_owner(desc) == pte.PKVM_ID_GUEST
    assert pte.host_stage2_decode_gfn_meta(desc) == (handle, gfn)
    assert (desc >> 4) & 0xFFFF == handle and (desc >> 20) & ((1 << 40) - 1) == gfn


@given(pfns)
def test_poison_annotation_round_trip(pfn):
    desc = pte.kvm_init_invalid_leaf(pte.KVM_GUEST_INVALID_PTE_TYPE_POISONED,
                                     pte.guest_poison_annotation(pfn << pte.PAGE_SHIFT))
    assert pte.kvm_invalid_pte_type(desc) == 3
    assert pte.kvm_pte_to_phys(desc) >> pte.PAGE_SHIFT == pfn


def test_table_descriptor():
    desc = pte.kvm_init_table_pte(0x5000)
    assert desc == 0x5003
    assert all(pte.kvm_pte_table(desc, level) for level in (0, 1, 2))
    assert not pte.kvm_pte_table(desc, 3)
    assert pte.kvm_invalid_pte_type(desc) == 0


# -- struct hyp_page ------------------------------------------------------------------

def test_zero_hyp_page_is_host_owned_hyp_nopage():
    vmemmap = [0]
    page = memory.hyp_page(vmemmap, 0)
    assert (page.host_state, page.hyp_state) == (OWNED, NOPAGE)
    assert page.refcount == page.host_share_guest_count == 0


@given(st.sampled_from(list(PkvmPageState)[:4]), st.sampled_from(list(PkvmPageState)[:4]),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_hyp_page_fields_round_trip(host, hyp, refcount, count):
    vmemmap = [0]
    memory.set_host_state(vmemmap, 0, host)
    memory.set_hyp_state(vmemmap, 0, hyp)
    memory.hyp_set_page_count(vmemmap, 0, refcount)
    memory.set_host_share_guest_count(vmemmap, 0, count)
    page = memory.hyp_page(vmemmap, 0)
    assert (page.host_state, page.hyp_state, page.refcount, page.host_share_guest_count) == \
        (host, hyp, refcount, count)
    assert page.host_state_raw == host and page.hyp_state_comp == hyp ^ 0b11
    assert vmemmap[0] < 1 << 64


# -- page tables ---------------------------------------------------------------------

def spy_writes(monkeypatch):
    writes = []
    real = pgtable.write_pte

    def spy(pool, table_pa, idx, desc):
        writes.append((table_pa, idx, desc))
        real(pool, table_pa, idx, desc)
    monkeypatch.setattr(pgtable, "write_pte", spy)
    return writes


def test_block_map_then_split_is_break_before_make(monkeypatch):
    pool = pgtable.HypPool()
    pgt = pgtable.KvmPgtable(pool)
    block = 2 << 21
    attr = pte.stage2_set_prot_attr(PROT_RWX)
    pgtable.kvm_pgtable_map(pgt, block, 1 << 21, 4 << 21, attr)
    desc, level = pgtable.kvm_pgtable_get_leaf(pgt, block + 5 * 4096)
    assert level == 2 and desc & 0b11 == 0b01
    assert pte.kvm_pte_to_phys(desc) == 4 << 21

    table_pa, idx = pgtable.walk_path(pgt, block)[-1][:2]
    writes = spy_writes(monkeypatch)
    pgtable.kvm_pgtable_unmap(pgt, block + 5 * 4096, 4096)
    at_block = [d for t, i, d in writes if (t, i) == (table_pa, idx)]
    locked = pte.kvm_init_invalid_leaf(pte.KVM_INVALID_PTE_TYPE_LOCKED, 0)
    assert at_block[0] == locked
    assert pte.kvm_pte_table(at_block[1], 2)
    assert writes.index((table_pa, idx, locked)) == 0

    leaves = list(pgtable.kvm_pgtable_leaves(pgt))
    assert len(leaves) == 511
    assert all(level == 3 and d & 0b11 == 0b11 for _, level, d in leaves)
    assert all(pte.kvm_pte_to_phys(d) - (4 << 21) == a - block for a, _, d in leaves)
    assert pgtable.kvm_pgtable_get_leaf(pgt, block + 5 * 4096) == (0, 3)


def test_replacing_a_valid_leaf_breaks_first(monkeypatch):
    pool = pgtable.HypPool()
    pgt = pgtable.KvmPgtable(pool)
    pgtable.kvm_pgtable_map(pgt, 0x1000, 4096, 0x9000, 0)
    writes = spy_writes(monkeypatch)
    pgtable.kvm_pgtable_stage2_annotate(pgt, 0x1000, 4096, pte.KVM_GUEST_INVALID_PTE_TYPE_POISONED, 0)
    assert [d >> 60 for _, _, d in writes] == [pte.KVM_INVALID_PTE_TYPE_LOCKED,
                                               pte.KVM_GUEST_INVALID_PTE_TYPE_POISONED]


def test_unmap_frees_empty_tables():
    pool = pgtable.HypPool()
    pgt = pgtable.KvmPgtable(pool)
    pgtable.kvm_pgtable_map(pgt, 1 << 40, 4096, 0x1000, 0)
    assert len(pool.pages) == 4
    pgtable.kvm_pgtable_unmap(pgt, 1 << 40, 4096)
    assert list(pool.pages) == [pgt.pgd] and not any(pool.pages[pgt.pgd])


def test_walk_outside_input_range_reads_empty():
    pgt = pgtable.KvmPgtable(pgtable.HypPool())
    assert pgtable.kvm_pgtable_get_leaf(pgt, 1 << 48) == (0, 0)
    assert pgtable.kvm_pgtable_get_leaf(pgt, -4096) == (0, 0)


# -- initial state ---------------------------------------------------------------------

def test_initial_state(hyp):
    for pfn in (0, 511, RAM - 1):
        assert view(hyp, pfn) == (OWNED, NOPAGE, NOPAGE, (NOPAGE, NOPAGE))
        assert hyp.host_stage2_pte(pfn)[0] == 0
        assert not hyp.hyp_stage1_maps(pfn)
        assert hyp.contents(pfn) == Contents("ZERO")
        assert hyp.hyp_page(pfn).raw == 0
    assert [hyp.vm_state(v) for v in (NP, PVM)] == [VmState.RUNNING] * 2
    assert [hyp.vm_is_protected(v) for v in (NP, PVM)] == [False, True]
    assert list(hyp.guest_leaves(NP)) == []
    with pytest.raises(ValueError):
        hyp.page_state(RAM)


# -- range checks ------------------------------------------------------------------------

@pytest.mark.parametrize("pfn, nr, err", [
    (0, 0, errno.EINVAL),
    (PA_PAGES - 1, 2, errno.EINVAL),
    (-1, 1, errno.EINVAL),
    (RAM - 1, 2, errno.EINVAL),
    (RAM + MMIO - 1, 2, errno.EINVAL),
    (RAM, 1, errno.EPERM),
    (RAM + MMIO, 4, errno.EPERM),
    (PA_PAGES - 1, 1, errno.EPERM),
])
def test_range_checks(hyp, pfn, nr, err):
    for call in ("host_donate_hyp", "hyp_donate_host", "host_share_ffa", "host_unshare_ffa"):
        rejects(hyp, call, err, pfn, nr)
    if nr == 1:
        for call in ("host_share_hyp", "host_unshare_hyp", "hyp_pin_shared_mem",
                     "hyp_unpin_shared_mem", "host_write"):
            rejects(hyp, call, err, pfn)


@pytest.mark.parametrize("pfn, err", [
    (-1, errno.EFAULT), (RAM, errno.EFAULT), (RAM + MMIO, errno.EFAULT),
    (PA_PAGES - 1, errno.EFAULT), (PA_PAGES, errno.EFAULT), (0, errno.EAGAIN)])
def test_force_reclaim_checks_only_that_the_page_is_memory(hyp, pfn, err):
    """host_stage2_get_guest_info(): !addr_is_memory() -EFAULT, a page the host owns -EAGAIN."""
    rejects(hyp, "host_force_reclaim_page_guest", err, pfn)


# -- host <-> hyp ---------------------------------------------------------------------------

def test_share_unshare_hyp(hyp):
    assert hyp.host_share_hyp(5) == 0
    assert view(hyp, 5)[:3] == (SHARED_OWNED, SHARED_BORROWED, NOPAGE)
    assert not hyp.hyp_stage1_maps(5)
    rejects(hyp, "host_share_hyp", errno.EPERM, 5)
    assert hyp.host_unshare_hyp(5) == 0
    assert view(hyp, 5)[:2] == (OWNED, NOPAGE)
    assert hyp.hyp_page(5).raw == 0
    rejects(hyp, "host_unshare_hyp", errno.EPERM, 5)


def test_share_hyp_needs_hyp_nopage(hyp):
    memory.set_hyp_state(hyp.hyp_vmemmap, 5, SHARED_BORROWED)
    rejects(hyp, "host_share_hyp", errno.EPERM, 5)


def test_unshare_hyp_needs_hyp_borrowed(hyp):
    assert hyp.host_share_ffa(5, 1) == 0
    rejects(hyp, "host_unshare_hyp", errno.EPERM, 5)


def test_pin_unpin(hyp):
    rejects(hyp, "hyp_pin_shared_mem", errno.EPERM, 5)
    assert hyp.host_share_hyp(5) == 0
    rejects(hyp, "hyp_unpin_shared_mem", errno.EINVAL, 5)
    assert hyp.hyp_pin_shared_mem(5) == 0 and hyp.hyp_pin_shared_mem(5) == 0
    assert hyp.hyp_page(5).refcount == 2 and hyp.hyp_stage1_maps(5)
    rejects(hyp, "host_unshare_hyp", errno.EBUSY, 5)
    assert hyp.hyp_unpin_shared_mem(5) == 0
    assert hyp.hyp_stage1_maps(5)
    assert hyp.hyp_unpin_shared_mem(5) == 0
    assert not hyp.hyp_stage1_maps(5)
    assert hyp.host_unshare_hyp(5) == 0


def test_pin_overflow_is_ebusy(hyp):
    assert hyp.host_share_hyp(5) == 0
    memory.hyp_set_page_count(hyp.hyp_vmemmap, 5, 0xFFFF)
    rejects(hyp, "hyp_pin_shared_mem", errno.EBUSY, 5)


def test_donate_hyp_and_back(hyp):
    assert hyp.host_write(11) == 0
    assert hyp.host_donate_hyp(10, 3) == 0
    for pfn in (10, 11, 12):
        assert view(hyp, pfn)[:2] == (NOPAGE, OWNED)
        assert hyp.hyp_stage1_maps(pfn)
        desc, level = hyp.host_stage2_pte(pfn)
        assert level == 3 and pte.kvm_invalid_pte_type(desc) == pte.KVM_HOST_INVALID_PTE_TYPE_DONATION
        assert pte.host_stage2_decode_owner(desc) == pte.PKVM_ID_HYP
        assert pte.host_stage2_decode_meta(desc) == 0
    rejects(hyp, "host_donate_hyp", errno.EPERM, 9, 2)
    rejects(hyp, "host_write", errno.EPERM, 10)
    rejects(hyp, "hyp_donate_host", errno.EPERM, 12, 2)
    assert hyp.hyp_donate_host(10, 3) == 0
    for pfn in (10, 11, 12):
        assert view(hyp, pfn)[:2] == (OWNED, NOPAGE)
        assert identity_mapped(hyp, pfn) and not hyp.hyp_stage1_maps(pfn)


def test_donate_hyp_first_failing_page_decides(hyp):
    assert hyp.host_share_hyp(12) == 0
    rejects(hyp, "host_donate_hyp", errno.EPERM, 10, 4)


# -- host <-> FF-A ---------------------------------------------------------------------------

def test_share_unshare_ffa(hyp):
    assert hyp.host_share_ffa(20, 4) == 0
    assert view(hyp, 23)[:3] == (SHARED_OWNED, NOPAGE, SHARED_BORROWED)
    rejects(hyp, "host_share_ffa", errno.EPERM, 23, 1)
    rejects(hyp, "host_unshare_ffa", errno.EPERM, 19, 2)
    assert hyp.host_unshare_ffa(20, 4) == 0
    assert view(hyp, 20)[:3] == (OWNED, NOPAGE, NOPAGE)


def test_unshare_ffa_needs_proxy_record(hyp):
    assert hyp.host_share_hyp(20) == 0
    rejects(hyp, "host_unshare_ffa", errno.EPERM, 20, 1)


# -- host <-> non-protected guest ---------------------------------------------------------------

def test_share_unshare_guest_page(hyp):
    assert hyp.host_share_guest(30, 100, 1, NP, PROT_R | PROT_W) == 0
    assert view(hyp, 30) == (SHARED_OWNED, NOPAGE, NOPAGE, (SHARED_BORROWED, NOPAGE))
    assert hyp.hyp_page(30).host_share_guest_count == 1
    (leaf,) = hyp.guest_leaves(NP)
    assert (leaf.gfn, leaf.level) == (100, 3)
    assert pte.kvm_pgtable_stage2_pte_prot(leaf.pte) == PROT_R | PROT_W
    assert pte.pkvm_getstate(leaf.pte) == SHARED_BORROWED
    assert hyp.host_share_guest(30, 101, 1, NP, PROT_R) == 0
    assert hyp.hyp_page(30).host_share_guest_count == 2
    assert hyp.host_unshare_guest(100, 1, NP) == 0
    assert view(hyp, 30)[0] == SHARED_OWNED
    assert hyp.host_unshare_guest(101, 1, NP) == 0
    assert view(hyp, 30) == (OWNED, NOPAGE, NOPAGE, (NOPAGE, NOPAGE))
    assert hyp.hyp_page(30).raw == 0


def test_block_share_unshare_on_1024_page_machine(hyp):
    assert hyp.host_share_guest(512, 3 * 512, BLOCK_PAGES, NP, PROT_RWX) == 0
    (leaf,) = hyp.guest_leaves(NP)
    assert (leaf.gfn, leaf.level) == (3 * 512, 2) and leaf.pte & 0b11 == 0b01
    assert pte.kvm_pte_to_phys(leaf.pte) == 512 << 12
    states = hyp.page_states()
    assert all(states[p] == (SHARED_OWNED, NOPAGE, NOPAGE, (SHARED_BORROWED, NOPAGE))
               for p in range(512, 1024))
    assert all(states[p][0] == OWNED for p in range(512))
    assert all(hyp.hyp_page(p).host_share_guest_count == 1 for p in range(512, 1024))
    rejects(hyp, "host_unshare_guest", errno.E2BIG, 3 * 512 + 7, 1, NP)
    rejects(hyp, "host_unshare_guest", errno.EINVAL, 3 * 512 + 7, BLOCK_PAGES, NP)
    rejects(hyp, "guest_share_host", errno.E2BIG, NP, 3 * 512)
    assert hyp.guest_write(NP, 3 * 512 + 7) == 0
    assert hyp.contents(519) == Contents("PUBLIC")
    assert hyp.host_unshare_guest(3 * 512, BLOCK_PAGES, NP) == 0
    assert all(s == (OWNED, NOPAGE, NOPAGE, (NOPAGE, NOPAGE)) for s in hyp.page_states())
    assert list(hyp.guest_leaves(NP)) == []
    assert len(hyp.hyp_pool.pages) == 4  # the roots: host, hyp, two guests


def test_page_share_then_block_share_of_its_range(hyp):
    assert hyp.host_share_guest(0, 0, 1, NP, PROT_R) == 0
    rejects(hyp, "host_share_guest", errno.EPERM, 0, 0, BLOCK_PAGES, NP, PROT_R)
    assert hyp.host_share_guest(0, 512, BLOCK_PAGES, NP, PROT_R) == 0
    assert hyp.hyp_page(0).host_share_guest_count == 2
    assert hyp.hyp_page(1).host_share_guest_count == 1
    rejects(hyp, "host_unshare_guest", errno.E2BIG, 0, BLOCK_PAGES, NP)


@pytest.mark.parametrize("args, err", [
    ((30, 100, 1, 7, PROT_R), errno.EINVAL),
    ((30, 100, 1, -1, PROT_R), errno.EINVAL),
    ((30, 100, 1, PVM, PROT_R), errno.EINVAL),
    ((30, 100, 1, NP, 8), errno.EINVAL),
    ((30, 100, 2, NP, PROT_R), errno.EINVAL),
    ((30, 100, 0, NP, PROT_R), errno.EINVAL),
    ((1, 512, BLOCK_PAGES, NP, PROT_R), errno.EINVAL),
    ((512, 1, BLOCK_PAGES, NP, PROT_R), errno.EINVAL),
    ((30, IPA_PAGES, 1, NP, PROT_R), errno.ERANGE),  # the stage-2 walk past the IPA space
    ((30, -1, 1, NP, PROT_R), errno.ERANGE),
    ((RAM, 100, 1, NP, PROT_R), errno.EPERM),
    ((PA_PAGES, 100, 1, NP, PROT_R), errno.EINVAL),
    ((1024, 0, BLOCK_PAGES, NP, PROT_R), errno.EINVAL),
])
def test_share_guest_rejections(hyp, args, err):
    rejects(hyp, "host_share_guest", err, *args)


def test_share_guest_host_state_checks(hyp):
    assert hyp.host_share_hyp(40) == 0
    rejects(hyp, "host_share_guest", errno.EPERM, 40, 1, 1, NP, PROT_R)
    assert hyp.host_donate_hyp(41, 1) == 0
    rejects(hyp, "host_share_guest", errno.EPERM, 41, 1, 1, NP, PROT_R)
    assert hyp.host_share_guest(42, 1, 1, NP, PROT_R) == 0
    rejects(hyp, "host_share_guest", errno.EPERM, 43, 1, 1, NP, PROT_R)
    memory.set_host_share_guest_count(hyp.hyp_vmemmap, 42, 0xFFFFFFFF)
    rejects(hyp, "host_share_guest", errno.EBUSY, 42, 2, 1, NP, PROT_R)


def test_share_guest_needs_running_vm(hyp):
    assert hyp.vcpu_put(NP) == 0 and hyp.start_teardown_vm(NP) == 0
    rejects(hyp, "host_share_guest", errno.EINVAL, 30, 100, 1, NP, PROT_R)


@pytest.mark.parametrize("args, err", [
    ((100, 1, 7), errno.EINVAL),
    ((100, 1, PVM), errno.EINVAL),
    ((100, 2, NP), errno.EINVAL),
    ((100, 1, NP), errno.ENOENT),
    ((IPA_PAGES, 1, NP), errno.ERANGE),
])
def test_unshare_guest_rejections(hyp, args, err):
    rejects(hyp, "host_unshare_guest", err, *args)


def test_unshare_guest_checks_guest_and_host_state(hyp):
    assert hyp.host_share_guest(30, 100, 1, NP, PROT_R) == 0
    memory.set_host_share_guest_count(hyp.hyp_vmemmap, 30, 0)
    rejects(hyp, "host_unshare_guest", errno.EINVAL, 100, 1, NP)
    memory.set_host_state(hyp.hyp_vmemmap, 30, OWNED)
    rejects(hyp, "host_unshare_guest", errno.EPERM, 100, 1, NP)


def test_unshare_guest_works_on_dying_vm(hyp):
    assert hyp.host_share_guest(30, 100, 1, NP, PROT_R) == 0
    assert hyp.vcpu_put(NP) == 0 and hyp.start_teardown_vm(NP) == 0
    assert hyp.host_unshare_guest(100, 1, NP) == 0
    assert view(hyp, 30)[0] == OWNED


# -- host <-> protected guest ---------------------------------------------------------------------

def donated(h, pfn=50, gfn=200):
    assert h.host_donate_guest(pfn, gfn, PVM) == 0
    return pfn, gfn


def test_donate_guest(hyp):
    assert hyp.host_write(50) == 0
    pfn, gfn = donated(hyp)
    assert view(hyp, pfn) == (NOPAGE, NOPAGE, NOPAGE, (NOPAGE, OWNED))
    desc, level = hyp.host_stage2_pte(pfn)
    assert level == 3 and pte.kvm_invalid_pte_type(desc) == pte.KVM_HOST_INVALID_PTE_TYPE_DONATION
    assert pte.host_stage2_decode_owner(desc) == pte.PKVM_ID_GUEST
    assert pte.host_stage2_decode_gfn_meta(desc) == (PVM, gfn)
    (leaf,) = hyp.guest_leaves(PVM)
    assert (leaf.gfn, leaf.level) == (gfn, 3)
    assert pte.kvm_pgtable_stage2_pte_prot(leaf.pte) == PROT_RWX
    assert pte.pkvm_getstate(leaf.pte) == OWNED
    assert pte.kvm_pte_to_phys(leaf.pte) == pfn << 12
    rejects(hyp, "host_donate_guest", errno.EPERM, 51, gfn, PVM)
    rejects(hyp, "host_donate_guest", errno.EPERM, pfn, gfn + 1, PVM)
    rejects(hyp, "host_write", errno.EPERM, pfn)


@pytest.mark.parametrize("args, err", [
    ((50, 200, 9), errno.EINVAL),
    ((50, 200, NP), errno.EINVAL),
    ((50, IPA_PAGES, PVM), errno.ERANGE),  # after the host's checks: the stage-2 walk
    ((50, -1, PVM), errno.ERANGE),
    ((RAM, 200, PVM), errno.EPERM),
    ((PA_PAGES, 200, PVM), errno.EINVAL),
])
def test_donate_guest_rejections(hyp, args, err):
    rejects(hyp, "host_donate_guest", err, *args)


def test_donate_guest_refuses_poisoned_ipa(hyp):
    pfn, gfn = donated(hyp)
    assert hyp.host_force_reclaim_page_guest(pfn) == 0
    rejects(hyp, "host_donate_guest", errno.EPERM, pfn, gfn, PVM)
    assert hyp.host_donate_guest(pfn, gfn + 1, PVM) == 0
    assert view(hyp, pfn)[3] == (NOPAGE, OWNED)


def test_guest_share_unshare_host(hyp):
    pfn, gfn = donated(hyp)
    assert hyp.guest_write(PVM, gfn) == 0
    assert hyp.contents(pfn) == Contents("SECRET", PVM)
    assert hyp.guest_share_host(PVM, gfn) == 0
    assert view(hyp, pfn) == (SHARED_BORROWED, NOPAGE, NOPAGE, (NOPAGE, SHARED_OWNED))
    assert hyp.contents(pfn) == Contents("PUBLIC")
    assert identity_mapped(hyp, pfn)
    rejects(hyp, "guest_share_host", errno.EPERM, PVM, gfn)
    assert hyp.host_write(pfn) == 0
    assert pte.kvm_pte_valid(hyp.host_stage2_pte(pfn)[0])
    assert hyp.guest_write(PVM, gfn) == 0
    assert hyp.contents(pfn) == Contents("PUBLIC")
    assert hyp.guest_unshare_host(PVM, gfn) == 0
    assert view(hyp, pfn) == (NOPAGE, NOPAGE, NOPAGE, (NOPAGE, OWNED))
    assert pte.host_stage2_decode_gfn_meta(hyp.host_stage2_pte(pfn)[0]) == (PVM, gfn)
    rejects(hyp, "guest_unshare_host", errno.EPERM, PVM, gfn)


def test_guest_share_host_rejections(hyp):
    for call in ("guest_share_host", "guest_unshare_host"):
        rejects(hyp, call, errno.ENOENT, PVM, 7)
        rejects(hyp, call, errno.ERANGE, PVM, IPA_PAGES)  # the walk, before any entry
        rejects(hyp, call, errno.EINVAL, 5, 7)
    pfn, gfn = donated(hyp)
    memory.set_host_state(hyp.hyp_vmemmap, pfn, OWNED)
    rejects(hyp, "guest_share_host", errno.EPERM, PVM, gfn)
    memory.set_host_state(hyp.hyp_vmemmap, pfn, NOPAGE)
    assert hyp.guest_share_host(PVM, gfn) == 0
    memory.set_host_state(hyp.hyp_vmemmap, pfn, OWNED)
    rejects(hyp, "guest_unshare_host", errno.EPERM, PVM, gfn)
    memory.set_host_state(hyp.hyp_vmemmap, pfn, SHARED_BORROWED)
    assert hyp.guest_unshare_host(PVM, gfn) == 0
    assert hyp.host_force_reclaim_page_guest(pfn) == 0
    for call in ("guest_share_host", "guest_unshare_host"):
        rejects(hyp, call, EHWPOISON, PVM, gfn)
    assert hyp.vcpu_put(PVM) == 0 and hyp.start_teardown_vm(PVM) == 0
    pfn2 = 60
    rejects(hyp, "guest_share_host", errno.EINVAL, PVM, gfn)
    rejects(hyp, "host_donate_guest", errno.EINVAL, pfn2, 1, PVM)


def test_guest_share_host_on_block_is_e2big(hyp):
    assert hyp.host_share_guest(0, 0, BLOCK_PAGES, NP, PROT_RWX) == 0
    rejects(hyp, "guest_share_host", errno.E2BIG, NP, 3)
    rejects(hyp, "guest_unshare_host", errno.E2BIG, NP, 3)
    assert hyp.host_share_guest(600, 600, 1, NP, PROT_RWX) == 0
    rejects(hyp, "guest_share_host", errno.EPERM, NP, 600)


# -- forced reclaim ----------------------------------------------------------------------------------

def test_force_reclaim_zeroes_and_poisons(hyp):
    pfn, gfn = donated(hyp)
    assert hyp.guest_write(PVM, gfn) == 0
    assert hyp.host_force_reclaim_page_guest(pfn) == 0
    assert hyp.contents(pfn) == Contents("ZERO")
    assert view(hyp, pfn) == (OWNED, NOPAGE, NOPAGE, (NOPAGE, POISON))
    assert identity_mapped(hyp, pfn)
    (leaf,) = hyp.guest_leaves(PVM)
    assert leaf.gfn == gfn and pte.kvm_invalid_pte_type(leaf.pte) == 3
    rejects(hyp, "guest_write", errno.EFAULT, PVM, gfn)
    rejects(hyp, "host_force_reclaim_page_guest", errno.EAGAIN, pfn)
    assert hyp.host_write(pfn) == 0


def test_force_reclaim_rejections(hyp):
    rejects(hyp, "host_force_reclaim_page_guest", errno.EAGAIN, 70)
    assert hyp.host_donate_hyp(70, 1) == 0
    rejects(hyp, "host_force_reclaim_page_guest", errno.EPERM, 70)
    memory.set_host_state(hyp.hyp_vmemmap, 71, NOPAGE)
    rejects(hyp, "host_force_reclaim_page_guest", errno.EINVAL, 71)
    host_stage2_set_owner_metadata_locked(hyp, 72, 1, pte.PKVM_ID_GUEST,
                                          pte.host_stage2_encode_gfn_meta(PVM, 999))
    rejects(hyp, "host_force_reclaim_page_guest", errno.EPERM, 72)
    host_stage2_set_owner_metadata_locked(hyp, 73, 1, pte.PKVM_ID_GUEST,
                                          pte.host_stage2_encode_gfn_meta(9, 1))
    rejects(hyp, "host_force_reclaim_page_guest", errno.EAGAIN, 73)
    pfn, gfn = donated(hyp)
    assert hyp.guest_share_host(PVM, gfn) == 0
    rejects(hyp, "host_force_reclaim_page_guest", errno.EAGAIN, pfn)


# -- teardown -------------------------------------------------------------------------------------------

def test_teardown_sequence(hyp):
    donated(hyp, 50, 200)
    donated(hyp, 51, 201)
    donated(hyp, 52, 202)
    assert hyp.guest_write(PVM, 200) == 0 and hyp.guest_write(PVM, 201) == 0
    assert hyp.guest_share_host(PVM, 201) == 0
    assert hyp.host_force_reclaim_page_guest(52) == 0
    assert hyp.host_share_guest(60, 10, 1, NP, PROT_RWX) == 0

    rejects(hyp, "reclaim_dying_guest_page", errno.EINVAL, PVM, 200)
    rejects(hyp, "finalize_teardown_vm", errno.EINVAL, PVM)
    rejects(hyp, "start_teardown_vm", errno.EINVAL, 2)
    rejects(hyp, "start_teardown_vm", errno.EINVAL, PVM)  # a vCPU of it is loaded
    assert hyp.vcpu_put(PVM) == 0 and hyp.start_teardown_vm(PVM) == 0
    assert hyp.vm_state(PVM) == VmState.DYING
    rejects(hyp, "start_teardown_vm", errno.EINVAL, PVM)
    rejects(hyp, "guest_write", errno.EINVAL, PVM, 200)

    rejects(hyp, "reclaim_dying_guest_page", errno.ENOENT, PVM, 300)
    assert hyp.reclaim_dying_guest_page(PVM, 200) == 0
    assert hyp.contents(50) == Contents("ZERO")
    assert view(hyp, 50) == (OWNED, NOPAGE, NOPAGE, (NOPAGE, NOPAGE))
    assert identity_mapped(hyp, 50)
    shared_entry = hyp.host_stage2_pte(51)
    assert hyp.reclaim_dying_guest_page(PVM, 201) == 0
    assert hyp.contents(51) == Contents("PUBLIC")
    assert view(hyp, 51) == (OWNED, NOPAGE, NOPAGE, (NOPAGE, NOPAGE))
    assert hyp.host_stage2_pte(51) == shared_entry  # host SHARED_BORROWED -> OWNED keeps its entry
    poisoned = list(hyp.guest_leaves(PVM))
    assert len(poisoned) == 1
    before = hyp.snapshot()  # POISON: a success that changes nothing, the entry stays
    assert hyp.reclaim_dying_guest_page(PVM, 202) == 0 and hyp.snapshot() == before
    assert list(hyp.guest_leaves(PVM)) == poisoned
    assert hyp.finalize_teardown_vm(PVM) == 0
    assert hyp.vm_state(PVM) == VmState.TORN_DOWN
    for call in ("start_teardown_vm", "finalize_teardown_vm"):
        rejects(hyp, call, errno.EINVAL, PVM)
    rejects(hyp, "reclaim_dying_guest_page", errno.EINVAL, PVM, 200)

    assert hyp.vcpu_put(NP) == 0 and hyp.start_teardown_vm(NP) == 0
    rejects(hyp, "reclaim_dying_guest_page", errno.EPERM, NP, 10)
    assert hyp.host_unshare_guest(10, 1, NP) == 0
    assert hyp.finalize_teardown_vm(NP) == 0
    assert all(s == (OWNED, NOPAGE, NOPAGE, (NOPAGE, NOPAGE)) for s in hyp.page_states())
    # Every guest table went back to the pool: only host stage-2 and hyp stage-1 tables remain.
    live = {phys for pgt in (hyp.host_mmu, hyp.pkvm_pgtable) for phys in tables_of(hyp, pgt)}
    assert set(hyp.hyp_pool.pages) == live


def test_finalize_strands_pages(hyp):
    pfn, gfn = donated(hyp)
    assert hyp.vcpu_put(PVM) == 0 and hyp.start_teardown_vm(PVM) == 0
    assert hyp.finalize_teardown_vm(PVM) == 0
    assert view(hyp, pfn) == (NOPAGE, NOPAGE, NOPAGE, (NOPAGE, NOPAGE))
    assert pte.host_stage2_decode_gfn_meta(hyp.host_stage2_pte(pfn)[0]) == (PVM, gfn)
    rejects(hyp, "host_force_reclaim_page_guest", errno.EAGAIN, pfn)
    rejects(hyp, "hole_punch", errno.EINVAL, PVM, gfn)


# -- hole punch and accesses ----------------------------------------------------------------------------------

def test_hole_punch_protected_is_force_reclaim(hyp):
    pfn, gfn = donated(hyp)
    twin = hyp.clone()
    assert hyp.hole_punch(PVM, gfn) == 0
    assert twin.host_force_reclaim_page_guest(pfn) == 0
    assert hyp.snapshot() == twin.snapshot()
    rejects(hyp, "hole_punch", errno.ENOENT, PVM, gfn)
    rejects(hyp, "hole_punch", errno.ENOENT, PVM, gfn + 1)
    rejects(hyp, "hole_punch", errno.EINVAL, 5, gfn)


def test_hole_punch_shared_page_is_eagain(hyp):
    pfn, gfn = donated(hyp)
    assert hyp.guest_share_host(PVM, gfn) == 0
    rejects(hyp, "hole_punch", errno.EAGAIN, PVM, gfn)


def test_hole_punch_non_protected_unshares_whole_leaf(hyp):
    assert hyp.host_share_guest(512, 1024, BLOCK_PAGES, NP, PROT_R) == 0
    twin = hyp.clone()
    assert hyp.hole_punch(NP, 1024 + 300) == 0
    assert twin.host_unshare_guest(1024, BLOCK_PAGES, NP) == 0
    assert hyp.snapshot() == twin.snapshot()
    assert hyp.vcpu_put(NP) == 0 and hyp.start_teardown_vm(NP) == 0
    assert hyp.host_share_guest(3, 3, 1, NP, PROT_R) == -errno.EINVAL


def test_guest_write_permissions(hyp):
    assert hyp.host_share_guest(30, 100, 1, NP, PROT_R) == 0
    rejects(hyp, "guest_write", errno.EFAULT, NP, 100)
    rejects(hyp, "guest_write", errno.EFAULT, NP, 101)
    rejects(hyp, "guest_write", errno.EINVAL, 4, 100)
    assert hyp.host_share_guest(31, 101, 1, NP, PROT_W) == 0
    assert hyp.guest_write(NP, 101) == 0
    assert hyp.contents(31) == Contents("PUBLIC")


def test_host_write_faults_in_identity_map(hyp):
    assert hyp.host_write(9) == 0
    desc, level = hyp.host_stage2_pte(9)
    assert level == 3 and desc & 0b11 == 0b11
    assert pte.kvm_pte_to_phys(desc) == 9 << 12
    assert pte.kvm_pgtable_stage2_pte_prot(desc) == PROT_RWX
    assert hyp.contents(9) == Contents("HOST")
    before = hyp.snapshot()
    assert hyp.host_write(9) == 0
    assert hyp.snapshot() == before


# -- clone and snapshot ---------------------------------------------------------------------------------------

def test_clone_is_independent(hyp):
    donated(hyp)
    twin = hyp.clone()
    before = hyp.snapshot()
    assert twin.snapshot() == before
    assert twin.host_force_reclaim_page_guest(50) == 0
    assert twin.host_share_guest(0, 0, BLOCK_PAGES, NP, PROT_R) == 0
    assert twin.host_write(1000) == 0
    assert twin.vcpu_put(PVM) == 0 and twin.start_teardown_vm(PVM) == 0
    assert hyp.snapshot() == before
    assert twin.snapshot() != before
    hash(before)


def test_clone_shares_tables_copy_on_write(hyp):
    donated(hyp)
    twin = hyp.clone()
    shared = [phys for phys in hyp.hyp_pool.pages
              if hyp.hyp_pool.pages[phys] is twin.hyp_pool.pages[phys]]
    assert shared == list(hyp.hyp_pool.pages)
    before, twin_before = hyp.snapshot(), twin.snapshot()
    assert hyp.host_share_hyp(7) == 0 and hyp.host_write(7) == 0  # the original writes first
    assert twin.snapshot() == twin_before
    assert twin.host_force_reclaim_page_guest(50) == 0  # then the clone
    hyp_after = hyp.snapshot()
    assert hyp_after != before and twin.snapshot() != twin_before
    third = twin.clone()
    assert third.host_share_hyp(8) == 0
    assert hyp.snapshot() == hyp_after


@given(st.lists(st.sampled_from(["host_share_hyp", "host_write", "host_donate_hyp",
                                 "host_donate_guest", "host_force_reclaim_page_guest"]),
                max_size=6), st.sampled_from([0, 1, 512]))
@settings(max_examples=60, deadline=None)
def test_identical_is_snapshot_equality(names, pfn):
    h = Hypervisor(RAM, MMIO)
    h.create_vm(False)
    h.create_vm(True)
    for name in names:
        twin = h.clone()
        args = {"host_donate_hyp": (pfn, 1), "host_donate_guest": (pfn, 3, PVM)}.get(name, (pfn,))
        getattr(twin, name)(*args)
        assert twin.identical(h) == (twin.snapshot() == h.snapshot()) == h.identical(twin)
        h = twin


@pytest.mark.parametrize("call, args", [
    ("host_share_guest", (0, 0, 1, NP, PROT_R)), ("host_donate_guest", (0, 0, PVM)),
    ("guest_write", (NP, 0)), ("guest_share_host", (PVM, 0)), ("guest_unshare_host", (PVM, 0))])
def test_a_call_acting_for_a_vcpu_needs_one_loaded(hyp, call, args):
    """hyp-main.c: no loaded vCPU of the VM (pkvm_get_loaded_hyp_vcpu() NULL) is -EINVAL before
    any other check; a guest runs only on a loaded vCPU."""
    vm = args[3] if call == "host_share_guest" else args[2] if call == "host_donate_guest" else args[0]
    assert hyp.vcpu_put(vm) == 0
    rejects(hyp, call, errno.EINVAL, *args)
    assert hyp.vcpu_load(vm) == 0
    assert getattr(hyp, call)(*args) != -errno.EINVAL


def test_narrowed_counters_overflow():
    h = Hypervisor(4, 0, pin_max=2, count_max=2)
    for vm in range(3):
        h.create_vm(False)
        h.vcpu_load(vm)
    assert h.host_share_hyp(0) == 0
    assert h.hyp_pin_shared_mem(0) == 0 and h.hyp_pin_shared_mem(0) == 0
    rejects(h, "hyp_pin_shared_mem", errno.EBUSY, 0)
    assert h.host_share_guest(1, 0, 1, 0, PROT_R) == 0
    assert h.host_share_guest(1, 0, 1, 1, PROT_R) == 0
    rejects(h, "host_share_guest", errno.EBUSY, 1, 0, 1, 2, PROT_R)


def test_wrong_vm_kind_is_einval(hyp):
    rejects(hyp, "host_share_guest", errno.EINVAL, 30, 100, 1, PVM, PROT_R)
    rejects(hyp, "host_unshare_guest", errno.EINVAL, 100, 1, PVM)
    rejects(hyp, "host_donate_guest", errno.EINVAL, 30, 100, NP)


def test_finalize_of_a_running_or_unknown_vm_is_einval(hyp):
    rejects(hyp, "finalize_teardown_vm", errno.EINVAL, NP)
    rejects(hyp, "finalize_teardown_vm", errno.EINVAL, PVM)
    rejects(hyp, "finalize_teardown_vm", errno.EINVAL, 2)


# Repeats weight the draws towards arguments that can succeed.
PFNS = [0, 0, 1, 1, 512, 512, 513, RAM - 1, RAM, PA_PAGES - 1]
GFNS = [0, 0, 1, 1, 512, IPA_PAGES - 1]
pfn_s, gfn_s = st.sampled_from(PFNS), st.sampled_from(GFNS)
vm_s = st.sampled_from([NP, NP, PVM, PVM, 2])
nr_s = st.sampled_from([1, 1, 1, 512, 512, 0, 2])
CALLS = {
    "host_share_hyp": (pfn_s,),
    "host_unshare_hyp": (pfn_s,),
    "hyp_pin_shared_mem": (pfn_s,),
    "hyp_unpin_shared_mem": (pfn_s,),
    "host_donate_hyp": (pfn_s, nr_s),
    "hyp_donate_host": (pfn_s, nr_s),
    "host_share_ffa": (pfn_s, nr_s),
    "host_unshare_ffa": (pfn_s, nr_s),
    "host_share_guest": (pfn_s, gfn_s, nr_s, vm_s, st.sampled_from([PROT_R, PROT_W, PROT_RWX, PROT_RWX, 8])),
    "host_unshare_guest": (gfn_s, nr_s, vm_s),
    "host_donate_guest": (pfn_s, gfn_s, vm_s),
    "guest_share_host": (vm_s, gfn_s),
    "guest_unshare_host": (vm_s, gfn_s),
    "host_force_reclaim_page_guest": (pfn_s,),
    "reclaim_dying_guest_page": (vm_s, gfn_s),
    "hole_punch": (vm_s, gfn_s),
    "guest_write": (vm_s, gfn_s),
    "host_write": (pfn_s,),
}
TEARDOWN = ["start_teardown_vm", "finalize_teardown_vm"]
WATCHED = [0, 1, 2, 511, 512, 513, 700, RAM - 1]


class ReferenceWalk(RuleBasedStateMachine):
    """Random call sequences: failing calls change nothing, and the invariants hold."""

    def __init__(self):
        super().__init__()
        self.h = Hypervisor(RAM, MMIO)
        self.h.create_vm(False)
        self.h.create_vm(True)

    def call(self, name, args):
        before = self.h.snapshot()
        ret = getattr(self.h, name)(*args)
        assert ret <= 0
        if ret:
            assert self.h.snapshot() == before, (name, args, ret)
        return ret

    shared = Bundle("shared")
    donated = Bundle("donated")

    @rule(target=shared, pfn=pfn_s, gfn=gfn_s, nr=nr_s)
    def share_np(self, pfn, gfn, nr):
        ok = self.call("host_share_guest", (pfn, gfn, nr, NP, PROT_RWX)) == 0
        return (gfn, nr) if ok else multiple()

    @rule(leaf=shared, name=st.sampled_from(["host_unshare_guest", "hole_punch", "guest_write"]))
    def use_shared(self, leaf, name):
        gfn, nr = leaf
        self.call(name, (gfn, nr, NP) if name == "host_unshare_guest" else (NP, gfn))

    @rule(target=donated, pfn=pfn_s, gfn=gfn_s)
    def donate_pvm(self, pfn, gfn):
        ok = self.call("host_donate_guest", (pfn, gfn, PVM)) == 0
        return (pfn, gfn) if ok else multiple()

    @rule(page=donated, name=st.sampled_from(["guest_share_host", "guest_unshare_host", "guest_share_host",
                                              "guest_unshare_host", "guest_write",
                                              "reclaim_dying_guest_page", "hole_punch",
                                              "host_force_reclaim_page_guest"]))
    def use_donated(self, page, name):
        pfn, gfn = page
        self.call(name, (pfn,) if name == "host_force_reclaim_page_guest" else (PVM, gfn))

    @rule(name=st.sampled_from(TEARDOWN), vm=vm_s)
    def vm_teardown(self, name, vm):
        """The host discipline: finalize only a VM whose stage-2 holds no valid leaf."""
        if name == "finalize_teardown_vm" and vm < self.h.nr_vms() and any(
                pte.kvm_pte_valid(leaf.pte) for leaf in self.h.guest_leaves(vm)):
            return
        self.call(name, (vm,))

    @invariant()
    def invariants_hold(self):
        """A few of the contract's invariants, read back from the tables."""
        h = self.h
        for pfn in WATCHED:
            s = h.page_state(pfn)
            desc, _ = h.host_stage2_pte(pfn)
            assert (s.host == NOPAGE) == (desc != 0 and not pte.kvm_pte_valid(desc))
            if s.host == OWNED:
                assert s.hyp == NOPAGE and all(g in (NOPAGE, POISON) for g in s.guests)
            page = h.hyp_page(pfn)
            assert h.hyp_stage1_maps(pfn) == (s.hyp == OWNED or (s.hyp == SHARED_BORROWED and page.refcount > 0))
            assert page.refcount == 0 or s.hyp == SHARED_BORROWED
            borrowers = sum(g == SHARED_BORROWED for g in s.guests)
            assert (page.host_share_guest_count > 0) == (borrowers > 0)
            if s.host == SHARED_OWNED:
                assert [s.hyp == SHARED_BORROWED, page.host_share_guest_count > 0,
                        s.ffa == SHARED_BORROWED].count(True) == 1
            if s.host == SHARED_BORROWED:
                assert s.guests[PVM] == SHARED_OWNED


def add_call_rule(name, strategies):
    def do(self, args):
        self.call(name, args)
    do.__name__ = name
    setattr(ReferenceWalk, name, rule(args=st.tuples(*strategies))(do))


for _name, _strategies in CALLS.items():
    add_call_rule(_name, _strategies)

ReferenceWalk.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_reference_walk = ReferenceWalk.TestCase
