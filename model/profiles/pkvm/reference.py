"""The pKVM profile's conformance adapter: the reference hypervisor as the machinery sees it.

`abstraction.py` maps configurations, calls and states between the model and
`model/references/pkvm/`; this adds what conformance asks beyond that: the caller discipline
judged on the reference, the machines and argument values of the random walks, and the calls
likely to succeed in a state (so that walks go deep).
"""

from __future__ import annotations

from model.profiles.pkvm.abstraction import abstract, invoke, reference_for, signature_mismatches
from model.profiles.pkvm.presenter import machine_text
from model.profiles.pkvm.states import (
    BLOCK_PAGES, IPA_PAGES, PA_PAGES, POISON, PROT_R, PROT_W, PROT_X, U16_MAX, Config, Life,
    PageState, State,
)
from model.references.pkvm import Hypervisor
from model.references.pkvm import pte as rpte
from model.transitions import Call

SMALL_WALK = Config(ram=16, mmio=2, nomap=2, guests=(True, False, True, False, True), gfns=16,
                    nrs=(1, 2, BLOCK_PAGES), max_pins=U16_MAX)
BLOCK_WALK = Config(ram=1024, mmio=2, guests=(True, False, False, True), gfns=1024,
                    nrs=(1, 2, BLOCK_PAGES), max_pins=U16_MAX)
NARROW_WALK = Config(ram=16, mmio=1, nomap=3, guests=(False, False, True, False), gfns=16,
                     nrs=(1, 2), pin_max=3, count_max=2, max_pins=3, memcache=2, host_records=True)
WALK_CONFIGS = (SMALL_WALK, BLOCK_WALK, NARROW_WALK)


def _walk_values(config: Config) -> dict:
    """Argument values a walk draws from, repeats weighting the ones that can succeed."""
    ram, pages = config.ram, config.pages
    low = list(range(min(ram, 6))) * 3
    nomap = ram + config.mmio
    pfns = low + [ram - 1, ram - 1, ram, nomap, nomap, nomap + 1, pages, PA_PAGES - 1, PA_PAGES,
                  2**64 - 1]
    gfns = list(range(4)) * 3 + [5, 7, IPA_PAGES - 1, IPA_PAGES]
    if ram >= 2 * BLOCK_PAGES:
        pfns += [BLOCK_PAGES] * 4 + [BLOCK_PAGES + 1, BLOCK_PAGES + 3, 2 * BLOCK_PAGES - 1]
        gfns += [BLOCK_PAGES] * 4 + [BLOCK_PAGES + 1, 2 * BLOCK_PAGES, 2 * BLOCK_PAGES + 5,
                                     IPA_PAGES - BLOCK_PAGES]
    guests = len(config.guests)
    return {
        "pfn": pfns, "gfn": gfns,
        "nr": [1] * 6 + [2, 3, 0, BLOCK_PAGES, BLOCK_PAGES, PA_PAGES, 2**64 - 1],
        "vm": list(range(guests)) * 3 + [guests, 2**64 - 1],
        "prot": [PROT_R | PROT_W] * 3 + [PROT_R, PROT_R | PROT_W | PROT_X, PROT_W, 0, 8, 15],
    }


# Random arguments: start_teardown_vm is left to the targeted calls (late in a walk), so that
# most of a walk happens while the VMs run.
_WALK_WEIGHTS = {"start_teardown_vm": 0, "finalize_teardown_vm": 1, "reclaim_dying_guest_page": 2}


