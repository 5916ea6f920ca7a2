"""The in-place conversion proposal (docs/examples/gmem_in_place_conversion.py), an extension of
the gmem profile that adds state fields and redefines the attribute read: explored (EAGAIN
witnessed), proved, shown, and its seeded bug (the safe-for-conversion check dropped) caught by
exploration and by the prover."""

from pathlib import Path

from model.explorer import explore
from model.extensions import load
from model.prover import INIT, Obligation, discharge_all
from model.profiles.gmem.states import INIT_SHARED, MMAP
from tests.gmem.helpers import GMEM, TINY

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PROPOSAL = load(GMEM, str(EXAMPLES / "gmem_in_place_conversion.py"))
UNSAFE = load(PROPOSAL, str(EXAMPLES / "gmem_in_place_conversion_unsafe.py"))
ONE_PAGE = TINY["sw_protected"]


def test_the_proposal_changes_the_profile_as_it_says():
    assert [f.name for f in PROPOSAL.state_fields] == ["iattr", "pin"]
    assert "set_attributes" not in PROPOSAL.transitions
    assert {"set_attributes2", "host_pin", "host_unpin"} <= set(PROPOSAL.transitions)
    state = PROPOSAL.initial_state(ONE_PAGE)
    assert state.iattr == ((0,),) and state.pin == ((0,),)
    assert "iattr_in_values" in {p.name for p in PROPOSAL.prover.strengthening}


def test_a_new_file_starts_private_unless_init_shared():
    state = PROPOSAL.initial_state(ONE_PAGE)
    for flags, cell in ((MMAP, "private"), (MMAP | INIT_SHARED, "shared")):
        out = PROPOSAL.step(ONE_PAGE, state, PROPOSAL.call("create_file", (1, flags)))
        assert out.errno == 0
        assert PROPOSAL.presenter.snapshot(ONE_PAGE, out.state)["file0"]["iattr0"] == cell


def test_one_page_explores_clean_and_witnesses_the_refused_conversion():
    result = explore(PROPOSAL, ONE_PAGE)
    assert result.complete and not result.violations
    assert result.graph_checks["graph_can_destroy"] == 0
    for name in ("conversion_refused", "host_data_private", "private_then_shared",
                 "converted_to_private", "set_attributes2_succeeds", "host_pin_succeeds",
                 "host_write_succeeds", "refaulted_zero"):
        assert result.sometimes[name], name
    # one slot: one file cannot back two
    assert {k for k, v in result.sometimes.items() if not v} == {"one_file_two_slots"}


def test_the_extensions_own_properties_are_proved():
    obs = [Obligation("host_never_maps_private_index", "set_attributes2"),
           Obligation("host_never_maps_private_index", "host_pin"),
           Obligation("eagain_changes_nothing", "set_attributes2"),
           Obligation("kinds_agree", "set_attributes2"),
           Obligation("host_never_private", "bind_slot"),
           Obligation("iattr_in_values", INIT)]
    results = discharge_all(PROPOSAL, obs, jobs=2)
    assert [r.status for r in results] == ["proved"] * len(obs), \
        [(r.property, r.transition, r.status) for r in results]


def test_the_unsafe_conversion_is_caught():
    result = explore(UNSAFE, ONE_PAGE)
    [violation] = [v for v in result.violations if v.property == "host_never_maps_private_index"]
    assert [st.call.name for st in violation.trace][-2:] == ["host_pin", "set_attributes2"]
    [proof] = discharge_all(UNSAFE, [Obligation("host_never_maps_private_index",
                                                "set_attributes2")], jobs=1,
                             budget=5_000_000)
    assert proof.status != "proved"


def test_conform_skips_the_selftests_that_call_a_removed_transition(capsys, tmp_path):
    """The 7.1 selftests that set per-VM attributes cannot run on the proposal (it removes
    set_attributes): conform names them as skipped, in the report and in JUnit, and runs the
    rest, whose disagreements are the proposal's new fields (the reference is 7.1)."""
    import json

    from model.cli import main

    junit = tmp_path / "conform.xml"
    code = main(["conform", "--profile", "gmem", "--extension",
                 str(EXAMPLES / "gmem_in_place_conversion.py"), "--no-explore", "--walks", "0",
                 "--json", "--junit", str(junit)])
    data = json.loads(capsys.readouterr().out)
    skipped = data["scenarios"]["skipped"]
    assert code == 1 and data["disagreements"] > 0
    assert [f["calls"] for f in skipped] == [["set_attributes"]] * len(skipped) and skipped
    assert {f["path"] for f in skipped}.isdisjoint(f["path"] for f in data["scenarios"]["per_file"])
    assert junit.read_text().count("which the extensions remove") == len(skipped)
