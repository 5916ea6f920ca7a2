"""Every call of the pKVM page-ownership protocol, each written once (Linux 7.1 `mem_protect.c`).

A transition is a generator over a view `s` (see `model/concrete.py`, `model/symbolic.py`): it
yields its checks in the kernel's order (`s.require(ok, errno)` is 0 or -errno) and then writes
the new values. Reads always see the pre-state. The concrete reading stops at the first failing
check; the symbolic one turns the same text into a z3 relation. `docs/contract.md` is the table
of these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
import errno as _errno
from errno import E2BIG, EAGAIN, EBUSY, EFAULT, EINVAL, ENOENT, EPERM
from typing import Callable, NamedTuple

from model.concrete import Concrete
from model.states import (
    BLOCK_PAGES, IPA_PAGES, NOPAGE, OWNED, PA_PAGES, POISON, PROT_RWX, PROT_W, SHARED_BORROWED,
    SHARED_OWNED, Annotation, Config, Contents, Life, Owner, PteKind, Region,
    State,
)

EHWPOISON = getattr(_errno, "EHWPOISON", 133)  # Linux's value; Python's errno may lack it
ERRNO_NAMES = {**{-code: name for code, name in _errno.errorcode.items()}, -EHWPOISON: "EHWPOISON"}


def errno_name(errno: int) -> str:
    """`ok` for success, else the kernel's name of the (negative) errno, e.g. `-EPERM`."""
    if errno == 0:
        return "ok"
    name = ERRNO_NAMES.get(errno)
    return f"-{name}" if name else str(errno)

# Argument kinds, so explorers and parsers know what each parameter ranges over.
PFN, NR, GFN, VM, PROT = "pfn", "nr", "gfn", "vm", "prot"


@dataclass(frozen=True)
class Transition:
    name: str
    initiator: str
    completer: str
    params: tuple[str, ...]
    body: Callable
    discipline: Callable | None  # host-side guard: the host never issues the call otherwise
    bound: Callable | None  # exploration bound on an unbounded counter (not a proof assumption)
    doc: str


TRANSITIONS: dict[str, Transition] = {}


def transition(initiator: str, completer: str, discipline: Callable | None = None,
               bound: Callable | None = None):
    """Register a transition; its parameters are named after the argument kinds."""

    def register(body):
        params = body.__code__.co_varnames[1:body.__code__.co_argcount]
        TRANSITIONS[body.__name__] = Transition(
            body.__name__, initiator, completer, tuple(params), body, discipline, bound,
            (body.__doc__ or "").strip())
        return body

    return register


class Call(NamedTuple):
    """One call: a transition name and its arguments, in parameter order."""

    name: str
    args: tuple

    def __str__(self):
        params = TRANSITIONS[self.name].params
        return f"{self.name}({', '.join(f'{p}={a}' for p, a in zip(params, self.args))})"


class Outcome(NamedTuple):
    errno: int  # 0 on success, else the negative errno the kernel returns
    state: State


# -- shared checks and effects -----------------------------------------------------------------

def check_range(s, pfn, nr):
    """check_range_allowed_memory with the argument checks before it."""
    yield s.require(s.And(nr > 0, pfn + nr <= PA_PAGES), EINVAL)
    yield s.require(s.region(pfn) == s.region(pfn + nr - 1), EINVAL)
    yield s.require(s.region(pfn) == Region.RAM, EPERM)


def check_vm(s, vm, *lives):
    """The handle names a guest in one of the given lifecycle states."""
    yield s.require(s.And(s.is_guest(vm), s.Or(*[s.life(vm) == life for life in lives])), EINVAL)


def check_leaf_size(s, nr, *addrs):
    """__guest_check_transition_size: one page, or one aligned level-2 block."""
    aligned = [a % BLOCK_PAGES == 0 for a in addrs]
    yield s.require(s.Or(nr == 1, s.And(nr == BLOCK_PAGES, *aligned)), EINVAL)


