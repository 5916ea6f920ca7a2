"""Conformance (model/conformance/): the pKVM model held against the reference hypervisor."""

import errno

import pytest

from model.conformance import (
    Disagreement, EdgeChecker, explore_conformance, run_scenarios, shipped_scenarios, walk,
)
from model.conformance.compare import diff
from model.profiles.pkvm.abstraction import invoke, reference_for
from model.profiles.pkvm.reference import NARROW_WALK, SMALL_WALK
from model.profiles.pkvm.states import Config, initial_state
from model.references.pkvm import Hypervisor
from model.references.pkvm import mem_protect, pkvm
from tests.pkvm.helpers import PKVM, mutant

TRANSITIONS = PKVM.transitions
CATALOG = list(PKVM.mutants.values())


def Call(name, args):
    return PKVM.call(name, args)


def step(config, state, call):
    return PKVM.step(config, state, call)


SMALL = Config(ram=1, mmio=1, guests=(True, False), gfns=2, nrs=(1,))


def test_model_and_reference_have_the_same_calls():
    """Fails when a transition exists in the model but not in the reference, or back."""
    missing = [name for name in TRANSITIONS if name not in Hypervisor.CALLS or not hasattr(Hypervisor, name)]
    extra = [name for name in Hypervisor.CALLS if name not in TRANSITIONS]
    assert (missing, extra) == ([], [])


def test_small_exploration_agrees_edge_by_edge():
    report = explore_conformance(PKVM, SMALL)
    assert report.complete and report.disagreements == []
    assert report.edges_checked > 50_000 and report.skipped == 0
    assert 0 < report.failing_calls < report.edges_checked


def test_two_pages_one_gfn_exploration_agrees():
    report = explore_conformance(PKVM, Config(ram=2, mmio=0, guests=(True, False), gfns=1, nrs=(1, 2)),
                                 max_states=4000)
    assert report.disagreements == [] and report.edges_checked > 250_000


def test_walks_agree():
    report = walk(PKVM, [SMALL_WALK, NARROW_WALK], walks=4, steps=150)
    assert report.disagreements == [] and report.calls >= 500


def test_shipped_scenarios_agree():
    reports = run_scenarios(PKVM, shipped_scenarios(PKVM))
    assert len(reports) >= 10
    assert [d.text() for r in reports for d in r.disagreements] == []


# -- every mutant is caught ------------------------------------------------------------------------

def catch(name):
    """Conformance of the mutant's model against the reference: exploration, then scenarios,
    then walks, until one of them disagrees."""
    config = Config()
    mutated = mutant(name)
    found = explore_conformance(mutated, mutated.adjust(config), discipline=config.host_discipline,
                                limit=1, max_states=3000).disagreements
    if not found:
        found = [d for r in run_scenarios(mutated, shipped_scenarios(PKVM))
                 for d in r.disagreements]
    if not found:
        found = walk(mutated, [mutated.adjust(c) for c in (SMALL_WALK, NARROW_WALK)], walks=6,
                     steps=200, discipline=True).disagreements
    return found


@pytest.mark.parametrize("name", [m.name for m in CATALOG])
def test_each_mutant_is_caught(name):
    found = catch(name)
    assert found, f"mutant {name} survives conformance"
    d = found[0]
    text = d.text()
    assert d.call is not None and d.call.name in text
    assert d.cells or d.note
    if d.kind in ("errno", "state", "changed-on-failure", "discipline"):
        assert d.cells  # a readable diff: the differing cells, nothing else


def test_discipline_mutant_is_reported_as_a_discipline_breach():
    found = catch("finalize_without_reclaim")
    assert found[0].kind == "discipline"
    assert found[0].call.name == "finalize_teardown_vm"
    assert "disciplined host never does" in found[0].note


# -- a broken reference is caught ---------------------------------------------------------------------

def test_reference_that_skips_zeroing_is_caught(monkeypatch):
    monkeypatch.setattr(mem_protect, "hyp_poison_page", lambda pkvm, pfn: None)
    d = explore_conformance(PKVM, SMALL, limit=1).disagreements[0]
    assert d.kind == "state"
    assert d.call.name in ("host_force_reclaim_page_guest", "hole_punch", "reclaim_dying_guest_page")
    assert any(c.what == "contents" and c.model == "ZERO" for c in d.cells)


