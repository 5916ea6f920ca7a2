"""What the prover needs of the pKVM profile: the symbolic machine and state, the ghost
bijection, where to instantiate the invariants (term pools), how to split a query (leaf size),
and how to turn a z3 model into a readable, concrete counterexample on a small machine.
"""

from __future__ import annotations

import functools

import z3

from model.profiles.pkvm.states import (
    BLOCK_PAGES, PAGE_FIELDS, PAGE_INIT, Config, Contents, Leaf, Mapping, Owner, PageState,
    State,
)
from model.profiles.pkvm.symbolic import (
    Machine, Symbolic, SymbolicState, SymbolicStep, ghost_invariant, initial,
)
from model.profiles.pkvm.presenter import entry_cells, page_cells
from model.profiles.pkvm.properties import nothing_stranded
from model.properties import Property
from model.symbolic import ProofHooks, evaluate, unique_terms

STRANDING = Property("stranding_hazard", "sometimes",
                     "a torn-down VM still holds a page (no host discipline)",
                     state=lambda s: s.Not(nothing_stranded(s)))
# What BMC checks, on which machine, to which depth: the round trips and the poisoned IPA
# (reachable only through several transitions in a row), and the stranding hazard of an
# undisciplined host, reachable in 5 calls (load a vCPU, donate, put it, start teardown,
# finalize), searched among those five calls (all of them at depth 5 take z3 over 5 minutes).
# That a disciplined host strands nothing is the explorer's graph property
# `graph_nothing_stranded`, complete on these machines at every depth (tests/pkvm/test_explorer.py),
# where a BMC search showing it unreachable would need depth 5 over every call.
STRANDING_CALLS = ("vcpu_load", "host_donate_guest", "vcpu_put", "start_teardown_vm",
                   "finalize_teardown_vm")
BMC_CHECKS = (
    ("round_trip_protected", Config(ram=1, guests=(True,)), 3),
    ("round_trip_np", Config(ram=1, guests=(False,)), 3),
    ("protected_guest_POISON", Config(ram=1, guests=(True,)), 3),
    ("stranding_hazard", Config(ram=1, guests=(True,), host_discipline=False), 5, True,
     STRANDING_CALLS),
)
GHOST = Property("ghost_borrowers", "always",
                 "slots [0, count) of a page are a bijection with the guest entries borrowing it",
                 state=ghost_invariant)


def _evaluator(model):
    """Values of terms in a z3 model: Python ints, or bools for Boolean terms."""
    return functools.partial(evaluate, model)


def pools(q, named=()) -> dict:
    """The terms this query is about, per kind: where the invariants get instantiated."""
    pre = Symbolic(q.m, q.pre)
    args = dict(zip(q.t.params, q.args))
    pages, entries, extra = [], [], {"gfn": [], "vm": [], "slot": []}
    if "pfn" in args:
        pages.append(args["pfn"])
    for key, ws in q.witnesses.items():
        kind = key.rstrip("0123456789")
        if kind == "page":
            pages.append(ws[0])
        elif kind == "entry":
            entries.append(ws)
        else:
            extra[kind].append(ws[0])
    pages += [k for k, *_ in q.step.ranges]
    entries += list(named)
    if "vm" in args and "gfn" in args:
        vm, gfn = args["vm"], args["gfn"]
        entries += [(vm, gfn), (vm, gfn - gfn % BLOCK_PAGES)]
    for v, g in list(entries):
        pages.append(pre.e_pfn(v, g))
    if "vm" in args and "gfn" in args:  # the entry of vm's leaf at gfn that maps page q
        entries += [(vm, gfn + (q - pre.e_pfn(vm, gfn))) for q in list(pages)]
    arrays = q.pre.arrays
    for p in list(pages):
        entries.append((pre.pte_handle(p), pre.pte_gfn(p)))
        for i in [z3.Select(arrays["nb"], p) - 1] + extra["slot"]:
            entries.append((z3.Select(arrays["holder_v"], p, i),
                            z3.Select(arrays["holder_g"], p, i)))
    slots = [z3.IntVal(0)] + [z3.Select(arrays["slot"], v, g) for v, g in entries] \
        + [z3.Select(arrays["nb"], p) - 1 for p in pages]
    return {"page": unique_terms(pages), "entry": unique_terms(entries),
            "gfn": unique_terms(extra["gfn"] + [g for _, g in entries]),
            "vm": unique_terms(extra["vm"] + [v for v, _ in entries]),
            "slot": unique_terms(extra["slot"] + slots)}


def small_models(q) -> list:
    """Models that fit a small machine: every leaf the query names one page, first with the
    machine's optional parts (memcache, host records) off, whose cells outside the query's
    instances are otherwise free values that rarely make a reachable-looking state."""
    pre = Symbolic(q.m, q.pre)
    pages = z3.And(*[z3.Implies(pre.is_valid(pre.e_state(v, g)), pre.e_size(v, g) == 1)
                     for v, g in q.pools["entry"]])
    return [z3.And(pages, z3.Not(q.m.memcache), z3.Not(q.m.records)), pages]


