"""What must always hold, and what must sometimes happen, as values (in the spirit of stateright).

`always` properties are the ten invariants of SEMANTICS.md (nine state predicates and one step
predicate, check-then-commit), the VM references, a step predicate that no call ends in a
hyp panic, and the host kernel's own records agreeing with the hypervisor. `sometimes` properties guard against a vacuous model: every
transition can succeed, every page state is reachable for every entity kind, and a page can go
from the host to a guest and back. Like transitions, predicates are written once against the
view vocabulary and read by the explorer (concretely) and the prover (symbolically).
"""

from __future__ import annotations

from model.profiles.pkvm.states import (
    BLOCK_PAGES, NOPAGE, OWNED, PAGE_FIELDS, PAGE_INIT, POISON, SHARED_BORROWED, SHARED_OWNED,
    Annotation, Contents, Life, Owner, PteKind,
)
from model.profiles.pkvm.transitions import HYP_PANIC
from model.properties import GraphProperty, Property, always, always_step, check_then_commit

def _ram(s, p):
    return s.ram_page(p)


def _guest_owned_by_annotation(s, p):
    """The annotation of p names a protected guest entry that owns p."""
    vm, gfn = s.pte_handle(p), s.pte_gfn(p)
    return s.And(s.pte_owner(p) == Owner.GUEST, s.is_guest(vm), s.protected(vm),
                 s.e_state(vm, gfn) == OWNED, s.e_pfn(vm, gfn) == p)


def single_owner(s):
    """A page has exactly one owner, and a host stage-2 annotation names it when it is not the host."""
    pages = s.forall_pages(lambda p: s.Implies(_ram(s, p), s.And(
        s.Or(s.hyp(p) == OWNED, s.hyp(p) == SHARED_BORROWED, s.hyp(p) == NOPAGE),
        s.Implies(s.host(p) == OWNED,
                  s.And(s.hyp(p) == NOPAGE, s.ffa(p) == NOPAGE, s.count(p) == 0)),
        s.Implies(s.host(p) == SHARED_BORROWED,
                  s.And(s.hyp(p) == NOPAGE, s.ffa(p) == NOPAGE, s.count(p) == 0)),
        s.Implies(s.host(p) == NOPAGE, s.And(
            s.pte_kind(p) == PteKind.ANNOTATED, s.pte_type(p) == Annotation.DONATION,
            s.ffa(p) == NOPAGE, s.count(p) == 0,
            s.Or(s.And(s.pte_owner(p) == Owner.HYP, s.hyp(p) == OWNED),
                 s.And(s.hyp(p) == NOPAGE, _guest_owned_by_annotation(s, p))))),
        s.Implies(s.hyp(p) == OWNED, s.host(p) == NOPAGE))))
    entries = s.forall_entries(lambda v, g: s.And(
        s.Implies(s.is_valid(s.e_state(v, g)), s.host(s.e_pfn(v, g)) != OWNED),
        s.Implies(s.e_state(v, g) == OWNED, s.And(
            s.host(s.e_pfn(v, g)) == NOPAGE, s.pte_owner(s.e_pfn(v, g)) == Owner.GUEST,
            s.pte_handle(s.e_pfn(v, g)) == v, s.pte_gfn(s.e_pfn(v, g)) == g))))
    return s.And(pages, entries)