def test_reference_with_a_wrong_errno_is_caught(monkeypatch):
    real = pkvm.pkvm_finalize_teardown_vm
    monkeypatch.setattr(pkvm, "pkvm_finalize_teardown_vm",
                        lambda hv, handle: -errno.EBUSY if real(hv, handle) == -errno.EINVAL else real(hv, handle))
    d = explore_conformance(PKVM, SMALL, limit=1).disagreements[0]
    assert (d.kind, d.call.name, d.model_errno, d.reference_errno) == (
        "errno", "finalize_teardown_vm", -errno.EINVAL, -errno.EBUSY)
    assert d.trace == [] and d.cells == []  # from the initial state, nothing changed on either side


def test_reference_that_writes_before_failing_is_caught(monkeypatch):
    real = mem_protect.pkvm_host_unshare_hyp

    def sloppy(hv, pfn):
        if 0 <= pfn < hv.nr_ram_pages:
            mem_protect.set_host_state(hv.hyp_vmemmap, pfn, mem_protect.OWNED)
        return real(hv, pfn)

    monkeypatch.setattr(mem_protect, "pkvm_host_unshare_hyp", sloppy)
    found = explore_conformance(PKVM, SMALL, limit=1).disagreements
    assert found[0].kind == "changed-on-failure"
    assert found[0].call.name == "host_unshare_hyp"
    assert any(c.what == "host" for c in found[0].cells)


