"""A counterexample saved by `explore --save-trace` replays on model and reference."""

import json

from model.cli import main


def test_a_saved_trace_replays_and_shows_the_bug_against_the_reference(tmp_path, capsys):
    path = tmp_path / "bug.scn"
    assert main(["explore", "--profile", "toy", "--mutant", "reclaim_no_scrub",
                 "--save-trace", str(path), "--json"]) == 1
    capsys.readouterr()
    text = path.read_text()
    assert "machine pages=2" in text and "reclaim page=0 -> ok" in text
    # the trace is a real run: the unchanged model and the reference agree on every line
    assert main(["replay", "--profile", "toy", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calls"] == 3
    # under the mutant, the model's reclaim leaves the data the reference scrubs
    assert main(["replay", "--profile", "toy", "--mutant", "reclaim_no_scrub", str(path)]) == 1
    out = capsys.readouterr().out
    assert "reclaim(page=0): model ok, reference ok [state]" in out and "SECRET" in out


def test_pkvm_trace_round_trip_through_conform_scenarios(tmp_path, capsys):
    path = tmp_path / "pins.scn"
    assert main(["explore", "--mutant", "unshare_hyp_ignores_pins", "--save-trace", str(path),
                 "--json"]) == 1
    capsys.readouterr()
    assert main(["conform", "--mutant", "unshare_hyp_ignores_pins", "--scenarios",
                 str(tmp_path), "--no-explore", "--walks", "0", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    (d,) = data["scenarios"]["disagreements"]
    assert d["call"] == "host_unshare_hyp(pfn=0)" and d["reference"] == "-EBUSY"


def test_no_violation_writes_no_trace(tmp_path, capsys):
    path = tmp_path / "none.scn"
    assert main(["explore", "--profile", "toy", "--save-trace", str(path), "--json"]) == 0
    assert not path.exists()


def test_replay_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.scn"
    bad.write_text("machine pages=2\nlend page=0 -> perhaps\n")
    assert main(["replay", "--profile", "toy", str(bad)]) == 2
    assert "bad.scn:2: expected result 'perhaps'" in capsys.readouterr().err
    assert main(["replay", "--profile", "toy", str(tmp_path / "missing.scn")]) == 2
    assert main(["explore", "--save-trace", str(tmp_path / "t.txt")]) == 2
