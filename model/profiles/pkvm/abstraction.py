"""The abstraction function: a reference hypervisor's page tables and metadata, read as a model State.

This is the only place where the reference hypervisor (`model/references/pkvm/`, page-table level) and
the model (`model/states.py`, one tuple per page field) meet. Three maps, each in one direction:

- `reference_for(config)`: the reference machine a model `Config` describes (`Hypervisor(ram,
  mmio)` with the config's counter widths, then `create_vm` per guest, handles in order);
- `invoke(hv, call)`: a model `Call` made on the reference (arguments matched by parameter name);
- `abstract(hv)`: the model `State` the reference is in, read back through its introspection API
  only (host stage-2 leaves, `struct hyp_page`, hyp stage-1 leaves, the FF-A record, page
  contents, the VM table, guest stage-2 leaves). Nothing is cached on the reference side.

Field by field, for every pfn in [0, ram + mmio + nomap):

| model field | read from |
|---|---|
| host, hyp, pins, count | `hyp_page(pfn)`: `__host_state`, `__hyp_state_comp ^ 0b11`, refcount, `host_share_guest_count` (RAM only; MMIO and no-map pages have no `struct hyp_page` in the reference and read the initial values) |
| ffa | `ffa_state(pfn)` (RAM only) |
| pte_kind, pte_type, pte_owner, pte_handle, pte_gfn | host stage-2 leaf of pfn: zero, a valid identity page, or an invalid annotated entry (type 63:60, owner 3:1, handle meta 15:0, gfn meta 55:16) |
| hyp_mapped | a valid hyp stage-1 leaf at hyp VA = PA of pfn |
| contents | `contents(pfn)` (RAM only) |
| shared | `hyp_shared_pfn_count(pfn)`: the host kernel's `hyp_shared_pfns` record (0 without one) |
| life | `vm_state(vm)` |
| refs | `vm_refcount(vm)` (checked against the loaded vCPUs, `vm_loaded_vcpus(vm)`) |
| mc | `vm_memcache_pages(vm)`: its memcache's `nr_pages` (checked against the list from `head`) |
| maps | `host_mappings(vm)`: the host kernel's `pkvm_mappings` of the VM, `Mapping(gfn, nr_pages, pfn)` by gfn |
| s2 | `guest_leaves(vm)`: a valid level-3 leaf is `Leaf(gfn, 1, 1, state, prot, pfn)`, a valid level-2 block `Leaf(gfn, 512, 512, ...)`, a POISONED entry `Leaf(gfn, 1, 1, POISON, 0, 0)` |

Anything the model has no words for (a host stage-2 entry that is not an identity map, a page
mapped beyond the machine, a LOCKED entry left behind, an unknown page state, a VM table that
does not match the config) raises `Unrepresentable`: the conformance layer reports it as a
disagreement, since no model state describes such a machine.
"""

from __future__ import annotations

import inspect

from model.references.pkvm import Hypervisor
from model.references.pkvm import pte as rpte
from model.references.pkvm.memcache import HypPanic
from model.profile import Unrepresentable
from model.profiles.pkvm.states import (
    BLOCK_PAGES, PAGE_FIELDS, PAGE_INIT, POISON, Annotation, Config, Contents, Leaf, Life,
    Mapping, Owner, PageState, PteKind, Region, State,
)
from model.profiles.pkvm.transitions import HYP_PANIC, PKVM
from model.transitions import Call

_LEVEL_PAGES = {3: 1, 2: BLOCK_PAGES}  # guest leaf level -> pages it maps
_CONTENTS = {"ZERO": Contents.ZERO, "HOST": Contents.HOST, "HYP": Contents.HYP,
             "PUBLIC": Contents.PUBLIC}
_LIFE = {life.name: life for life in Life}
_STATES = tuple(PageState)  # indexed by value: OWNED 0 .. POISON 4
_LEAF_ATTRS = ~(rpte.KVM_PTE_ADDR_MASK | rpte.KVM_PTE_TYPE | rpte.KVM_PTE_VALID)
_HOST_ATTRS = rpte.stage2_set_prot_attr(rpte.KVM_PGTABLE_PROT_RWX)  # PKVM_HOST_MEM_PROT


# -- Config -> reference ------------------------------------------------------------------------

def reference_for(config: Config) -> Hypervisor:
    """A fresh reference machine for the config: RAM, MMIO, counter widths, one VM per guest."""
    hv = Hypervisor(config.ram, config.mmio, pin_max=config.pin_max, count_max=config.count_max,
                    nomap_pages=config.nomap, memcaches=config.memcache > 0,
                    host_records=config.host_records)
    for handle, protected in enumerate(config.guests):
        got = hv.create_vm(protected, nr_vcpus=config.vcpus)
        if got != handle:
            raise Unrepresentable(f"create_vm returned handle {got}, expected {handle}")
    return hv


# -- Call -> reference method ---------------------------------------------------------------------

def _reference_order(name: str, model_params: tuple) -> tuple[int, ...] | None:
    """Positions of the model's arguments in the reference method's parameter list."""
    if name not in Hypervisor.CALLS or not hasattr(Hypervisor, name):
        return None
    ref_params = tuple(inspect.signature(getattr(Hypervisor, name)).parameters)[1:]
    if sorted(ref_params) != sorted(model_params):
        return None
    return tuple(model_params.index(p) for p in ref_params)


