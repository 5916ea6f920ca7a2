"""A catalog of seeded bugs: realistic mistakes a hypervisor developer could make in mem_protect.c.

Each mutant rewrites one transition of the model without copying it: it runs the model's own
body through a thin view (`_Mutated`) that drops a check, drops or hoists a write, or checks a
range by its first page only. Every mutant must be caught by some `always` property, by the
prover, the explorer and conformance alike; a mutant that survives is a hole in the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from model.states import OWNED, SHARED_OWNED, Config
from model.transitions import TRANSITIONS, Transition


class _Mutated:
    """A view that forwards everything to the real one except the seeded mistake."""

    def __init__(self, view, drop_writes=(), first_page_only=False, accept=None, overrides=()):
        self._view = view
        self.__dict__.update(dict(overrides))
        self._drop_writes = set(drop_writes)
        self._first_page_only = first_page_only
        self._accept = accept

    def __getattr__(self, name):
        return getattr(self._view, name)

    def set(self, fld, p, value):
        if fld not in self._drop_writes:
            self._view.set(fld, p, value)

    def set_range(self, fld, lo, n, value_of):
        if fld not in self._drop_writes:
            self._view.set_range(fld, lo, n, value_of)

    def unmap_leaf(self, vm, gfn, size):
        if "unmap_leaf" not in self._drop_writes:
            self._view.unmap_leaf(vm, gfn, size)

    def poison(self, vm, gfn):
        if "poison" not in self._drop_writes:
            self._view.poison(vm, gfn)

    def each_page(self, lo, n, errno_of):
        if self._first_page_only:
            return self._view.each_page(lo, 1, errno_of)
        return self._view.each_page(lo, n, errno_of)

    def host(self, p):
        """With `accept`, the host state check also lets that state through (a widened case)."""
        state = self._view.host(p)
        if self._accept is not None:
            return self._view.If(state == self._accept[0], self._accept[1], state)
        return state


@dataclass(frozen=True)
class Mutant:
    name: str
    doc: str
    transition: str
    drop_checks: tuple[int, ...] = ()  # indexes of the body's checks (in yield order) to skip
    drop_writes: tuple[str, ...] = ()  # page fields or leaf operations never written
    first_page_only: bool = False  # range checks look at the first page only
    accept: tuple | None = None  # (state, seen as) in the host-state check
    write_first: tuple | None = None  # (field, arg index of the pfn, value) written before any check
    overrides: tuple = ()  # (name, value) pairs the body reads instead of the view's
    config: dict = field(default_factory=dict)  # overrides of the Config (bounds, discipline)

    def body(self, original):
        def mutated(s, *args):
            view = _Mutated(s, self.drop_writes, self.first_page_only, self.accept, self.overrides)
            if self.write_first:
                fld, arg, value = self.write_first
                s.set(fld, args[arg], value)
            for index, errno in enumerate(original(view, *args)):
                yield 0 if index in self.drop_checks else errno
        return mutated


CATALOG = [
    Mutant("unshare_hyp_ignores_pins",
           "host_unshare_hyp forgets the pin refcount test: the hyp keeps a pinned mapping of a page the host took back",
           "host_unshare_hyp", drop_checks=(5,)),
    Mutant("donate_hyp_checks_first_page",
           "host_donate_hyp checks the host state of the first page of the range only",
           "host_donate_hyp", first_page_only=True),
    Mutant("share_guest_skips_guest_check",
           "host_share_guest does not check that the guest IPA is free: it maps over an existing share",
           "host_share_guest", drop_checks=(8,)),
    Mutant("share_guest_count_overflow",
           "host_share_guest lets host_share_guest_count wrap past its maximum (narrowed to 1 so it is reachable)",
           "host_share_guest", overrides=(("count_max", -1),), config={"count_max": 1}),
    Mutant("share_guest_to_protected",
           "host_share_guest forgets that protected guests cannot borrow host pages",
           "host_share_guest", drop_checks=(1,)),
    Mutant("unshare_guest_keeps_count",
           "host_unshare_guest unmaps the guest but never drops host_share_guest_count",
           "host_unshare_guest", drop_writes=("count",)),
    Mutant("force_reclaim_no_zeroing",
           "host_force_reclaim_page_guest hands the page back without zeroing it",
           "host_force_reclaim_page_guest", drop_writes=("contents",)),
    Mutant("force_reclaim_no_poison",
           "host_force_reclaim_page_guest leaves the guest's mapping in place instead of poisoning it",
           "host_force_reclaim_page_guest", drop_writes=("poison",)),
    Mutant("reclaim_dying_no_zeroing",
           "reclaim_dying_guest_page returns a page the guest owned without zeroing it",
           "reclaim_dying_guest_page", drop_writes=("contents",)),
    Mutant("punch_skips_unmap",
           "hole_punch frees a non-protected guest's page without unmapping it from the guest",
           "hole_punch", drop_writes=("unmap_leaf",)),
    Mutant("donate_guest_no_annotation",
           "host_donate_guest gives the page to the guest but leaves the host stage-2 entry as it was",
           "host_donate_guest", drop_writes=("pte_kind", "pte_type", "pte_owner", "pte_handle", "pte_gfn")),
    Mutant("unpin_keeps_mapping",
           "hyp_unpin_shared_mem drops the last pin but keeps the hyp stage-1 mapping",
           "hyp_unpin_shared_mem", drop_writes=("hyp_mapped",)),
    Mutant("donate_host_keeps_hyp_mapping",
           "hyp_donate_host returns pages to the host but leaves them mapped in hyp stage-1",
           "hyp_donate_host", drop_writes=("hyp_mapped",)),
    Mutant("share_ffa_from_shared",
           "host_share_ffa also accepts pages the host already shares (a second, untracked share)",
           "host_share_ffa", accept=(SHARED_OWNED, OWNED)),
    Mutant("unshare_hyp_updates_before_check",
           "host_unshare_hyp sets the host state before its checks: a refused call leaves it changed",
           "host_unshare_hyp", write_first=("host", 0, OWNED)),
    Mutant("share_hyp_skips_host_check",
           "host_share_hyp does not check the host's side: a page already lent to FF-A is shared again",
           "host_share_hyp", drop_checks=(3,)),
    Mutant("finalize_without_reclaim",
           "the host finalizes a VM's teardown before reclaiming its pages (no host discipline)",
           "finalize_teardown_vm", config={"host_discipline": False}),
]
MUTANTS = {m.name: m for m in CATALOG}


def mutant_transitions(name: str | None) -> dict[str, Transition]:
    """The protocol with one seeded bug (or the model's own when name is None)."""
    if name is None:
        return TRANSITIONS
    mutant = _lookup(name)
    original = TRANSITIONS[mutant.transition]
    mutated = replace(original, body=mutant.body(original.body))
    return {**TRANSITIONS, mutant.transition: mutated}


def mutant_config(name: str | None, config: Config) -> Config:
    """The configuration a mutant needs for its bug to be reachable."""
    if name is None:
        return config
    return replace(config, **_lookup(name).config)


def _lookup(name: str) -> Mutant:
    if name not in MUTANTS:
        raise KeyError(name)
    return MUTANTS[name]
