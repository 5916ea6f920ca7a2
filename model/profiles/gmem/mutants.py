"""Seeded bugs: mistakes a KVM developer could make in guest_memfd.c, kvm_main.c or the fault
path. Each is an extension of the profile (`model/extensions.py`) that drops a labelled check
or a write; each must be caught by an `always` property (`pkvm-model mutants --profile gmem`).
"""

from __future__ import annotations

from model.profile import Mutant

CATALOG: list[Mutant] = []
LEAF_FIELDS = ("lkind", "lfile", "lidx")


def mutant(transition: str):
    def register(fn):
        CATALOG.append(Mutant(fn.__name__, " ".join(fn.__doc__.split()), transition, fn))
        return fn
    return register


def _without(fields):
    """A `set_where` that drops the writes of some fields (a forgotten zap, unmap or unbind)."""
    def set_where(s, field, pred, value_of):
        if field not in fields:
            s.set_where(field, pred, value_of)
    return {"set_where": set_where}


@mutant("punch")
def punch_no_invalidate(ext):
    """kvm_gmem_punch_hole() truncates without kvm_gmem_invalidate_begin(): guest leaves stay on
    the freed pages"""
    ext.edit("punch", replace=_without(LEAF_FIELDS))


@mutant("punch")
def punch_keeps_host_ptes(ext):
    """the punch frees the folios without unmapping them from host VMAs (no
    unmap_mapping_range in truncate)"""
    ext.edit("punch", replace=_without(("hpte",)))
    ext.config(vm="x86")  # host PTEs need INIT_SHARED files: not on SW_PROTECTED VMs


@mutant("guest_read")
def fault_skips_zeroing(ext):
    """kvm_gmem_get_pfn() hands out a folio that is not uptodate without clear_highpage(): the
    guest reads stale memory"""
    ext.drop_write("guest_read", "page")


@mutant("guest_write")
def fault_skips_kind_check(ext):
    """kvm_mmu_faultin_pfn() forgets the attribute check: an access of the wrong kind is mapped
    instead of exiting"""
    ext.drop_check("guest_write", "kvm_mmu_faultin_pfn_kind")


@mutant("guest_read")
def fault_ignores_gmem_only(ext):
    """fault_from_gmem() forgets KVM_MEMSLOT_GMEM_ONLY (the 6.17 rule): a shared fault on a
    GMEM_ONLY slot maps the userspace page instead of the guest_memfd page"""
    ext.edit("guest_read", replace={"sonly": lambda s, x: 0})


@mutant("close_file")
def release_keeps_leaves(ext):
    """kvm_gmem_release() nulls slot->gmem.file but never invalidates: leaves keep mapping the
    file's pages"""
    ext.edit("close_file", replace=_without(LEAF_FIELDS))


@mutant("delete_slot")
def delete_without_unbind(ext):
    """kvm_free_memslot() forgets kvm_gmem_unbind(): the file keeps a binding to a freed slot"""
    ext.edit("delete_slot", replace=_without(("bind",)))


@mutant("bind_slot")
def bind_overlapping_indices(ext):
    """kvm_gmem_bind() does not check the xarray range is free: two slots bind one index"""
    ext.drop_check("bind_slot", "kvm_gmem_bind_bound")


@mutant("host_write")
def host_fault_ignores_init_shared(ext):
    """kvm_gmem_fault_user_mapping() drops the INIT_SHARED test: the host maps and writes pages
    of private-by-default files"""
    ext.drop_check("host_write", "kvm_gmem_fault_user_mapping_shared")


@mutant("set_attributes")
def attributes_without_zap(ext):
    """kvm_vm_set_mem_attributes() updates the xarray without unmapping the old kind"""
    ext.edit("set_attributes", replace=_without(LEAF_FIELDS))


@mutant("close_vm")
def vm_destroyed_with_files(ext):
    """closing the VM fd destroys the VM although guest_memfds still hold references"""
    ext.edit("close_vm", replace={"forall_file": lambda s, pred: s.Or(True)})


@mutant("bind_slot")
def bind_past_file_size(ext):
    """kvm_gmem_bind() forgets offset + size > i_size: a slot reaches past the file's end"""
    ext.drop_check("bind_slot", "kvm_gmem_bind_size")


MUTANTS = {m.name: m for m in CATALOG}