def _machine(model, m: Machine) -> dict:
    ev = _evaluator(model)
    return {"ram": ev(m.ram), "mmio": ev(m.mmio), "nomap": ev(m.nomap), "guests": ev(m.guests),
            "vcpus": ev(m.vcpus), "memcache": ev(m.memcache), "records": ev(m.records)}


def _page_cells(view: Symbolic, ev, p) -> dict:
    return page_cells({f: ev(view.page(f, p)) for f in PAGE_FIELDS})


def _entry_cells(view: Symbolic, ev, v, g) -> dict:
    return entry_cells(ev(view.e_state(v, g)), ev(view.life(v)), ev(view.e_pfn(v, g)),
                       ev(view.e_size(v, g)), ev(view.e_prot(v, g)))


def counterexample(q, model) -> dict:
    """The pre- and post-state of the pages and entries involved, in kernel vocabulary."""
    ev = _evaluator(model)
    pre, post = Symbolic(q.m, q.pre), Symbolic(q.m, q.post)
    pfns = sorted({ev(p) for p in q.pools["page"] if ev(p) >= 0})[:6]
    entries = sorted({(ev(v), ev(g)) for v, g in q.pools["entry"] if ev(v) >= 0 and ev(g) >= 0
                      and z3.is_true(model.eval(pre.is_guest(z3.IntVal(ev(v)))))})[:6]
    cells = {}
    for p in pfns:
        cells[f"pfn{p}"] = _changes(_page_cells(pre, ev, p), _page_cells(post, ev, p))
    for v, g in entries:
        protected = z3.is_true(model.eval(pre.protected(z3.IntVal(v)), model_completion=True))
        cells[f"vm{v}{'(protected)' if protected else ''} gfn{g}"] = _changes(
            _entry_cells(pre, ev, v, g), _entry_cells(post, ev, v, g))
    args = ", ".join(f"{p}={ev(a)}" for p, a in zip(q.t.params, q.args))
    return {"call": f"{q.t.name}({args})", "errno": ev(q.step.errno),
            "machine": _machine(model, q.m), "concrete": False, "cells": cells}