def set_pte(s, pfn, nr, kind, annotation=Annotation.NONE, owner=Owner.HOST, handle=0, gfn=0):
    """Write the host stage-2 entries of [pfn, pfn + nr)."""
    for field, value in (("pte_kind", kind), ("pte_type", annotation), ("pte_owner", owner),
                         ("pte_handle", handle), ("pte_gfn", gfn)):
        s.set_range(field, pfn, nr, lambda _p, v=value: v)


def set_states(s, field, pfn, nr, state):
    s.set_range(field, pfn, nr, lambda _p: state)


def delegate(s, callee, *args):
    """One call making another, whole (the host's hole punch is a kernel hypercall): the view
    notes it, so that the prover can reuse the callee's proofs for this branch."""
    s.note_call(callee.__name__, args)
    yield from callee(s, *args)


def check_guest_page_leaf(s, vm, gfn):
    """A guest's own hypercall on gfn needs a valid, unpoisoned, page-sized leaf."""
    yield s.require(s.e_state(vm, gfn) != POISON, EHWPOISON)
    yield s.require(s.is_valid(s.e_state(vm, gfn)), ENOENT)
    yield s.require(s.e_size(vm, gfn) == 1, E2BIG)


# -- host <-> hypervisor -----------------------------------------------------------------------

@transition("host", "hyp")
def host_share_hyp(s, pfn):
    """The host lets the hypervisor access one of its pages."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == OWNED, EPERM)
    yield s.require(s.hyp(pfn) == NOPAGE, EPERM)
    s.set("host", pfn, SHARED_OWNED)
    s.set("hyp", pfn, SHARED_BORROWED)


@transition("host", "hyp")
def host_unshare_hyp(s, pfn):
    """The host takes back a page it shared with the hypervisor; refused while pinned."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == SHARED_OWNED, EPERM)
    yield s.require(s.hyp(pfn) == SHARED_BORROWED, EPERM)
    yield s.require(s.pins(pfn) == 0, EBUSY)
    s.set("host", pfn, OWNED)
    s.set("hyp", pfn, NOPAGE)


def _pin_limit(s, pfn):
    """Exploration bound on the pin refcount (a host never pins without bound)."""
    return s.pins(pfn) < s.config.max_pins


@transition("hyp", "hyp", bound=_pin_limit)
def hyp_pin_shared_mem(s, pfn):
    """The hypervisor pins a page the host shared with it, mapping it on the first pin."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == SHARED_OWNED, EPERM)
    yield s.require(s.hyp(pfn) == SHARED_BORROWED, EPERM)
    yield s.require(s.pins(pfn) < s.pin_max, EBUSY)
    s.set("pins", pfn, s.pins(pfn) + 1)
    s.set("hyp_mapped", pfn, True)


@transition("hyp", "hyp")
def hyp_unpin_shared_mem(s, pfn):
    """The hypervisor drops a pin, unmapping the page on the last one."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == SHARED_OWNED, EPERM)
    yield s.require(s.hyp(pfn) == SHARED_BORROWED, EPERM)
    yield s.require(s.pins(pfn) > 0, EINVAL)
    s.set("pins", pfn, s.pins(pfn) - 1)
    s.set("hyp_mapped", pfn, s.pins(pfn) > 1)


@transition("host", "hyp")
def host_donate_hyp(s, pfn, nr):
    """The host gives pages to the hypervisor for good (hyp-internal allocations)."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(s.host(p) == OWNED, EPERM))
    yield s.each_page(pfn, nr, lambda p: s.require(s.hyp(p) == NOPAGE, EPERM))
    set_states(s, "hyp", pfn, nr, OWNED)
    s.set_range("hyp_mapped", pfn, nr, lambda _p: True)
    set_states(s, "host", pfn, nr, NOPAGE)
    set_pte(s, pfn, nr, PteKind.ANNOTATED, Annotation.DONATION, Owner.HYP)


@transition("hyp", "host")
def hyp_donate_host(s, pfn, nr):
    """The hypervisor returns pages it owns to the host."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(s.hyp(p) == OWNED, EPERM))
    yield s.each_page(pfn, nr, lambda p: s.require(s.host(p) == NOPAGE, EPERM))
    set_states(s, "host", pfn, nr, OWNED)
    set_pte(s, pfn, nr, PteKind.VALID)
    set_states(s, "hyp", pfn, nr, NOPAGE)
    s.set_range("hyp_mapped", pfn, nr, lambda _p: False)


