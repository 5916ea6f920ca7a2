"""The abstraction function (model/profiles/pkvm/abstraction.py): reference page tables read back
as model states."""

import inspect

import pytest

from model.profile import Unrepresentable
from model.profiles.pkvm import abstraction
from model.profiles.pkvm.abstraction import abstract, invoke, reference_for, signature_mismatches
from model.references.pkvm import Hypervisor
from model.references.pkvm import pgtable, pte
from model.references.pkvm.mem_protect import host_stage2_idmap_locked
from model.profiles.pkvm.states import (
    BLOCK_PAGES, NOPAGE, OWNED, POISON, PROT_RWX, SHARED_BORROWED, SHARED_OWNED, Annotation,
    Config, Contents, Leaf, Life, Owner, PteKind, initial_state,
)
from model.transitions import Transition
from tests.pkvm.helpers import PKVM


def Call(name, args):
    return PKVM.call(name, args)


CONFIGS = [Config(), Config(ram=3, mmio=0, guests=()), Config(ram=16, mmio=2, guests=(True, False) * 2),
           Config(ram=1024, mmio=1, guests=(False, True, False, True))]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.ram}x{len(c.guests)}")
def test_fresh_reference_is_the_initial_state(config):
    assert abstract(reference_for(config), config) == initial_state(config)


def test_every_model_transition_is_a_reference_call_and_back():
    assert signature_mismatches(PKVM.transitions) == []


def test_a_transition_missing_from_the_reference_is_caught():
    extra = Transition("host_reboot", "host", "hyp", ("pfn",), lambda s, pfn: iter(()), None, None, "")
    transitions = {**PKVM.transitions, "host_reboot": extra}
    assert signature_mismatches(transitions) == ["host_reboot: in the model, not in the reference"]


def test_a_reference_call_missing_from_the_model_is_caught():
    transitions = {k: t for k, t in PKVM.transitions.items() if k != "hole_punch"}
    assert signature_mismatches(transitions) == ["hole_punch: in the reference, not in the model"]


def test_a_reference_call_with_other_parameters_is_caught(monkeypatch):
    monkeypatch.setattr(Hypervisor, "host_write", lambda self, gfn: 0)
    assert signature_mismatches(PKVM.transitions) == [
        "host_write: model parameters ('pfn',), reference ('gfn',)"]


def test_every_public_reference_method_is_classified():
    public = {name for name, _ in inspect.getmembers(Hypervisor, inspect.isfunction)
              if not name.startswith("_")}
    assert public == set(Hypervisor.CALLS) | set(Hypervisor.INTROSPECTION) | {"create_vm"}


def test_invoke_matches_arguments_by_name(monkeypatch):
    seen = []
    monkeypatch.setattr(Hypervisor, "host_share_guest",
                        lambda self, vm, prot, pfn, nr, gfn: seen.append((vm, prot, pfn, nr, gfn)) or 0)
    monkeypatch.setattr(abstraction, "_ORDERS", {})
    invoke(reference_for(Config()), Call("host_share_guest", (0, 1, 1, 1, 6)))
    assert seen == [(1, 6, 0, 1, 1)]


def test_annotations_leaves_and_contents_read_back():
    config = Config(ram=1024, mmio=1, guests=(True, False))
    hv = reference_for(config)
    assert hv.vcpu_load(0) == 0 and hv.vcpu_load(1) == 0
    assert hv.host_donate_guest(3, 77, 0) == 0
    assert hv.guest_write(0, 77) == 0
    assert hv.host_donate_hyp(4, 1) == 0
    assert hv.host_share_guest(512, 1024, BLOCK_PAGES, 1, 6) == 0
    assert hv.host_share_hyp(5) == 0 and hv.hyp_pin_shared_mem(5) == 0
    assert hv.host_write(6) == 0
    s = abstract(hv, config)
    assert (s.host[3], s.pte_kind[3], s.pte_type[3], s.pte_owner[3], s.pte_handle[3], s.pte_gfn[3]) == (
        NOPAGE, PteKind.ANNOTATED, Annotation.DONATION, Owner.GUEST, 0, 77)
    assert s.contents[3] == Contents.SECRET_BASE + 0
    assert (s.pte_owner[4], s.hyp_mapped[4], s.pte_handle[4], s.pte_gfn[4]) == (Owner.HYP, True, 0, 0)
    assert (s.host[5], s.pins[5], s.hyp_mapped[5]) == (SHARED_OWNED, 1, True)
    assert (s.pte_kind[6], s.contents[6]) == (PteKind.VALID, Contents.HOST)
    assert s.s2[0] == (Leaf(77, 1, 1, OWNED, PROT_RWX, 3),)
    assert s.s2[1] == (Leaf(1024, BLOCK_PAGES, BLOCK_PAGES, SHARED_BORROWED, 6, 512),)
    assert s.count[512] == s.count[1023] == 1
    assert hv.host_force_reclaim_page_guest(3) == 0
    s = abstract(hv, config)
    assert s.s2[0] == (Leaf(77, 1, 1, POISON, 0, 0),)
    assert (s.host[3], s.pte_kind[3], s.contents[3]) == (OWNED, PteKind.VALID, Contents.ZERO)
    assert hv.vcpu_put(0) == 0
    assert hv.start_teardown_vm(0) == 0 and hv.finalize_teardown_vm(0) == 0
    assert abstract(hv, config).life == (Life.TORN_DOWN, Life.RUNNING)


def test_a_non_identity_host_mapping_is_unrepresentable():
    hv = reference_for(Config())
    pgtable.kvm_pgtable_map(hv.host_mmu, 0, pte.PAGE_SIZE, 1 << pte.PAGE_SHIFT, 0)
    with pytest.raises(Unrepresentable, match="not a page-sized identity mapping"):
        abstract(hv)


def test_a_host_mapping_with_other_permissions_is_unrepresentable():
    hv = reference_for(Config())
    pgtable.kvm_pgtable_map(hv.host_mmu, 0, pte.PAGE_SIZE, 0, pte.stage2_set_prot_attr(pte.KVM_PGTABLE_PROT_R))
    with pytest.raises(Unrepresentable, match="PKVM_HOST_MEM_PROT"):
        abstract(hv)


def test_a_mapping_beyond_the_machine_is_unrepresentable():
    hv = reference_for(Config())
    host_stage2_idmap_locked(hv, 1000)
    with pytest.raises(Unrepresentable, match="beyond RAM and MMIO"):
        abstract(hv)


def test_a_leftover_locked_guest_entry_is_unrepresentable():
    hv = reference_for(Config())
    pgtable.kvm_pgtable_stage2_annotate(hv.vm_table[0].pgt, 0, pte.PAGE_SIZE,
                                        pte.KVM_INVALID_PTE_TYPE_LOCKED, 0)
    with pytest.raises(Unrepresentable, match="neither a valid leaf nor POISONED"):
        abstract(hv)


def test_a_vm_table_unlike_the_config_is_unrepresentable():
    hv = reference_for(Config(guests=(False, True)))
    with pytest.raises(Unrepresentable, match="protected flags"):
        abstract(hv, Config(guests=(True, False)))
