"""The z3 reading of every transition agrees exactly with the concrete one (errno and every
field of the successor), on states reached by random walks and on random calls."""

from __future__ import annotations

import pytest
import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.profiles.pkvm.concrete import Concrete
from model.profiles.pkvm.states import PAGE_FIELDS, Config, initial_state
from model.profiles.pkvm.symbolic import (
    ENTRY_EMPTY, MAPPING_FIELDS, Machine, SymbolicState, SymbolicStep,
)
from model.symbolic import INT, run
from tests.pkvm.helpers import PKVM, mutant, seeded

TRANSITIONS = PKVM.transitions


def Call(name, args):
    return PKVM.call(name, args)


def step(config, state, call, profile=PKVM):
    return profile.step(config, state, call)


CONFIG = Config(ram=3, mmio=1, guests=(True, False, False), gfns=3, nrs=(1, 2, 512),
                prots=(6, 7, 9), hole_pfns=1)
CALLS = PKVM.calls(CONFIG)
# Arguments past the explored domains too: far pfns, gfns and handles.
EXTRA = [Call("host_donate_hyp", (2**36 - 1, 2)), Call("host_share_guest", (0, 2**36 - 1, 1, 1, 6)),
         Call("start_teardown_vm", (7,)), Call("guest_write", (9, 0)),
         Call("host_unshare_guest", (512, 512, 1)), Call("hyp_donate_host", (1, 0)),
         Call("host_share_ffa", (2, 2**64 - 1)), Call("host_unshare_ffa", (2**64 - 1, 2**64 - 1)),
         Call("host_donate_hyp", (0, 0)), Call("host_share_guest", (2**64 - 1, 0, 1, 1, 6))]


def encode(config: Config, state) -> tuple[Machine, SymbolicState]:
    """A concrete state as z3 arrays over a concrete machine."""
    m = Machine("_c")
    view = Concrete(config, state)
    arrays = {}
    for f in PAGE_FIELDS:
        default = z3.BoolVal(False) if f == "hyp_mapped" else z3.IntVal(0)
        arr = z3.K(INT, default if f not in ("hyp", "ffa") else z3.IntVal(3))
        for p in range(config.pages + config.hole_pfns + 1):
            value = view.page(f, p)
            arr = z3.Store(arr, p, z3.BoolVal(bool(value)) if f == "hyp_mapped" else z3.IntVal(int(value)))
        arrays[f] = arr
    life = z3.K(INT, z3.IntVal(2))
    for v, value in enumerate(state.life):
        life = z3.Store(life, v, int(value))
    arrays["life"] = life
    refs = z3.K(INT, z3.IntVal(0))
    for v, value in enumerate(state.refs):
        refs = z3.Store(refs, v, int(value))
    arrays["refs"] = refs
    mc = z3.K(INT, z3.IntVal(0))
    for v, value in enumerate(state.mc):
        mc = z3.Store(mc, v, int(value))
    arrays["mc"] = mc
    v, g = z3.Ints("v g")
    for f, empty in ENTRY_EMPTY.items():
        arr = z3.Lambda([v, g], z3.IntVal(int(empty)))
        for vm in range(len(config.guests)):
            for leaf in state.s2[vm]:
                for gfn in range(leaf.gfn, leaf.gfn + leaf.span):
                    arr = z3.Store(arr, vm, gfn, getattr(view, f)(vm, gfn))
        arrays[f] = arr
    for f in MAPPING_FIELDS:  # the host's records, per gfn they cover
        arr = z3.Lambda([v, g], z3.IntVal(0))
        for vm in range(len(config.guests)):
            for m_ in state.maps[vm]:
                for gfn in range(m_.gfn, m_.gfn + m_.nr):
                    arr = z3.Store(arr, vm, gfn, getattr(view, f)(vm, gfn))
        arrays[f] = arr
    for f in ("nb",):
        arrays[f] = z3.K(INT, z3.IntVal(0))
    for f in ("slot", "holder_v", "holder_g"):
        arrays[f] = z3.Lambda([v, g], z3.IntVal(0))
    protected = z3.K(INT, z3.BoolVal(False))
    for vm, flag in enumerate(config.guests):
        protected = z3.Store(protected, vm, z3.BoolVal(flag))
    m.protected = protected
    facts = [m.ram == config.ram, m.mmio == config.mmio, m.nomap == config.nomap,
             m.vcpus == config.vcpus, m.memcache == (config.memcache > 0),
             m.records == config.host_records, m.guests == len(config.guests)]
    return m, SymbolicState(arrays), facts