def signature_mismatches(transitions: dict) -> list[str]:
    """Calls the model and the reference do not both have, with the same parameter names."""
    out = []
    for name in sorted(set(transitions) | set(Hypervisor.CALLS)):
        if name not in transitions:
            out.append(f"{name}: in the reference, not in the model")
        elif name not in Hypervisor.CALLS or not hasattr(Hypervisor, name):
            out.append(f"{name}: in the model, not in the reference")
        elif _reference_order(name, transitions[name].params) is None:
            ref = tuple(inspect.signature(getattr(Hypervisor, name)).parameters)[1:]
            out.append(f"{name}: model parameters {transitions[name].params}, reference {ref}")
    return out


_ORDERS: dict[tuple, tuple | None] = {}


def invoke(hv: Hypervisor, call: Call) -> int:
    """Make a model call on the reference; its errno (0 or negative), HYP_PANIC when the
    reference's hypervisor panics."""
    params = call.params
    if not params and call.name in PKVM.transitions:  # a call written without names
        params = PKVM.transitions[call.name].params
    key = (call.name, params)
    order = _ORDERS.get(key, False)
    if order is False:
        order = _reference_order(call.name, params)
        if order is None:
            raise KeyError(f"the reference has no call matching {call.name}")
        order = _ORDERS[key] = None if order == tuple(range(len(order))) else order
    method = getattr(hv, call.name)
    try:
        return method(*(call.args if order is None else [call.args[i] for i in order]))
    except HypPanic:
        return HYP_PANIC


# -- reference -> State ---------------------------------------------------------------------------

def _host_entry(pfn: int, level: int, pte: int) -> tuple:
    """(pte_kind, pte_type, pte_owner, pte_handle, pte_gfn) of one host stage-2 entry."""
    if rpte.kvm_pte_valid(pte):
        if level != rpte.KVM_PGTABLE_LAST_LEVEL or rpte.kvm_pte_to_phys(pte) != pfn << rpte.PAGE_SHIFT:
            raise Unrepresentable(f"host stage-2 maps pfn {pfn} with {pte:#x} at level {level}: "
                                  "not a page-sized identity mapping")
        if pte & _LEAF_ATTRS != _HOST_ATTRS:
            raise Unrepresentable(f"host stage-2 maps pfn {pfn} with {pte:#x}: not RWX without "
                                  "software bits (PKVM_HOST_MEM_PROT)")
        return (PteKind.VALID, Annotation.NONE, Owner.HOST, 0, 0)
    kind = rpte.kvm_invalid_pte_type(pte)
    if kind not in (Annotation.DONATION, Annotation.POISONED, Annotation.LOCKED):
        raise Unrepresentable(f"host stage-2 entry of pfn {pfn} is {pte:#x}: unknown annotation")
    owner = rpte.host_stage2_decode_owner(pte)
    if owner not in (Owner.HOST, Owner.HYP, Owner.GUEST):
        raise Unrepresentable(f"host stage-2 entry of pfn {pfn} names owner id {owner}")
    handle, gfn = rpte.host_stage2_decode_gfn_meta(pte)
    return (PteKind.ANNOTATED, Annotation(kind), Owner(owner), handle, gfn)


def _guest_leaf(vm: int, gfn: int, level: int, pte: int) -> Leaf:
    if rpte.kvm_pte_valid(pte):
        size = _LEVEL_PAGES.get(level)
        if size is None:
            raise Unrepresentable(f"vm{vm} stage-2 has a level-{level} leaf at gfn {gfn}")
        state, prot = rpte.pkvm_getstate(pte), rpte.kvm_pgtable_stage2_pte_prot(pte)
        if pte & _LEAF_ATTRS != rpte.pkvm_mkstate(rpte.stage2_set_prot_attr(prot), state):
            raise Unrepresentable(f"vm{vm} stage-2 leaf at gfn {gfn} is {pte:#x}: attribute bits "
                                  "beyond permissions and page state")
        return Leaf(gfn, size, size, _STATES[state], prot, rpte.kvm_pte_to_phys(pte) >> rpte.PAGE_SHIFT)
    if rpte.kvm_invalid_pte_type(pte) == rpte.KVM_GUEST_INVALID_PTE_TYPE_POISONED and level == 3:
        return Leaf(gfn, 1, 1, POISON, 0, 0)
    raise Unrepresentable(f"vm{vm} stage-2 entry at gfn {gfn} (level {level}) is {pte:#x}: "
                          "neither a valid leaf nor POISONED")