def targeted_calls(transitions: dict, config: Config, state: State, late: bool) -> list[Call]:
    """Calls likely to succeed in `state`, read off the model state: every mapped guest entry,
    every page the hyp or FF-A holds, and shares and donations of host pages to free gfns.
    `late`: start tearing VMs down too."""
    out = []
    prot = PROT_R | PROT_W
    guests = range(len(config.guests))
    running = [vm for vm in guests if state.life[vm] == Life.RUNNING]
    focus = [p for p in range(min(config.ram, 8))]
    if config.ram >= 2 * BLOCK_PAGES:
        focus += [BLOCK_PAGES, BLOCK_PAGES + 1, 2 * BLOCK_PAGES - 1]
    for vm in guests:
        if state.life[vm] != Life.TORN_DOWN:
            out += [Call("vcpu_load", (vm,)), Call("vcpu_put", (vm,))]
        used = set()
        for leaf in state.s2[vm]:
            g = leaf.gfn
            used.update(range(g, g + leaf.span))
            out += [Call("guest_share_host", (vm, g)), Call("guest_unshare_host", (vm, g)),
                    Call("guest_write", (vm, g)), Call("hole_punch", (vm, g)),
                    Call("reclaim_dying_guest_page", (vm, g)),
                    Call("host_unshare_guest", (g, leaf.size, vm))]
            if leaf.state != POISON:
                out.append(Call("host_force_reclaim_page_guest", (leaf.pfn,)))
        if vm in running:
            if config.memcache:
                out.append(Call("host_topup_memcache", (vm,)))
            free = next(g for g in range(len(used) + 1) if g not in used)
            for p in focus:
                if state.host[p] in (PageState.OWNED, PageState.SHARED_OWNED):
                    kind = "host_donate_guest" if config.guests[vm] else "host_share_guest"
                    args = (p, free, vm) if config.guests[vm] else (p, free, 1, vm, prot)
                    out.append(Call(kind, args))
            if not config.guests[vm] and config.ram >= 2 * BLOCK_PAGES:
                base = BLOCK_PAGES * (1 + len([1 for leaf in state.s2[vm] if leaf.size > 1]))
                out.append(Call("host_share_guest", (BLOCK_PAGES, base, BLOCK_PAGES, vm, prot)))
        elif state.life[vm] == Life.DYING and not any(leaf.state != POISON for leaf in state.s2[vm]):
            out.append(Call("finalize_teardown_vm", (vm,)))
    for p in focus:
        if state.hyp[p] == PageState.SHARED_BORROWED:
            out += [Call("hyp_pin_shared_mem", (p,)), Call("hyp_unpin_shared_mem", (p,)),
                    Call("host_unshare_hyp", (p,))]
        elif state.hyp[p] == PageState.OWNED:
            out.append(Call("hyp_donate_host", (p, 1)))
        if state.ffa[p] == PageState.SHARED_BORROWED:
            out.append(Call("host_unshare_ffa", (p, 1)))
        if state.host[p] == PageState.OWNED:
            out += [Call("host_share_hyp", (p,)), Call("host_share_ffa", (p, 1)),
                    Call("host_donate_hyp", (p, 1))]
        out.append(Call("host_write", (p,)))
    if late:
        out += [Call("vcpu_put", (vm,)) for vm in running if state.refs[vm]]
        out += [Call("start_teardown_vm", (vm,)) for vm in running]
    return [transitions[c.name].call(*c.args) for c in out if c.name in transitions]


def _valid_leaves(hv: Hypervisor, vm: int) -> list:
    if not 0 <= vm < hv.nr_vms():
        return []
    return [leaf for leaf in hv.guest_leaves(vm) if rpte.kvm_pte_valid(leaf.pte)]


def discipline_breach(hv: Hypervisor, call: Call) -> tuple[str, list] | None:
    """A call the disciplined host never makes, judged on the reference: finalize_teardown_vm of
    a VM whose stage-2 still maps pages (docs/contract.md, "Host discipline"): what it means,
    and the cells (where, what, model, reference) that show it."""
    if call.name != "finalize_teardown_vm":
        return None
    vm = call.args[0]
    held = _valid_leaves(hv, vm)
    if not held:
        return None
    cells = [(f"vm{vm} gfn {leaf.gfn}", "stage-2", "(host finalizes anyway)",
              f"{PageState(rpte.pkvm_getstate(leaf.pte)).name} -> pfn "
              f"{rpte.kvm_pte_to_phys(leaf.pte) >> rpte.PAGE_SHIFT}") for leaf in held]
    return (f"the model's host finalizes vm{vm} while its stage-2 still maps {len(held)} "
            "page(s): the disciplined host never does (the pages would be stranded), so this "
            "is a finding about the caller, not an agreement of the two sides", cells)



class PkvmReference:
    """The adapter the conformance layer asks (see `model/profile.py`)."""

    name = "the reference hypervisor (model/references/pkvm)"
    walk_configs = WALK_CONFIGS
    walk_weights = _WALK_WEIGHTS
    walk_values = staticmethod(_walk_values)
    machine_text = staticmethod(machine_text)
    invoke = staticmethod(invoke)
    signature_mismatches = staticmethod(signature_mismatches)

    @staticmethod
    def fresh(config: Config) -> Hypervisor:
        return reference_for(config)

    @staticmethod
    def abstract(hv: Hypervisor, config: Config | None = None) -> State:
        return abstract(hv, config)

    @staticmethod
    def clone(hv: Hypervisor) -> Hypervisor:
        return hv.clone()

    @staticmethod
    def identical(a: Hypervisor, b: Hypervisor) -> bool:
        return a.identical(b)

    breach = staticmethod(discipline_breach)
    targeted_calls = staticmethod(targeted_calls)
