"""`pkvm-model explore --engine native`: the compiled search from the command line, held against
the explorer (the same states, the same shortest traces), with what it does not check named."""

import json
import xml.etree.ElementTree as ET

import pytest

from model.codegen.python import Disagreement
from model.commands.explore_native import REFUSED, replay
from model.profiles import get
from tests.test_cli_bad_input import cli


def explored(*argv):
    done = cli("explore", "--json", *argv)
    return done.returncode, json.loads(done.stdout)


def test_the_native_engine_finds_the_explorers_states_and_says_what_it_left():
    code, mine = explored("--profile", "toy", "--engine", "native")
    theirs_code, theirs = explored("--profile", "toy")
    assert code == theirs_code == 0
    assert (mine["states"], mine["edges"]) == (theirs["states"], theirs["edges"])
    assert mine["complete"] and set(mine["properties"].values()) == {"holds"}
    assert "check_then_commit" in mine["properties"] and sum(mine["layers"]) == mine["states"]
    assert mine["sometimes"] == {name: True for name in mine["sometimes"]}
    assert set(mine["sometimes"]) == {f"{t}_succeeds" for t in get("toy").transitions}
    left = mine["not_checked"]
    assert left["step"] == [] and "graph_all_returned" in left["graph"]
    assert "page_pinned" in left["sometimes"] and left["explorer"]


def test_the_native_engine_witnesses_the_transitions_the_explorer_does():
    """pKVM's smallest machine, where three transitions never succeed (no non-protected VM,
    nothing to top up): the explorer looks for them on its witness machines, the native
    engine says they were never seen."""
    code, mine = explored("--pages", "1", "--guests", "1", "--engine", "native")
    _, theirs = explored("--pages", "1", "--guests", "1")
    elsewhere = {n for run in theirs.get("witness machines", []) for n in run["witnessed"]}
    assert code == 0 and (mine["states"], mine["edges"]) == (theirs["states"], theirs["edges"])
    assert mine["sometimes"] == {name: theirs["sometimes"][name] and name not in elsewhere
                                 for name in mine["sometimes"]}
    assert not all(mine["sometimes"].values())


def test_a_failing_call_that_writes_comes_with_the_explorers_trace():
    argv = ("--pages", "1", "--guests", "1", "--mutant", "unshare_hyp_updates_before_check")
    code, mine = explored(*argv, "--engine", "native")
    _, theirs = explored(*argv)
    assert code == 1 and mine["properties"]["check_then_commit"] == "violated"
    (found,) = mine["violations"]
    (want,) = [v for v in theirs["violations"] if v["property"] == "check_then_commit"]
    assert found["kind"] == "step" and found["length"] == want["length"]
    assert [s["call"] for s in found["trace"]] == [s["call"] for s in want["trace"]]
    assert found["trace"][-1]["errno"] != 0 and found["trace"][-1]["changed"]


def test_a_violation_comes_with_the_explorers_shortest_trace(tmp_path):
    junit = tmp_path / "native.xml"
    code, mine = explored("--profile", "toy", "--mutant", "reclaim_no_scrub", "--engine",
                          "native", "--junit", str(junit))
    _, theirs = explored("--profile", "toy", "--mutant", "reclaim_no_scrub")
    assert code == 1 and mine["properties"]["scrubbed"] == "violated"
    (found,) = mine["violations"]
    (want,) = theirs["violations"]
    assert (found["property"], found["length"]) == (want["property"], want["length"])
    assert found["clause"] and found["where"] == want["where"]
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    assert cases["scrubbed"].find("failure") is not None
    assert cases["type_ok"].find("failure") is None and cases["type_ok"].find("skipped") is None
    assert cases["check_then_commit"].find("failure") is None
    assert "native engine" in cases["graph_all_returned"].find("skipped").get("message")
    assert cases["lend_succeeds"].find("failure") is None


def test_a_skipped_property_is_neither_checked_nor_reported():
    code, mine = explored("--profile", "toy", "--mutant", "reclaim_no_scrub", "--engine",
                          "native", "--skip", "scrubbed")
    assert code == 0 and "scrubbed" not in mine["properties"] and mine["violations"] == []


def test_a_path_that_does_not_violate_is_refused():
    """The report's traces are runs of the model: a path the compiled reading gave wrongly
    (here, one ending where the property holds) is caught on replay."""
    profile = get("toy")
    config = profile.default_config()
    prop = next(p for p in profile.always if p.name == "scrubbed")
    with pytest.raises(Disagreement, match="ends where it holds"):
        replay(profile, config, prop, ["lend(page=0)", "write(page=0)"])


@pytest.mark.parametrize("flag", sorted(REFUSED))
def test_what_the_native_engine_cannot_honour_is_refused_in_one_line(flag, tmp_path):
    option, _why = REFUSED[flag]
    value = {"--save-graph": [str(tmp_path / "g.json")], "--checkpoint": [str(tmp_path / "c")],
             "--max-depth": ["3"], "--max-states": ["10"]}.get(option, [])
    done = cli("explore", "--profile", "toy", "--engine", "native", option, *value)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"not with {option}" in done.stderr


def test_a_trace_cache_without_the_native_engine_is_refused(tmp_path):
    done = cli("explore", "--profile", "toy", "--trace-cache", str(tmp_path))
    assert done.returncode == 2 and "only with --engine native" in done.stderr


def test_a_time_limit_reports_what_was_covered(tmp_path):
    done = cli("explore", "--engine", "native", "--max-seconds", "0.5", "--json",
               "--trace-cache", str(tmp_path))
    data = json.loads(done.stdout)
    assert done.returncode == 124 and "Traceback" not in done.stderr
    assert data["stopped"] == "time limit" and not data["complete"] and data["states"] > 0
    assert set(data["properties"].values()) == {"not violated yet"}


def test_a_compiled_reading_that_disagrees_is_one_line_and_exit_2(monkeypatch, capsys):
    """A seeded mis-encoding (equality as inequality) on the command line: the first states'
    check disagrees, and the user is told so, without a traceback."""
    from model import cli as main
    from model.codegen import native

    opcode = dict(native._OPCODE)
    opcode["eq"], opcode["ne"] = native._OPCODE["ne"], native._OPCODE["eq"]
    monkeypatch.setattr(native, "_OPCODE", opcode)
    assert main.main(["explore", "--profile", "toy", "--engine", "native"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compiled reading disagrees" in err


def test_a_trace_cache_that_cannot_be_written_is_refused_before_the_search(tmp_path):
    taken = tmp_path / "a file"
    taken.write_text("")
    done = cli("explore", "--profile", "toy", "--engine", "native", "--trace-cache", str(taken))
    assert done.returncode == 2 and done.stdout == "" and "--trace-cache" in done.stderr