def sharing_pairs(s):
    """Every share has its borrower: hyp, FF-A, exactly `count` np-guest entries, or one owner guest."""
    def host_shared(p):
        hyp_sb, ffa_sb, counted = s.hyp(p) == SHARED_BORROWED, s.ffa(p) == SHARED_BORROWED, s.count(p) > 0
        return s.Or(s.And(hyp_sb, s.Not(counted), s.Not(ffa_sb)),
                    s.And(s.hyp(p) == NOPAGE, counted, s.Not(ffa_sb)),
                    s.And(s.hyp(p) == NOPAGE, s.Not(counted), ffa_sb))

    pages = s.forall_pages(lambda p: s.Implies(_ram(s, p), s.And(
        s.Implies(s.host(p) == SHARED_OWNED, host_shared(p)),
        s.Implies(s.hyp(p) == SHARED_BORROWED, s.host(p) == SHARED_OWNED),
        s.Implies(s.ffa(p) == SHARED_BORROWED, s.host(p) == SHARED_OWNED),
        s.Implies(s.count(p) > 0, s.host(p) == SHARED_OWNED),
        s.Implies(s.host(p) == SHARED_BORROWED,
                  s.exists_entry(lambda v, g: s.And(s.e_state(v, g) == SHARED_OWNED,
                                                    s.e_pfn(v, g) == p))),
        s.count(p) == s.borrowers(p))))
    entries = s.forall_entries(lambda v, g: s.And(
        s.Implies(s.e_state(v, g) == SHARED_BORROWED,
                  s.And(s.host(s.e_pfn(v, g)) == SHARED_OWNED, s.count(s.e_pfn(v, g)) > 0)),
        s.Implies(s.e_state(v, g) == SHARED_OWNED, s.And(
            s.host(s.e_pfn(v, g)) == SHARED_BORROWED,
            s.forall_entries(lambda v2, g2: s.Implies(
                s.And(s.e_state(v2, g2) == SHARED_OWNED, s.e_pfn(v2, g2) == s.e_pfn(v, g)),
                s.And(v2 == v, g2 == g)))))))
    return s.And(pages, entries)


def pins(s):
    """Only a page the hypervisor borrows can be pinned, and the refcount stays in 16 bits."""
    return s.forall_pages(lambda p: s.And(
        s.pins(p) >= 0, s.pins(p) <= s.pin_max,
        s.Implies(s.pins(p) > 0, s.hyp(p) == SHARED_BORROWED)))


def identity_map(s):
    """The host stage-2 maps a page (IPA == PA) only while the host may access it; else annotated."""
    return s.forall_pages(lambda p: s.Implies(_ram(s, p), s.And(
        s.Implies(s.pte_kind(p) == PteKind.ANNOTATED, s.host(p) == NOPAGE),
        s.Implies(s.pte_kind(p) == PteKind.VALID, s.host(p) != NOPAGE),
        s.Implies(s.host(p) == NOPAGE, s.pte_kind(p) == PteKind.ANNOTATED))))


def hyp_mappings(s):
    """Hyp stage-1 maps a page only when the hypervisor owns it, or borrows it and has it pinned."""
    return s.forall_pages(lambda p: s.Implies(s.hyp_mapped(p), s.Or(
        s.hyp(p) == OWNED, s.And(s.hyp(p) == SHARED_BORROWED, s.pins(p) > 0))))


def range_hygiene(s):
    """Only RAM is ever touched, counters never overflow, and leaves are one page or one whole np block."""
    untouched = s.forall_pages(lambda p: s.Implies(s.Not(_ram(s, p)), s.And(
        *[s.page(f, p) == PAGE_INIT[f] for f in PAGE_FIELDS])))
    counters = s.forall_pages(lambda p: s.And(s.count(p) >= 0, s.count(p) <= s.count_max))
    leaves = s.forall_entries(lambda v, g: s.Implies(s.is_valid(s.e_state(v, g)), s.And(
        _ram(s, s.e_pfn(v, g)),
        s.Or(s.e_size(v, g) == 1, s.And(s.e_size(v, g) == BLOCK_PAGES, s.Not(s.protected(v)))))))
    blocks = s.forall_entries(lambda v, g: s.Implies(
        s.And(s.is_valid(s.e_state(v, g)), s.e_size(v, g) == BLOCK_PAGES),
        _whole_block(s, v, g)))
    return s.And(untouched, counters, leaves, blocks)


def _whole_block(s, v, g):
    """Every entry of g's aligned block maps the matching page of one aligned block, alike."""
    offset = g % BLOCK_PAGES
    return s.And(s.e_pfn(v, g) % BLOCK_PAGES == offset, s.all_gfns(
        v, g - offset, BLOCK_PAGES, lambda g2: s.And(
            s.e_state(v, g2) == s.e_state(v, g), s.e_size(v, g2) == BLOCK_PAGES,
            s.e_prot(v, g2) == s.e_prot(v, g), s.e_pfn(v, g2) - g2 == s.e_pfn(v, g) - g)))