# -- host <-> FF-A -----------------------------------------------------------------------------

@transition("host", "ffa")
def host_share_ffa(s, pfn, nr):
    """The host lends pages to the secure world through the FF-A proxy."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(s.host(p) == OWNED, EPERM))
    set_states(s, "host", pfn, nr, SHARED_OWNED)
    set_states(s, "ffa", pfn, nr, SHARED_BORROWED)


@transition("host", "ffa")
def host_unshare_ffa(s, pfn, nr):
    """The FF-A proxy reclaims pages it lent (only ones its records show as lent)."""
    yield from check_range(s, pfn, nr)
    yield s.each_page(pfn, nr, lambda p: s.require(
        s.And(s.host(p) == SHARED_OWNED, s.ffa(p) == SHARED_BORROWED), EPERM))
    set_states(s, "host", pfn, nr, OWNED)
    set_states(s, "ffa", pfn, nr, NOPAGE)


# -- host <-> non-protected guests -------------------------------------------------------------

def _share_guest_page(s, p):
    """Per-page host check of __pkvm_host_share_guest: only host -> np-guest multi-sharing."""
    return s.If(s.host(p) == OWNED, 0,
                s.If(s.host(p) == SHARED_OWNED,
                     s.If(s.count(p) == s.count_max, -EBUSY, s.If(s.count(p) > 0, 0, -EPERM)),
                     -EPERM))


@transition("host", "guest")
def host_share_guest(s, pfn, gfn, nr, vm, prot):
    """The host maps its page (or 2 MiB block) into a non-protected guest, which borrows it."""
    yield from check_vm(s, vm, Life.RUNNING)
    yield s.require(s.Not(s.protected(vm)), EINVAL)
    yield s.require(prot <= PROT_RWX, EINVAL)
    yield from check_leaf_size(s, nr, pfn, gfn)
    yield s.require(gfn + nr <= IPA_PAGES, EINVAL)
    yield from check_range(s, pfn, nr)
    yield s.require(s.all_gfns(vm, gfn, nr, lambda g: s.e_state(vm, g) == NOPAGE), EPERM)
    yield s.each_page(pfn, nr, lambda p: _share_guest_page(s, p))
    s.map_leaf(vm, gfn, nr, SHARED_BORROWED, prot, pfn)
    set_states(s, "host", pfn, nr, SHARED_OWNED)
    s.set_range("count", pfn, nr, lambda p: s.count(p) + 1)


@transition("host", "guest")
def host_unshare_guest(s, gfn, nr, vm):
    """The host unmaps a page (or block) it shared with a non-protected guest."""
    yield from check_vm(s, vm, Life.RUNNING, Life.DYING)
    yield s.require(s.Not(s.protected(vm)), EINVAL)
    yield from check_leaf_size(s, nr, gfn)
    yield s.require(s.is_valid(s.e_state(vm, gfn)), ENOENT)
    yield s.require(s.e_size(vm, gfn) == nr, E2BIG)
    yield s.require(s.e_state(vm, gfn) == SHARED_BORROWED, EPERM)
    pfn = s.e_pfn(vm, gfn)
    yield s.each_page(pfn, nr, lambda p: s.If(s.host(p) != SHARED_OWNED, -EPERM,
                                                s.If(s.count(p) == 0, -EINVAL, 0)))
    s.unmap_leaf(vm, gfn, nr)
    s.set_range("count", pfn, nr, lambda p: s.count(p) - 1)
    s.set_range("host", pfn, nr, lambda p: s.If(s.count(p) == 1, OWNED, SHARED_OWNED))


# -- host <-> protected guests -----------------------------------------------------------------

@transition("host", "guest")
def host_donate_guest(s, pfn, gfn, vm):
    """On a protected guest's fault the host donates a page; the guest owns it, mapped RWX."""
    yield from check_vm(s, vm, Life.RUNNING)
    yield s.require(s.protected(vm), EINVAL)
    yield s.require(gfn < IPA_PAGES, EINVAL)
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == OWNED, EPERM)
    yield s.require(s.e_state(vm, gfn) == NOPAGE, EPERM)
    s.set("host", pfn, NOPAGE)
    set_pte(s, pfn, 1, PteKind.ANNOTATED, Annotation.DONATION, Owner.GUEST, vm, gfn)
    s.map_leaf(vm, gfn, 1, OWNED, PROT_RWX, pfn)


