"""The model against model/references/gmem: explored edges, random walks, scenario files."""

from pathlib import Path

import pytest

from model.conformance import explore_conformance, parse_scenario, run_scenario, shipped_scenarios, walk
from model.conformance.scenarios import ScenarioError
from tests.gmem.helpers import GMEM, TINY


@pytest.mark.parametrize("vm", sorted(TINY))
def test_every_explored_edge_agrees(vm):
    report = explore_conformance(GMEM, TINY[vm], limit=3)
    assert report.complete and report.edges_checked > 1000
    assert not report.disagreements, report.disagreements[0].text()


def test_random_walks_agree():
    report = walk(GMEM, walks=3, steps=60, seed=1)
    assert report.calls > 100
    assert not report.disagreements, report.disagreements[0].text()


def test_shipped_scenarios_agree():
    paths = shipped_scenarios(GMEM)
    assert len(paths) >= 6
    for path in paths:
        scenario = parse_scenario(GMEM, Path(path).read_text(), str(path))
        report = run_scenario(GMEM, scenario)
        assert not report.disagreements, report.disagreements[0].text()


def test_a_wrong_expectation_is_reported():
    text = ("machine vm=sw_protected files=1 slots=1 gfns=1 pages=1\n"
            "create_file size=1 flags=0 -> ok\nexpect file 0: page0=zero\n"
            "pre_fault gfn=0 -> -EFAULT\n")
    report = run_scenario(GMEM, parse_scenario(GMEM, text))
    kinds = [d.kind for d in report.disagreements]
    assert kinds == ["expectation", "expectation"]


@pytest.mark.parametrize("text", [
    "machine vm=sev files=1\n",
    "machine vm=x86 gfns=0\n",
    "machine vm=x86\ncreate_file size=1 -> ok\n",
    "machine vm=x86\nexpect gfn 9: attr=shared\n",
    "machine vm=x86\nexpect file 0: colour=red\n",
    "create_file size=1 flags=0 -> ok\n",
])
def test_malformed_scenarios_are_refused(text):
    with pytest.raises(ScenarioError):
        parse_scenario(GMEM, text)
