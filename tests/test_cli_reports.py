"""What `pkvm-model` writes for CI: tables that a log keeps whole, changed cells marked in plain
text, JSON with versions and the run's identity, JUnit XML, progress on stderr."""

import json
import xml.etree.ElementTree as ET

import pytest

from model.cli import main
from tests.test_cli_bad_input import cli


def run_json(capsys, argv):
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


HEADER = ("tool_version", "z3_version", "profile", "extensions", "mutant", "machine")


@pytest.mark.parametrize("argv", [
    ["explore", "--profile", "toy", "--json"],
    ["prove", "--profile", "toy", "--json", "--no-bmc"],
    ["conform", "--profile", "toy", "--walks", "1", "--walk-steps", "20", "--json"],
    ["mutants", "--profile", "toy", "--json"],
])
def test_json_reports_carry_versions_and_the_run(capsys, argv):
    code, data = run_json(capsys, argv)
    assert code == 0
    for key in HEADER:
        assert key in data, key
    assert data["profile"] == "toy" and data["z3_version"].count(".") >= 2
    assert data["mutant"] is None and data["machine"]


def test_a_log_gets_whole_names_and_marked_changes():
    """stdout is a pipe here: nothing is cut with an ellipsis, and each changed cell of a trace
    has its `*`."""
    done = cli("explore", "--profile", "toy", "--mutant", "reclaim_no_scrub")
    assert done.returncode == 1
    assert "…" not in done.stdout and "\x1b[" not in done.stdout
    assert "owner LENDER*" in done.stdout and "data SECRET*" in done.stdout
    assert "* the step changed this value" in done.stdout
    done = cli("prove", "--profile", "toy", "--no-bmc")
    assert done.returncode == 0 and "…" not in done.stdout
    assert "pinned_is_borrowed" in done.stdout and "check_then_commit" in done.stdout
    done = cli("mutants", "--profile", "toy")
    assert "reclaim_ignores_pins" in done.stdout and "…" not in done.stdout
    assert "the prover was not run" in done.stdout


def test_counterexample_marks_changed_cells(capsys):
    assert main(["prove", "--profile", "toy", "--mutant", "reclaim_ignores_pins",
                 "--transition", "reclaim", "--no-bmc"]) == 1
    out = capsys.readouterr().out
    assert "* changed by the call" in out and "*" in out.split("counterexample")[1]


def test_no_progress_in_a_log_unless_asked():
    done = cli("conform", "--profile", "toy", "--walks", "4", "--walk-steps", "200")
    assert done.returncode == 0 and done.stderr == ""
    done = cli("conform", "--profile", "toy", "--walks", "2", "--walk-steps", "20", "--progress")
    assert done.returncode == 0  # accepted; whether a line shows depends on the run's length
    assert "model and reference agree" in done.stdout  # progress never on stdout


def test_a_forced_progress_line_in_a_log():
    """No clock in the assertion: the delay and the interval are zero."""
    import io

    from model.commands.progress import Progress, rate

    stream = io.StringIO()
    with Progress("exploring", True, stream=stream, delay=0.0, log_interval=0.0) as progress:
        progress.update(f"10 states, {rate(10, 2.0)}", states=10)
        progress.update("20 states", states=20)
    lines = stream.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == [
        "exploring: 10 states, 5/s", "exploring: 20 states"]
    assert progress.counts == {"states": 20}
    quiet = Progress("exploring", False, stream=stream)
    quiet.update("30 states", states=30)
    assert stream.getvalue().count("\n") == 2 and quiet.counts == {"states": 30}


def _junit(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    cases = [c for s in suites for c in s.findall("testcase")]
    return root, suites, cases


def test_junit_explore_one_case_per_property_and_a_trace_on_failure(tmp_path, capsys):
    path = tmp_path / "e.xml"
    assert main(["explore", "--profile", "toy", "--mutant", "reclaim_no_scrub",
                 "--junit", str(path)]) == 1
    root, suites, cases = _junit(path)
    from model.commands.explore import property_names
    from model.profiles import get
    assert [c.get("name") for c in cases] == property_names(get("toy"))
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert list(failed) == ["scrubbed"]
    assert "reclaim(page=0)" in failed["scrubbed"].text and "data SECRET*" in failed["scrubbed"].text
    assert root.get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["profile"] == "toy" and props["mutant"] == "reclaim_no_scrub"


def test_junit_prove_one_case_per_obligation(tmp_path, capsys):
    path = tmp_path / "p.xml"
    assert main(["prove", "--profile", "toy", "--mutant", "reclaim_ignores_pins",
                 "--transition", "reclaim", "--no-bmc", "--junit", str(path)]) == 1
    _root, _suites, cases = _junit(path)
    assert len(cases) == 4  # the 4 properties x reclaim
    bad = [c for c in cases if c.find("failure") is not None]
    assert "pinned_is_borrowed / reclaim" in [c.get("name") for c in bad]
    assert "reclaim(page=" in bad[0].find("failure").text


def test_junit_conform_one_case_per_scenario_file(tmp_path, capsys):
    path = tmp_path / "c.xml"
    assert main(["conform", "--profile", "toy", "--mutant", "reclaim_no_scrub", "--walks", "0",
                 "--junit", str(path)]) == 1
    _root, _suites, cases = _junit(path)
    names = [c.get("name") for c in cases]
    assert names[0].startswith("exploration") and names[1].startswith("scenario ")
    assert all(c.find("failure") is not None for c in cases)


def test_junit_mutants_one_case_per_mutant(tmp_path, capsys):
    path = tmp_path / "m.xml"
    assert main(["mutants", "--profile", "toy", "--junit", str(path)]) == 0
    _root, _suites, cases = _junit(path)
    assert sorted(c.get("name") for c in cases) == ["reclaim_ignores_pins", "reclaim_no_scrub"]