@transition("guest", "host")
def guest_share_host(s, vm, gfn):
    """A protected guest shares one of its pages back with the host (MEM_SHARE)."""
    yield from check_vm(s, vm, Life.RUNNING)
    yield from check_guest_page_leaf(s, vm, gfn)
    yield s.require(s.e_state(vm, gfn) == OWNED, EPERM)
    pfn = s.e_pfn(vm, gfn)
    yield s.require(s.host(pfn) == NOPAGE, EPERM)
    s.set_entry_state(vm, gfn, SHARED_OWNED)
    s.set("host", pfn, SHARED_BORROWED)
    set_pte(s, pfn, 1, PteKind.VALID)
    secret = Contents.SECRET_BASE + vm
    s.set("contents", pfn, s.If(s.contents(pfn) == secret, Contents.PUBLIC, s.contents(pfn)))


@transition("guest", "host")
def guest_unshare_host(s, vm, gfn):
    """A protected guest takes back a page it shared with the host (MEM_UNSHARE)."""
    yield from check_vm(s, vm, Life.RUNNING)
    yield from check_guest_page_leaf(s, vm, gfn)
    yield s.require(s.e_state(vm, gfn) == SHARED_OWNED, EPERM)
    pfn = s.e_pfn(vm, gfn)
    yield s.require(s.host(pfn) == SHARED_BORROWED, EPERM)
    s.set_entry_state(vm, gfn, OWNED)
    s.set("host", pfn, NOPAGE)
    set_pte(s, pfn, 1, PteKind.ANNOTATED, Annotation.DONATION, Owner.GUEST, vm, gfn)


@transition("host", "guest")
def host_force_reclaim_page_guest(s, pfn):
    """The host's fault handler takes back a donated page: zeroed, and POISON for the guest."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) == NOPAGE, EAGAIN)
    yield s.require(s.And(s.pte_kind(pfn) == PteKind.ANNOTATED,
                          s.pte_type(pfn) == Annotation.DONATION), EINVAL)
    yield s.require(s.pte_owner(pfn) == Owner.GUEST, EPERM)
    vm, gfn = s.pte_handle(pfn), s.pte_gfn(pfn)
    yield s.require(s.And(s.is_guest(vm),
                          s.Or(s.life(vm) == Life.RUNNING, s.life(vm) == Life.DYING)), EAGAIN)
    yield s.require(s.And(s.e_state(vm, gfn) == OWNED, s.e_pfn(vm, gfn) == pfn), EPERM)
    s.set("contents", pfn, Contents.ZERO)
    s.poison(vm, gfn)
    s.set("host", pfn, OWNED)
    set_pte(s, pfn, 1, PteKind.VALID)


# -- teardown ----------------------------------------------------------------------------------

def check_vm_exists(s, vm):
    yield s.require(s.And(s.is_guest(vm), s.life(vm) != Life.TORN_DOWN), ENOENT)


@transition("host", "hyp")
def start_teardown_vm(s, vm):
    """The host starts destroying a VM: no vCPU can run from now on."""
    yield from check_vm_exists(s, vm)
    yield s.require(s.life(vm) != Life.DYING, EINVAL)
    s.set_life(vm, Life.DYING)


@transition("host", "guest")
def reclaim_dying_guest_page(s, vm, gfn):
    """The host takes back a dying protected guest's page, zeroing what the guest owned."""
    yield from check_vm_exists(s, vm)
    yield s.require(s.life(vm) == Life.DYING, EINVAL)
    state = s.e_state(vm, gfn)
    yield s.require(s.Or(state == POISON, s.is_valid(state)), ENOENT)
    yield s.require(s.Or(state == POISON, state == OWNED, state == SHARED_OWNED), EPERM)
    pfn = s.e_pfn(vm, gfn)
    s.unmap_leaf(vm, gfn, 1)
    with s.when(state == OWNED):
        s.set("contents", pfn, Contents.ZERO)
        set_pte(s, pfn, 1, PteKind.VALID)
    with s.when(state != POISON):
        s.set("host", pfn, OWNED)