def test_reference_that_crashes_is_caught(monkeypatch):
    monkeypatch.setattr(Hypervisor, "hyp_pin_shared_mem", lambda hv, pfn: 1 // 0)
    d = explore_conformance(PKVM, SMALL, limit=1).disagreements[0]
    assert d.kind == "reference-error" and "ZeroDivisionError" in d.note


def test_reference_that_never_maps_the_host_is_caught_by_walks_and_shrunk(monkeypatch):
    """A reference whose host stage-2 never gets an identity mapping: a 100-call walk shrinks
    to a sequence of at most two calls (one host_write, or a donation and its return)."""
    monkeypatch.setattr(mem_protect, "host_stage2_idmap_locked", lambda hv, pfn: None)
    report = walk(PKVM, [SMALL_WALK], walks=2, steps=100)
    (d,) = report.disagreements
    assert len(d.trace) <= 1
    assert [(c.what, c.model) for c in d.cells if c.what == "host stage-2"] == [("host stage-2", "identity")]


# -- the checker itself -------------------------------------------------------------------------------

def test_edge_checker_replays_edges_of_unreduced_bfs():
    checker = EdgeChecker(PKVM, SMALL)
    s0 = initial_state(SMALL)
    call = Call("host_share_hyp", (0,))
    outcome = step(SMALL, s0, call)
    checker(s0, call, outcome)
    assert checker.disagreements == [] and checker.trace(outcome.state) == [call]
    checker(s0, Call("host_share_hyp", (5,)), step(SMALL, s0, Call("host_share_hyp", (5,))))
    assert checker.failing == 1 and checker.checked == 2


def test_diff_shows_only_differing_cells_in_kernel_vocabulary():
    s0 = step(SMALL, initial_state(SMALL), Call("vcpu_load", (0,))).state
    s1 = step(SMALL, s0, Call("host_donate_guest", (0, 1, 0))).state
    cells = diff(PKVM, SMALL, s0, s1)
    assert [(c.where, c.what) for c in cells] == [
        ("page 0", "host"), ("page 0", "vm0"), ("page 0", "host stage-2"), ("vm0 gfn 1", "stage-2")]
    assert cells[2].reference == "DONATION:GUEST(vm0,gfn1)"
    assert cells[3].reference == "OWNED -> pfn 0 RWX (page)"
    text = Disagreement("state", Call("host_donate_guest", (0, 1, 0)), 0, 0, cells).text()
    assert "host_donate_guest(pfn=0, gfn=1, vm=0): model ok, reference ok [state]" in text


def test_finalize_of_an_unknown_handle_agrees():
    """Once a crash of the model (the discipline guard read a VM that does not exist), found by
    the first random walk: both sides now answer -EINVAL (get_pkvm_unref_hyp_vm_locked())."""
    config = Config()
    call = Call("finalize_teardown_vm", (len(config.guests),))
    outcome = step(config, initial_state(config), call)
    hv = reference_for(config)
    assert outcome.errno == invoke(hv, call) == -errno.EINVAL


# -- the command line ------------------------------------------------------------------------------

def conform_cli(argv):
    """`pkvm-model conform ...` through the conform subcommand's own parser."""
    from model.cli import _Parser
    from model.commands import conform as command

    parser = _Parser(prog="pkvm-model")
    command.register(parser.add_subparsers(dest="command", required=True, parser_class=_Parser),
                     PKVM)
    args = parser.parse_args(["conform", *argv])
    return args.run(args)


def test_conform_is_a_subcommand():
    from model.cli import SUBCOMMANDS
    assert "conform" in SUBCOMMANDS


def test_conform_agrees_and_exits_0(capsys):
    assert conform_cli(["--pages", "1", "--gfns", "1", "--walks", "3", "--walk-steps", "50"]) == 0
    out = capsys.readouterr().out
    assert "exploration  ram=1 mmio=1 nomap=1 guests=protected,np" in out
    shipped = len(list(PKVM.scenarios.glob("*.scn")))  # every shipped scenario file is run
    assert f"scenarios    {shipped} files" in out and "model and reference agree" in out


def test_conform_json(capsys):
    import json
    assert conform_cli(["--pages", "1", "--gfns", "1", "--walks", "0", "--no-scenarios", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["disagreements"] == 0 and data["exploration"]["complete"]
    assert data["exploration"]["edges_checked"] > 0 and "walks" not in data


def test_conform_catches_a_mutant_and_exits_1(capsys):
    assert conform_cli(["--mutant", "unshare_hyp_ignores_pins", "--walks", "0", "--no-scenarios"]) == 1
    out = capsys.readouterr().out
    assert "host_unshare_hyp(pfn=0): model ok, reference -EBUSY [errno]" in out
    assert "after 2 call(s): host_share_hyp(pfn=0); hyp_pin_shared_mem(pfn=0)" in out
    assert "more like it" in out


@pytest.mark.parametrize("argv, message", [
    (["--mutant", "nope"], "unknown mutant 'nope'"),
    (["--walks", "-1"], "--walks must be at least 0"),
    (["--walk-steps", "0"], "--walk-steps must be at least 1"),
    (["--scenarios", "/nonexistent/dir"], "is not a directory"),
    (["--pages", "0"], "need at least one RAM page"),
])
def test_conform_bad_input_is_a_usage_error(argv, message):
    from model.cli import UsageError
    with pytest.raises(UsageError, match=message):
        conform_cli(argv)


def test_conform_names_a_malformed_scenario_line(tmp_path):
    from model.cli import UsageError
    (tmp_path / "x.scn").write_text("machine ram=1\nhost_write pfn=0 -> maybe\n")
    with pytest.raises(UsageError, match=r"x\.scn:2: expected result 'maybe'"):
        conform_cli(["--scenarios", str(tmp_path), "--no-explore", "--walks", "0"])


def test_edge_checker_refuses_the_symmetry_reduced_exploration():
    from model.explorer import explore
    with pytest.raises(RuntimeError, match="symmetry=False"):
        explore(PKVM, Config(), symmetry=True, properties=[], on_edge=EdgeChecker(PKVM, Config()))


def test_sources_reached_only_by_disagreeing_edges_are_skipped(monkeypatch):
    """A reference whose pins never count: every state with a pin is reached only through
    disagreeing edges, so the calls from it are skipped (not replayed, not an error)."""
    monkeypatch.setattr(mem_protect, "hyp_set_page_count", lambda vmemmap, pfn, count: None)
    report = explore_conformance(PKVM, SMALL, limit=None)
    assert report.complete and report.skipped > 0
    assert {d.call.name for d in report.disagreements} == {"hyp_pin_shared_mem"}


def test_minimize_drops_every_call_it_can():
    from model.conformance import minimize, replay
    mutated = mutant("unshare_hyp_ignores_pins")
    noise = [Call("host_write", (1,)), Call("host_share_ffa", (1, 1)), Call("host_donate_guest", (1, 0, 0)),
             Call("host_share_hyp", (0,)), Call("host_write", (0,)), Call("hyp_pin_shared_mem", (0,)),
             Call("host_share_hyp", (5,)), Call("host_unshare_hyp", (0,))]
    d = replay(mutated, SMALL, noise)
    assert d.call == Call("host_unshare_hyp", (0,)) and len(d.trace) == 7
    small = minimize(mutated, SMALL, d)
    assert small.trace == [Call("host_share_hyp", (0,)), Call("hyp_pin_shared_mem", (0,))]
    assert (small.kind, small.model_errno, small.reference_errno) == ("errno", 0, -errno.EBUSY)
