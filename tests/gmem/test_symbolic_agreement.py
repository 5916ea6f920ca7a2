"""The z3 reading of every transition agrees exactly with the concrete one (code and every
field of the successor), on states reached by random walks, for random calls, on every VM type
(the pattern of tests/pkvm/test_symbolic_agreement.py); and so it does for the in-place
conversion extension, whose fields and redefined reads both readings take from the profile."""

from errno import EAGAIN
from pathlib import Path


import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.extensions import load
from model.profiles.gmem.readings import Machine, SymbolicState, SymbolicStep
from model.profiles.gmem.states import VMFD, Config
from model.symbolic import INT, run
from tests.gmem.helpers import GMEM

PROPOSAL = load(GMEM, str(Path(__file__).resolve().parents[2] / "docs" / "examples" /
                          "gmem_in_place_conversion.py"))

CONFIGS = [Config(vm=vm, files=2, slots=2, gfns=3, pages=2) for vm in ("sw_protected", "x86", "arm64")]
CALLS = [GMEM.calls(c) for c in CONFIGS]
EXTRA = [GMEM.call("guest_read", (2, 2)), GMEM.call("bind_slot", (1, 1, 2, 1, 0)),
         GMEM.call("host_write", (0, 70)), GMEM.call("punch", (1, 0, 5)),
         GMEM.call("set_attributes", (0, 3, 1)), GMEM.call("allocate", (VMFD, 0, 1))]


def encode(config: Config, state, fields=GMEM.fields):
    """A concrete state as z3 terms over the concrete machine."""
    arrays = {}
    for field in fields.names:
        value = getattr(state, field)
        kind = fields.kind[field]
        if kind == "scalar":
            arrays[field] = z3.IntVal(value)
        elif kind == "index":
            a, b = z3.Ints("a b")
            arr = z3.Lambda([a, b], z3.IntVal(0))
            for f, row in enumerate(value):
                for i, v in enumerate(row):
                    arr = z3.Store(arr, f, i, v)
            arrays[field] = arr
        else:
            arr = z3.K(INT, z3.IntVal(0))
            for k, v in enumerate(value):
                arr = z3.Store(arr, k, v)
            arrays[field] = arr
    m = Machine("_c")
    facts = [m.vm_type == config.vm_type, m.slots == config.slots, m.gfns == config.gfns,
             m.files == config.files]
    return m, SymbolicState(arrays, fields), facts


def points(config, kind):
    if kind == "scalar":
        return [()]
    if kind == "index":
        return [(f, i) for f in range(config.files) for i in range(config.pages)]
    n = {"file": config.files, "slot": config.slots, "gfn": config.gfns}[kind]
    return [(k,) for k in range(n)]


def agree(config, state, call, profile=GMEM):
    outcome = profile.step(config, state, call)
    if outcome is None:
        return False
    fields = profile.fields
    m, pre, facts = encode(config, state, fields)
    sym = run(profile.transitions[call.name],
              profile.prover.stepping(m, pre, profile.transitions),
              [z3.IntVal(a) for a in call.args])
    _, expected, _ = encode(config, outcome.state, fields)
    same = [sym.errno == outcome.errno]
    for field in fields.names:
        got, want = sym.post[field], expected.arrays[field]
        for p in points(config, fields.kind[field]):
            same.append((z3.Select(got, *p) == z3.Select(want, *p)) if p else got == want)
    solver = z3.Solver()
    solver.add(*facts, *sym.side_facts(), z3.Not(z3.And(*same)))
    verdict = solver.check()
    assert verdict == z3.unsat, f"{call} disagrees from {state}"
    return True


def walk(which, choices, profile=GMEM):
    config = CONFIGS[which]
    calls = CALLS[which] if profile is GMEM else profile.calls(config)
    state = profile.initial_state(config)
    for index in choices:
        outcome = profile.step(config, state, calls[index % len(calls)])
        if outcome is not None and outcome.errno == 0:
            state = outcome.state
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2), st.lists(st.integers(0, 10**6), max_size=40), st.integers(0, 10**6))
def test_symbolic_step_agrees_with_concrete(which, choices, pick):
    state = walk(which, choices)
    candidates = CALLS[which] + EXTRA
    agree(CONFIGS[which], state, candidates[pick % len(candidates)])


PROPOSAL_CALLS = [PROPOSAL.calls(c) for c in CONFIGS]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2), st.lists(st.integers(0, 10**6), max_size=40), st.integers(0, 10**6))
def test_the_proposals_symbolic_step_agrees_with_concrete(which, choices, pick):
    state = walk(which, choices, PROPOSAL)
    calls = PROPOSAL_CALLS[which]
    agree(CONFIGS[which], state, calls[pick % len(calls)], PROPOSAL)


def test_the_proposal_agrees_on_a_refused_and_a_done_conversion():
    config = CONFIGS[0]
    state = PROPOSAL.initial_state(config)
    for name, args in (("create_file", (2, 3)), ("bind_slot", (0, 0, 2, 0, 0)), ("mmap", (0,)),
                       ("host_write", (0, 1)), ("host_pin", (0, 0))):
        state = PROPOSAL.step(config, state, PROPOSAL.call(name, args)).state
    for args in ((0, 0, 2, 1, 0), (0, 1, 1, 1, 0), (0, 0, 1, 1, 4)):
        call = PROPOSAL.call("set_attributes2", args)
        assert agree(config, state, call, PROPOSAL)
    refused = PROPOSAL.step(config, state, PROPOSAL.call("set_attributes2", (0, 0, 2, 1, 0)))
    assert refused.errno == -EAGAIN and refused.state == state  # index 0 is pinned


def test_every_transition_is_compared():
    assert {c.name for c in CALLS[0]} == set(GMEM.transitions)


def test_agreement_check_finds_a_divergence():
    """A symbolic reading that differs from the concrete one is caught."""
    config = CONFIGS[0]
    state = walk(0, [3, 40, 77])
    call = GMEM.call("create_file", (2, 1))
    from dataclasses import replace
    original = GMEM.transitions["create_file"]

    def broken(s, size, flags):
        yield from original.body(s, size, flags)
        if isinstance(s, SymbolicStep):
            s.set("nfiles", None, 7)
    GMEM.transitions["create_file"] = replace(original, body=broken)
    try:
        try:
            agree(config, state, call)
        except AssertionError:
            return
        raise AssertionError("a divergent symbolic reading went unnoticed")
    finally:
        GMEM.transitions["create_file"] = original