def guest_kinds(s):
    """A protected guest holds only OWNED, SHARED_OWNED or POISON; a non-protected one only SHARED_BORROWED."""
    def allowed(v, g):
        st = s.e_state(v, g)
        return s.If(s.protected(v),
                    s.Or(st == OWNED, st == SHARED_OWNED, st == POISON),
                    st == SHARED_BORROWED)
    return s.forall_entries(allowed)


def confidentiality(s):
    """A protected guest's private data sits only in a page it still owns exclusively."""
    def secret_held(p):
        vm = s.contents(p) - Contents.SECRET_BASE
        gfn = s.pte_gfn(p)
        return s.And(s.host(p) == NOPAGE, s.pte_owner(p) == Owner.GUEST, s.pte_handle(p) == vm,
                     s.e_state(vm, gfn) == OWNED, s.e_pfn(vm, gfn) == p, s.protected(vm))
    return s.forall_pages(lambda p: s.Implies(s.contents(p) >= Contents.SECRET_BASE, secret_held(p)))


def nothing_stranded(s):
    """No torn-down VM holds a page: everything it had was reclaimed or unshared before finalize."""
    entries = s.forall_entries(lambda v, g: s.life(v) != Life.TORN_DOWN)
    pages = s.forall_pages(lambda p: s.Implies(
        s.And(s.pte_kind(p) == PteKind.ANNOTATED, s.pte_owner(p) == Owner.GUEST),
        s.And(s.is_guest(s.pte_handle(p)), s.life(s.pte_handle(p)) != Life.TORN_DOWN)))
    return s.And(entries, pages)


def vm_references(s):
    """A VM's refcount counts its loaded vCPUs, and only a running VM has any loaded."""
    return s.forall_vms(lambda v: s.And(
        s.refs(v) >= 0, s.refs(v) <= s.vcpus, s.Implies(s.refs(v) > 0, s.life(v) == Life.RUNNING)))


def host_records(s):
    """The host kernel's records agree with the hypervisor: hyp_shared_pfns counts a pfn exactly
    when the hypervisor borrows it from the host; pkvm_mappings holds a record of a guest's gfn
    exactly when the guest's stage-2 holds an entry there (POISON too: the host keeps its record
    of a page it forcibly reclaimed, until it reclaims the gfn of the dying VM, which leaves the
    POISON entry for finalize), naming the entry's pfn and leaf size; nothing at all when the
    records are not modelled."""
    on = s.host_records()
    shares = s.forall_pages(lambda p: s.And(s.shared(p) >= 0, s.If(
        on, (s.shared(p) > 0) == (s.hyp(p) == SHARED_BORROWED), s.shared(p) == 0)))
    # A dying VM's entry may lack its record: only a POISON one can (a valid entry's record
    # names its size), and writing "POISON" here made one proof seven times slower.
    entries = s.forall_entries(lambda v, g: s.Implies(on, s.And(
        s.Or(s.m_nr(v, g) != 0, s.life(v) == Life.DYING),
        s.Implies(s.is_valid(s.e_state(v, g)), s.And(
            s.m_pfn(v, g) == s.e_pfn(v, g), s.m_nr(v, g) == s.e_size(v, g))))))
    mappings = s.forall_mappings(lambda v, g: s.And(on, s.e_state(v, g) != NOPAGE))
    return s.And(shares, entries, mappings)


def no_hyp_panic(call, errno, pre, post):
    """No host or guest call brings the hypervisor down: every failure is caught before a call's
    first write."""
    return errno != HYP_PANIC