def _holds_nothing(s, vm):
    """Host discipline: finalize only a VM whose every page was reclaimed or unshared."""
    return s.no_valid_leaf(vm)


@transition("host", "hyp", discipline=_holds_nothing)
def finalize_teardown_vm(s, vm):
    """The host finishes destroying a dying VM; its stage-2 goes back to the host."""
    yield from check_vm_exists(s, vm)
    yield s.require(s.life(vm) == Life.DYING, EBUSY)
    s.set_life(vm, Life.TORN_DOWN)
    s.clear_vm(vm)


# -- the VMM frees guest memory ----------------------------------------------------------------

@transition("host", "guest")
def hole_punch(s, vm, gfn):
    """The VMM frees the memory behind gfn: force reclaim (protected) or unshare (otherwise)."""
    yield from check_vm(s, vm, Life.RUNNING, Life.DYING)
    yield s.require(s.is_valid(s.e_state(vm, gfn)), ENOENT)
    with s.when(s.protected(vm)):
        yield from delegate(s, host_force_reclaim_page_guest, s.e_pfn(vm, gfn))
    with s.when(s.Not(s.protected(vm))):
        size = s.e_size(vm, gfn)
        base = s.If(size == BLOCK_PAGES, gfn - gfn % BLOCK_PAGES, gfn)
        yield from delegate(s, host_unshare_guest, base, size, vm)


# -- memory accesses ---------------------------------------------------------------------------

@transition("guest", "guest")
def guest_write(s, vm, gfn):
    """A running guest writes through its stage-2; a protected guest's own page becomes secret."""
    yield from check_vm(s, vm, Life.RUNNING)
    yield s.require(s.is_valid(s.e_state(vm, gfn)), EFAULT)
    yield s.require(s.bit(s.e_prot(vm, gfn), PROT_W), EFAULT)
    private = s.And(s.protected(vm), s.e_state(vm, gfn) == OWNED)
    s.set("contents", s.e_pfn(vm, gfn),
          s.If(private, Contents.SECRET_BASE + vm, Contents.PUBLIC))


@transition("host", "host")
def host_write(s, pfn):
    """The host writes a page it can access, faulting its identity mapping in."""
    yield from check_range(s, pfn, 1)
    yield s.require(s.host(pfn) != NOPAGE, EPERM)
    s.set("contents", pfn, Contents.HOST)
    set_pte(s, pfn, 1, PteKind.VALID)


# -- the concrete successor function -----------------------------------------------------------

def step(config: Config, state: State, call: Call,
         transitions: dict[str, Transition] = TRANSITIONS) -> Outcome | None:
    """The kernel's answer to one call; None when the (disciplined, bounded) host never makes it.

    `transitions` is the protocol to run: the model's, or a mutant's (`model/mutants.py`)."""
    t = transitions[call.name]
    s = Concrete(config, state)
    if config.host_discipline and t.discipline and not t.discipline(s, *call.args):
        return None
    if t.bound and not t.bound(s, *call.args):
        return None
    for errno in t.body(s, *call.args):
        if errno:
            return Outcome(errno, s.post())
    return Outcome(0, s.post())


def domain(config: Config, kind: str) -> range | tuple:
    """The values an exploration tries for one argument kind."""
    return {
        PFN: range(config.pages + config.hole_pfns),
        NR: config.nrs,
        GFN: range(config.gfns),
        VM: range(len(config.guests)),
        PROT: config.prots,
    }[kind]


def calls(config: Config) -> list[Call]:
    """Every call an exploration tries, in a fixed order (determinism)."""
    out = []
    for t in TRANSITIONS.values():
        out.extend(Call(t.name, args) for args in _product([domain(config, p) for p in t.params]))
    return out


def _product(domains):
    if not domains:
        return [()]
    return [(x, *rest) for x in domains[0] for rest in _product(domains[1:])]
