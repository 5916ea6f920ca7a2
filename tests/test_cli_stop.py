"""Ctrl-C and --max-seconds: a long command stops cleanly, reports what it covered, and exits
130 (Ctrl-C) or 124 (time limit), without a traceback."""

import json
import signal
import subprocess
import sys
import time

from tests.test_cli_bad_input import ROOT, cli


def interrupt(argv, after: float):
    p = subprocess.Popen([sys.executable, "-m", "model.cli", *argv], cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(after)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def test_ctrl_c_stops_an_exploration_with_its_counts():
    code, out, err = interrupt(["explore"], 2.0)  # the pKVM default takes ~5 s
    assert code == 130 and "Traceback" not in err
    assert "interrupted after" in out and " states, " in out and "depth" in out


def test_ctrl_c_stops_the_prover_with_the_obligations_finished():
    code, out, err = interrupt(["prove", "--no-bmc", "--json"], 3.0)
    assert code == 130 and "Traceback" not in err
    data = json.loads(out)
    assert data["stopped"] == "interrupted" and data["result"] == "incomplete"
    assert 0 < len(data["obligations"]) < data["total"]
    assert len(data["obligations"]) + len(data["not_run"]) == data["total"]


def test_ctrl_c_stops_conformance_walks():
    code, out, err = interrupt(["conform", "--profile", "toy", "--no-explore"], 1.5)
    assert code == 130 and err == ""
    assert "interrupted after" in out and "during the walks" in out


def test_max_seconds_bounds_an_exploration():
    start = time.perf_counter()
    done = cli("explore", "--max-seconds", "1", "--json")
    assert time.perf_counter() - start < 10
    assert done.returncode == 124 and done.stderr == ""
    data = json.loads(done.stdout)
    assert data["stopped"] == "time limit" and data["complete"] is False and data["states"] > 0


def test_max_seconds_bounds_the_prover(tmp_path):
    junit = tmp_path / "p.xml"
    done = cli("prove", "--no-bmc", "--max-seconds", "2", "--junit", str(junit))
    assert done.returncode == 124 and "Traceback" not in done.stderr
    assert "stopped by --max-seconds:" in done.stdout and "not run" in done.stdout
    assert 'skipped message="not run (time limit)"' in junit.read_text()


MUTANT_RUN = ["explore", "--mutant", "share_hyp_skips_host_check", "--all-violations",
              "--pages", "3"]  # violations at depth 3, a search of minutes


def test_a_stopped_exploration_reports_the_violations_found_so_far():
    done = cli(*MUTANT_RUN, "--max-seconds", "4", "--json")
    assert done.returncode == 1 and done.stderr == ""  # found something before the limit
    data = json.loads(done.stdout)
    assert data["stopped"] == "time limit" and data["complete"] is False
    found = {v["property"]: v for v in data["violations"]}
    assert "single_owner" in found and found["single_owner"]["length"] == 3
    assert any(s["call"].startswith("host_share_hyp") for s in found["single_owner"]["trace"])


def test_ctrl_c_keeps_the_violations_found_so_far():
    code, out, err = interrupt(MUTANT_RUN, 5.0)
    assert code == 130 and "Traceback" not in err
    assert "violated: single_owner" in out and "violations found so far" in out
