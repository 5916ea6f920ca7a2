"""`pkvm-model prove` and `pkvm-model mutants`: reports, exit codes, bad input.

Proofs run as a user runs them, in a process of their own: z3's answers depend on what its
context built before, and the tests before these build z3 terms in pytest's process.
"""

import json
import subprocess
import sys

import pytest

from model.cli import main


def run_json(capsys, argv):
    if argv[0] != "prove":
        code = main(argv)
        return code, json.loads(capsys.readouterr().out)
    done = subprocess.run([sys.executable, "-m", "model.cli", *argv], capture_output=True,
                          text=True, timeout=900)
    return done.returncode, json.loads(done.stdout)


def test_prove_one_transition_json(capsys):
    code, data = run_json(capsys, ["prove", "--transition", "host_share_hyp", "--json", "--no-bmc"])
    assert code == 0
    assert data["result"] == "proved"
    assert data["transitions"] == ["host_share_hyp"]
    assert {o["property"] for o in data["obligations"]} >= {"single_owner", "check_then_commit"}
    assert all(o["status"] == "proved" and o["counterexample"] is None for o in data["obligations"])


def test_prove_mutant_gives_counterexample(capsys):
    code, data = run_json(capsys, ["prove", "--mutant", "unshare_hyp_ignores_pins",
                                   "--transition", "host_unshare_hyp", "--json", "--no-bmc"])
    assert code == 1
    assert data["result"] == "violated"
    bad = [o for o in data["obligations"] if o["status"] == "violated"]
    assert {o["property"] for o in bad} >= {"pins"}
    cex = bad[0]["counterexample"]
    assert cex["call"].startswith("host_unshare_hyp(pfn=")
    assert any(cells["changed"] for cells in cex["cells"].values())


def test_prove_renders_counterexample():
    done = subprocess.run([sys.executable, "-m", "model.cli", "prove", "--mutant",
                           "unshare_hyp_ignores_pins", "--transition", "host_unshare_hyp",
                           "--no-bmc"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 1
    out = done.stdout
    assert "counterexample: pins / host_unshare_hyp" in out
    assert "violates pins at page 0: Only a page the hypervisor borrows can be pinned" in out


@pytest.mark.parametrize("argv,needle", [
    (["prove", "--mutant", "no_such_bug"], "unknown mutant 'no_such_bug'"),
    (["prove", "--transition", "host_share_everything"], "unknown transition"),
    (["prove", "--bogus"], "unrecognized arguments"),
    (["prove", "--budget", "0"], "--budget must be positive"),
    (["mutants", "--only", "nope"], "unknown mutant 'nope'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_mutants_json_names_the_killer(capsys):
    code, data = run_json(capsys, ["mutants", "--only", "share_guest_to_protected", "--json"])
    assert code == 0
    (row,) = data["mutants"]
    assert row["killed"] and row["killed_by"] == "explore" and row["property"] == "guest_kinds"


def test_explore_with_conformance(capsys):
    code, data = run_json(capsys, ["explore", "--pages", "1", "--guests", "1", "--gfns", "1",
                                   "--conformance", "--json"])
    assert code == 0
    assert data["conformance"]["edges_checked"] > 1000
    assert data["conformance"]["disagreements"] == []


def test_explore_with_conformance_catches_a_mutant(capsys):
    code, data = run_json(capsys, ["explore", "--pages", "1", "--guests", "1", "--gfns", "1",
                                   "--mutant", "force_reclaim_no_zeroing", "--conformance",
                                   "--all-violations", "--json"])
    assert code == 1
    assert data["conformance"]["disagreements"]


def test_hole_punch_is_proved_through_its_nested_calls(capsys):
    code, data = run_json(capsys, ["prove", "--transition", "hole_punch", "--json", "--no-bmc"])
    assert code == 0
    by_property = {o["property"]: o for o in data["obligations"]}
    assert set(by_property["sharing_pairs"]["via"]) == {"host_unshare_guest",
                                                        "host_force_reclaim_page_guest"}
    assert by_property["check_then_commit"]["via"] == []  # a step property is proved directly


def test_a_proof_through_an_unproved_callee_is_redone_directly():
    from model.prover import Obligation, Result, _settle

    calls = []

    def run_all(obs, modular=True):
        calls.append((sorted(o.transition for o in obs), modular))
        if not modular:
            return {o: Result(o.property, o.transition, "violated", 0.0, {"call": "x"}) for o in obs}
        return {o: Result(o.property, o.transition, "violated", 0.0) if o.transition == "callee"
                else Result(o.property, o.transition, "proved", 0.0, via=("callee",)) for o in obs}

    (result,) = _settle([Obligation("pins", "caller")], run_all)
    assert calls == [(["caller"], True), (["callee"], True), (["caller"], False)]
    assert result.status == "violated"