def _changes(before: dict, after: dict) -> dict:
    return {"pre": before, "post": after,
            "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}


def concretize(q, model, profile) -> dict | None:
    """A ground-tier model made into a concrete state of a small machine: the pages and guests
    the query is about, renumbered. When that state satisfies every invariant (checked
    concretely) and the call really breaks the property there, the counterexample is real."""
    ev = _evaluator(model)
    pre = Symbolic(q.m, q.pre)
    ram, mmio, nomap, guests = ev(q.m.ram), ev(q.m.mmio), ev(q.m.nomap), ev(q.m.guests)
    named = dict(zip(q.t.params, (ev(a) for a in q.args)))
    pfns = {ev(p) for p in q.pools["page"]}
    if "pfn" in named and named.get("nr", 1) <= 8:
        pfns |= set(range(named["pfn"], named["pfn"] + named.get("nr", 1)))
    entries = {(ev(v), ev(g)) for v, g in q.pools["entry"]}
    vms = {v for v, _ in entries} | {named.get("vm", -1)}
    vms |= {ev(pre.pte_handle(p)) for p in pfns if ev(pre.pte_owner(p)) == Owner.GUEST}
    vms = sorted(v for v in vms if 0 <= v < guests)
    live = [(v, g) for v, g in entries if v in vms and g >= 0
            and ev(pre.e_state(v, g)) != PageState.NOPAGE]
    if any(ev(pre.e_size(v, g)) != 1 for v, g in live if ev(pre.e_state(v, g)) != PageState.POISON):
        return None  # a 2 MiB block does not fit a small machine
    pfns |= {ev(pre.e_pfn(v, g)) for v, g in live}
    rams = sorted(p for p in pfns if 0 <= p < ram)
    if not rams:
        rams = [0] if ram > 0 else []
    new_pfn = {p: i for i, p in enumerate(rams)}
    new_vm = {v: i for i, v in enumerate(vms)}
    mc = tuple(ev(pre.memcache(v)) for v in vms) if ev(q.m.memcache) else (0,) * len(vms)
    small = Config(ram=len(rams), mmio=1, nomap=1, vcpus=max(1, ev(q.m.vcpus)),
                   host_records=z3.is_true(model.eval(q.m.records, model_completion=True)),
                   guests=tuple(ev(pre.protected(v)) for v in vms), gfns=1, hole_pfns=1,
                   memcache=max(mc, default=0) + 1 if ev(q.m.memcache) else 0)

    def pfn_of(p):
        if p in new_pfn:
            return new_pfn[p]
        if ram <= p < ram + mmio:
            return small.ram
        return small.ram + 1 if ram + mmio <= p < ram + mmio + nomap else small.pages

    fields = {f: [] for f in PAGE_FIELDS}
    for p in rams:
        for f in PAGE_FIELDS:
            value = ev(pre.page(f, p))
            if f == "pte_handle" and ev(pre.pte_owner(p)) == Owner.GUEST:
                value = new_vm.get(value, len(vms))
            if f == "contents" and value >= Contents.SECRET_BASE:
                value = Contents.SECRET_BASE + new_vm.get(value - Contents.SECRET_BASE, len(vms))
            fields[f].append(value)
    for f in PAGE_FIELDS:  # the MMIO page and the no-map page, untouched
        fields[f] += [PAGE_INIT[f]] * 2
    s2 = []
    for v in vms:
        leaves = []
        for vv, g in sorted(live):
            if vv != v:
                continue
            state = ev(pre.e_state(v, g))
            if state == PageState.POISON:
                leaves.append(Leaf(g, 1, 1, state, 0, 0))
            else:
                leaves.append(Leaf(g, 1, 1, state, ev(pre.e_prot(v, g)),
                                   new_pfn[ev(pre.e_pfn(v, g))]))
        s2.append(tuple(leaves))
    state = State(*[tuple(fields[f]) for f in PAGE_FIELDS],
                  life=tuple(ev(pre.life(v)) for v in vms), s2=tuple(s2),
                  refs=tuple(ev(pre.refs(v)) for v in vms), mc=mc,
                  maps=tuple(_mappings(pre, ev, v, [g for vv, g in sorted(live) if vv == v],
                                       new_pfn) for v in vms))
    args = tuple(pfn_of(a) if p == "pfn" else new_vm.get(a, len(vms)) if p == "vm" else a
                 for p, a in named.items())
    call = profile.call(q.t.name, args)
    view = profile.view(small, state)
    if not all(p.state(view) for p in profile.always if p.state):
        return None  # the projection is no reachable-looking state: no verdict
    outcome = profile.step(small, state, call)
    if outcome is None:
        return None
    post = profile.view(small, outcome.state)
    if q.prop.state:
        broken = not q.prop.state(post)
    else:
        broken = not q.prop.step(call.name, outcome.errno, view, post)
    if not broken:
        return None
    return PkvmProof.concrete_counterexample(profile, small, state, call, outcome, q.prop,
                                             list(range(small.pages)))


def _mappings(pre, ev, v, gfns, new_pfn) -> tuple:
    """The host's page-sized records of vm v at the given gfns (a block does not fit)."""
    out = []
    for g in gfns:
        nr = ev(pre.m_nr(v, g))
        if nr:
            out.append(Mapping(g, 1, new_pfn.get(ev(pre.m_pfn(v, g)), len(new_pfn))))
    return tuple(out)


def cases(q, ok) -> list:
    """The succeeding call split by leaf size (a page or a 2 MiB block), which z3 settles far
    faster one at a time."""
    args = dict(zip(q.t.params, q.args))
    if "nr" in args:
        size = args["nr"]
    elif "vm" in args and "gfn" in args:
        size = Symbolic(q.m, q.pre).e_size(args["vm"], args["gfn"])
    else:
        return [ok]
    return [z3.And(ok, size == 1), z3.And(ok, size == BLOCK_PAGES),
            z3.And(ok, size != 1, size != BLOCK_PAGES)]


class PkvmProof(ProofHooks):
    """The prover hooks (see `model/prover.py`)."""

    strengthening = (GHOST,)
    proof_only = (GHOST.name,)  # the ghost has no concrete reading: never evaluated on one
    # started first: the 2 MiB unshare, about 25 s of the 50 s of CPU a prove takes
    slow = (("sharing_pairs", "host_unshare_guest"), ("single_owner", "host_unshare_guest"))
    universe = "pages and guests"  # what "unbounded" quantifies over, for reports
    Machine, State, Reading, Step = Machine, SymbolicState, Symbolic, SymbolicStep
    initial = staticmethod(initial)

    pools = staticmethod(pools)
    cases = staticmethod(cases)
    small_models = staticmethod(small_models)
    concretize = staticmethod(concretize)
    counterexample = staticmethod(counterexample)

    @staticmethod
    def machine_of(model, m: Machine) -> dict:
        return _machine(model, m)

    @staticmethod
    def fix_machine(m: Machine, config: Config) -> list:
        """Facts that make the symbolic machine the concrete one of `config` (for BMC)."""
        return [m.ram == config.ram, m.mmio == config.mmio, m.nomap == config.nomap,
                m.vcpus == config.vcpus, m.memcache == (config.memcache > 0),
                m.records == config.host_records, m.guests == len(config.guests),
                *[z3.Select(m.protected, v) == flag for v, flag in enumerate(config.guests)]]

    @staticmethod
    def bmc_checks(profile) -> list:
        """(property, machine, depth, ...) of each bounded check whose property the profile has;
        a witness search keeps only the calls the profile has (an extension may remove one)."""
        props = {**profile.properties, STRANDING.name: STRANDING}
        checks = []
        for name, config, depth, *rest in BMC_CHECKS:
            if name not in props:
                continue
            if len(rest) == 2:  # (expected, calls)
                rest[1] = tuple(c for c in rest[1] if c in profile.transitions)
            checks.append((props[name], config, depth, *rest))
        return checks

    @staticmethod
    def range_pages(config: Config) -> range:
        """Indices at which BMC grounds its range checks (the machine's pages and one hole)."""
        return range(config.pages + 1)