def agree(config, state, call, profile=PKVM) -> None:
    outcome = step(config, state, call, profile)
    m, pre, facts = encode(config, state)
    transitions = profile.transitions
    sym = run(transitions[call.name], SymbolicStep(m, pre, transitions),
              [z3.IntVal(a) for a in call.args])
    _, expected, _ = encode(config, outcome.state)
    points = range(config.pages + config.hole_pfns + 1)
    gfns = sorted({g for leaves in (state.s2 + outcome.state.s2) for leaf in leaves
                   for g in range(leaf.gfn, leaf.gfn + leaf.span)}
                  | {g for maps in (state.maps + outcome.state.maps) for m_ in maps
                     for g in range(m_.gfn, m_.gfn + m_.nr)} | set(range(config.gfns)))
    same = [sym.errno == outcome.errno]
    for f in PAGE_FIELDS:
        same += [z3.Select(sym.post[f], p) == z3.Select(expected.arrays[f], p) for p in points]
    same += [z3.Select(sym.post[f], v) == z3.Select(expected.arrays[f], v)
             for f in ("life", "refs", "mc") for v in range(len(config.guests))]
    for f in (*ENTRY_EMPTY, *MAPPING_FIELDS):
        same += [z3.Select(sym.post[f], v, g) == z3.Select(expected.arrays[f], v, g)
                 for v in range(len(config.guests)) for g in gfns]
    solver = z3.Solver()
    solver.add(*facts, *sym.side_facts(), z3.Not(z3.And(*same)))
    verdict = solver.check()
    assert verdict == z3.unsat, f"{call} disagrees from {state}: {solver.model() if verdict == z3.sat else verdict}"


def walk(choices):
    state = initial_state(CONFIG)
    for index in choices:
        outcome = step(CONFIG, state, CALLS[index % len(CALLS)])
        if outcome is not None and outcome.errno == 0:
            state = outcome.state
    return state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 10**6), max_size=30), st.integers(0, 10**6))
def test_symbolic_step_agrees_with_concrete(choices, pick):
    state = walk(choices)
    candidates = CALLS + EXTRA
    call = candidates[pick % len(candidates)]
    if step(CONFIG, state, call) is None:  # a call the host never makes (bound/discipline)
        return
    agree(CONFIG, state, call)


def test_every_transition_is_compared():
    """The call domains reach every transition, so the agreement test covers all of them."""
    assert {c.name for c in CALLS} == set(TRANSITIONS)


def test_agreement_check_finds_a_divergence():
    """A symbolic reading that differs from the concrete one must be caught."""
    state = walk([5, 17, 40])
    call = Call("host_share_hyp", (0,))
    original = TRANSITIONS["host_share_hyp"].body

    def broken(s, pfn):
        yield from original(s, pfn)
        if not isinstance(s, Concrete):
            s.set("pins", pfn, 1)
    TRANSITIONS["host_share_hyp"] = TRANSITIONS["host_share_hyp"].__class__(
        **{**TRANSITIONS["host_share_hyp"].__dict__, "body": broken})
    try:
        try:
            agree(CONFIG, state, call)
        except AssertionError:
            return
        raise AssertionError("a divergent symbolic reading went unnoticed")
    finally:
        TRANSITIONS["host_share_hyp"] = TRANSITIONS["host_share_hyp"].__class__(
            **{**TRANSITIONS["host_share_hyp"].__dict__, "body": original})


HOLE = CONFIG.pages  # the first pfn past the no-map pages: a memory hole, no metadata stored
NOMAP = CONFIG.ram + CONFIG.mmio  # a MEMBLOCK_NOMAP page: metadata, never given away