def abstract(hv: Hypervisor, config: Config | None = None) -> State:
    """The model state of a reference machine (checked against config's machine when given)."""
    ram = hv.nr_ram_pages
    n = ram + hv.nr_mmio_pages + hv.nr_nomap_pages
    if config is not None:
        _check_machine(hv, config)
    columns = {f: [PAGE_INIT[f]] * n for f in PAGE_FIELDS}
    host, hyp, ffa = columns["host"], columns["hyp"], columns["ffa"]
    pins, count, contents = columns["pins"], columns["count"], columns["contents"]
    for pfn in range(ram):
        page = hv.hyp_page(pfn)
        if page.host_state_raw > 3 or page.raw & 0xFF0000:
            raise Unrepresentable(f"struct hyp_page of pfn {pfn} is {page.raw:#x}: "
                                  "bad host state or non-zero order")
        if page.hyp_state_comp > 3:
            raise Unrepresentable(f"struct hyp_page of pfn {pfn}: hyp state comp {page.hyp_state_comp}")
        host[pfn] = _STATES[page.host_state_raw]
        hyp[pfn] = _STATES[page.hyp_state_comp ^ 0b11]
        pins[pfn] = page.refcount
        count[pfn] = page.host_share_guest_count
        ffa[pfn] = _STATES[hv.ffa_state(pfn)]
        c = hv.contents(pfn)
        contents[pfn] = Contents.SECRET_BASE + c.vm if c.kind == "SECRET" else _CONTENTS[c.kind]
    shared = columns["shared"]
    for pfn in range(n):
        shared[pfn] = hv.hyp_shared_pfn_count(pfn)
    if any(hv.hyp_shared_pfn_count(pfn) for pfn in range(n, n + 2)):
        raise Unrepresentable("the host records a share of a pfn beyond RAM, MMIO and no-map")
    entry_fields = [columns[f] for f in ("pte_kind", "pte_type", "pte_owner", "pte_handle", "pte_gfn")]
    for pfn, level, pte in hv.host_stage2_leaves():
        if rpte.kvm_granule_size(level) != rpte.PAGE_SIZE or pfn >= n:
            raise Unrepresentable(f"host stage-2 has a level-{level} entry {pte:#x} at pfn {pfn}"
                                  f"{' (beyond RAM and MMIO)' if pfn >= n else ''}")
        for column, value in zip(entry_fields, _host_entry(pfn, level, pte)):
            column[pfn] = value
    mapped = columns["hyp_mapped"]
    for pfn, level, pte in hv.hyp_stage1_leaves():
        if not rpte.kvm_pte_valid(pte):
            raise Unrepresentable(f"hyp stage-1 entry {pte:#x} at pfn {pfn} is not valid")
        if (level != rpte.KVM_PGTABLE_LAST_LEVEL or pfn >= n
                or rpte.kvm_pte_to_phys(pte) != pfn << rpte.PAGE_SHIFT
                or pte & _LEAF_ATTRS != rpte.PAGE_HYP):
            raise Unrepresentable(f"hyp stage-1 maps VA of pfn {pfn} with {pte:#x} at level {level}")
        mapped[pfn] = True
    life, s2, refs, mc, maps = [], [], [], [], []
    for vm in range(hv.nr_vms()):
        life.append(_LIFE[hv.vm_state(vm).name])
        if hv.vm_refcount(vm) != hv.vm_loaded_vcpus(vm):
            raise Unrepresentable(f"vm{vm} refcount {hv.vm_refcount(vm)} with "
                                  f"{hv.vm_loaded_vcpus(vm)} vCPU(s) loaded")
        refs.append(hv.vm_refcount(vm))
        try:
            mc.append(hv.vm_memcache_pages(vm))
        except ValueError as err:
            raise Unrepresentable(str(err)) from err
        s2.append(tuple(_guest_leaf(vm, leaf.gfn, leaf.level, leaf.pte) for leaf in hv.guest_leaves(vm)))
        maps.append(tuple(Mapping(*m) for m in hv.host_mappings(vm)))
    return State(*[tuple(columns[f]) for f in PAGE_FIELDS], life=tuple(life), s2=tuple(s2),
                 refs=tuple(refs), mc=tuple(mc), maps=tuple(maps))


def _check_machine(hv: Hypervisor, config: Config) -> None:
    if (hv.nr_ram_pages, hv.nr_mmio_pages, hv.nr_nomap_pages) != (config.ram, config.mmio, config.nomap):
        raise Unrepresentable(f"reference has {hv.nr_ram_pages} RAM, {hv.nr_mmio_pages} MMIO and "
                              f"{hv.nr_nomap_pages} no-map pages, config {config.ram}, "
                              f"{config.mmio} and {config.nomap}")
    vcpus = {hv.vm_nr_vcpus(vm) for vm in range(hv.nr_vms())}
    if vcpus - {config.vcpus}:
        raise Unrepresentable(f"reference VMs have {sorted(vcpus)} vCPUs, config {config.vcpus}")
    kinds = tuple(bool(hv.vm_is_protected(vm)) for vm in range(hv.nr_vms()))
    if kinds != tuple(config.guests):
        raise Unrepresentable(f"reference VMs (protected flags) {kinds}, config {tuple(config.guests)}")
    for pfn in (0, config.ram - 1, config.ram, config.ram + config.mmio, config.pages):
        want = config.region(pfn)
        if Region[hv.region(pfn).name] != want:
            raise Unrepresentable(f"pfn {pfn} is {hv.region(pfn).name} in the reference, "
                                  f"{want.name} in the model")