def type_ok(s):
    """Every field holds a value of its kind (the strengthening every other invariant leans on)."""
    def one_of(x, values):
        return s.Or(*[x == v for v in values])
    pages = s.forall_pages(lambda p: s.And(
        one_of(s.host(p), (OWNED, SHARED_OWNED, SHARED_BORROWED, NOPAGE)),
        one_of(s.hyp(p), (OWNED, SHARED_BORROWED, NOPAGE)),
        one_of(s.ffa(p), (SHARED_BORROWED, NOPAGE)),
        one_of(s.pte_kind(p), tuple(PteKind)), one_of(s.pte_type(p), tuple(Annotation)),
        one_of(s.pte_owner(p), tuple(Owner)), s.pte_handle(p) >= 0, s.pte_gfn(p) >= 0,
        s.contents(p) >= 0))
    vms = s.forall_vms(lambda v: s.And(one_of(s.life(v), tuple(Life)), s.memcache(v) >= 0))
    entries = s.forall_entries(lambda v, g: s.And(
        one_of(s.e_state(v, g), (OWNED, SHARED_OWNED, SHARED_BORROWED, POISON)),
        s.e_pfn(v, g) >= 0, s.e_prot(v, g) >= 0, s.e_size(v, g) >= 1))
    return s.And(pages, vms, entries)


ALWAYS = [
    always(type_ok), always(single_owner), always(sharing_pairs), always(pins), always(identity_map),
    always(hyp_mappings), always(range_hygiene), always(guest_kinds),
    always_step(check_then_commit), always(confidentiality), always(nothing_stranded),
    always(vm_references), always_step(no_hyp_panic), always(host_records),
]


# -- sometimes ---------------------------------------------------------------------------------

def _host_reaches(state):
    return Property(f"host_{state.name}", "sometimes", f"the host can hold a page {state.name}",
                    state=lambda s: s.exists_page(lambda p: s.host(p) == state))


def _hyp_reaches(state):
    return Property(f"hyp_{state.name}", "sometimes", f"the hypervisor can hold a page {state.name}",
                    state=lambda s: s.exists_page(lambda p: s.hyp(p) == state))


def _guest_reaches(protected, state):
    kind = "protected" if protected else "np"
    return Property(f"{kind}_guest_{state.name}", "sometimes",
                    f"a {kind} guest can hold a page {state.name}",
                    state=lambda s: s.exists_entry(lambda v, g: s.And(
                        s.protected(v) == protected, s.e_state(v, g) == state)))


def _round_trip(protected):
    """A page leaves a guest of this kind and the host owns it again."""
    kind = "protected" if protected else "np"

    def back_home(call, errno, pre, post):
        def was_guests(p):
            if protected:
                return pre.And(pre.host(p) == NOPAGE, pre.pte_owner(p) == Owner.GUEST)
            return pre.count(p) > 0
        return pre.And(errno == 0, pre.exists_page(
            lambda p: pre.And(was_guests(p), post.host(p) == OWNED)))

    return Property(f"round_trip_{kind}", "sometimes",
                    f"a page can go host -> {kind} guest -> host", step=back_home)


SOMETIMES = (
    [_host_reaches(st) for st in (OWNED, SHARED_OWNED, SHARED_BORROWED, NOPAGE)]
    + [_hyp_reaches(st) for st in (OWNED, SHARED_BORROWED)]
    + [Property("ffa_SHARED_BORROWED", "sometimes", "FF-A can borrow a page",
                state=lambda s: s.exists_page(lambda p: s.ffa(p) == SHARED_BORROWED))]
    + [_guest_reaches(True, st) for st in (OWNED, SHARED_OWNED, POISON)]
    + [_guest_reaches(False, SHARED_BORROWED)]
    + [_round_trip(True), _round_trip(False)]
    + [Property("host_shares_twice", "sometimes",
                "the host shares one pfn with the hypervisor for two structures (host records)",
                state=lambda s: s.exists_page(lambda p: s.shared(p) >= 2))]
)



def _host_owns_all_ram(config, state) -> bool:
    return all(state.host[p] == OWNED for p in range(config.ram))


def _all_torn_down(config, state) -> bool:
    return all(life == Life.TORN_DOWN for life in state.life)


GRAPH = [
    GraphProperty("graph_nothing_stranded", "return",
                  "from every reachable state the host can get every RAM page back",
                  _host_owns_all_ram),
    GraphProperty("graph_no_dead_end", "progress",
                  "every reachable state has a successor, unless every VM is torn down",
                  _all_torn_down),
]