@pytest.mark.parametrize("name", sorted(PKVM.mutants))
def test_readings_agree_under_every_mutant_on_holes_and_mmio_too(name):
    """A mutant may write before its checks, even to a hole or an MMIO page: both readings
    must drop or keep the same writes."""
    protocol = mutant(name)
    config = protocol.adjust(CONFIG)
    state = walk([5, 17, 40, 3, 77, 1000, 12])
    for call in [c for c in protocol.calls(config) if c.name == PKVM.mutants[name].transition][:12] + [
            protocol.call(PKVM.mutants[name].transition, args) for args in _edge_args(name)]:
        if protocol.step(config, state, call) is not None:
            agree(config, state, call, protocol)


def _edge_args(name):
    """Arguments on the MMIO page, the no-map page and the hole, for the mutated transition."""
    params = PKVM.transitions[PKVM.mutants[name].transition].params
    out = []
    for pfn in (CONFIG.ram, NOMAP, HOLE):
        values = {"pfn": pfn, "nr": 1, "gfn": 0, "vm": 1, "prot": 6}
        out.append(tuple(values[p] for p in params))
    return out


def test_a_hole_write_is_dropped_by_both_readings():
    original = TRANSITIONS["host_share_hyp"].body

    def writes_first(s, pfn):
        s.set("host", pfn, 1)
        yield from original(s, pfn)
    agree(CONFIG, initial_state(CONFIG), Call("host_share_hyp", (HOLE,)),
          seeded("host_share_hyp", writes_first))


def test_readings_agree_on_a_range_whose_end_wraps():
    """Under the wrapped-end mutant the range pfn 2, nr 2**64 - 1 passes its checks and runs
    over the MMIO, no-map and hole pages: both readings write the stored pages alike and drop
    the hole's, without touching 2**64 pages."""
    protocol = mutant("donate_hyp_wrapped_range_end")
    config = protocol.adjust(CONFIG)
    call = protocol.call("host_donate_hyp", (2, 2**64 - 1))
    outcome = protocol.step(config, initial_state(config), call)
    assert outcome.errno == 0 and outcome.state.hyp[2:] == (0, 0, 0)
    agree(config, initial_state(config), call, protocol)


@pytest.mark.parametrize("run", [[("host_share_hyp", (0,))] * 2 + [("host_unshare_hyp", (0,))],
                                 [("host_share_hyp", (1,)), ("hyp_pin_shared_mem", (1,)),
                                  ("host_unshare_hyp", (1,)), ("host_unshare_hyp", (4,))]])
def test_readings_agree_with_the_host_records(run):
    """With the host's records modelled, each wrapper call (counted, recorded, refused) is read
    alike by both readings."""
    config = Config(ram=3, mmio=1, guests=(True,), gfns=1, host_records=True)
    state = initial_state(config)
    for name, args in run:
        call = Call(name, args)
        agree(config, state, call)
        state = step(config, state, call).state


@pytest.mark.parametrize("run", [
    [("host_share_guest", (0, 0, 1, 1, 6)), ("host_share_guest", (1, 0, 1, 1, 6)),
     ("host_unshare_guest", (0, 2, 1)), ("hole_punch", (1, 0)), ("host_unshare_guest", (0, 1, 1))],
    [("host_donate_guest", (0, 0, 0)), ("host_force_reclaim_page_guest", (0,)),
     ("host_donate_guest", (1, 0, 0)), ("reclaim_dying_guest_page", (0, 0)),
     ("start_teardown_vm", (0,)), ("reclaim_dying_guest_page", (0, 0)),
     ("reclaim_dying_guest_page", (0, 0))],
    [("host_donate_guest", (0, 1, 0)), ("start_teardown_vm", (0,)), ("finalize_teardown_vm", (0,))]])
def test_readings_agree_with_the_host_mappings(run):
    """With the host's pkvm_mappings modelled, each wrapper call (recorded, refused on a record,
    refused by the hypercall with the record kept, dropped, freed at teardown) is read alike."""
    config = Config(ram=2, mmio=1, guests=(True, False), gfns=2, host_records=True,
                    host_discipline=False)
    state = initial_state(config)
    for name, args in run:
        call = Call(name, args)
        agree(config, state, call)
        state = step(config, state, call).state
