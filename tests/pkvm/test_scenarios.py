"""Scenario files (model/conformance/scenarios.py, model/profiles/pkvm/scenarios/*.scn): format,
errors, results."""

import errno

import pytest

from model import conformance
from model.conformance import ScenarioError
from model.profiles.pkvm.states import PA_PAGES, PROT_R, PROT_X
from model.references.pkvm import mem_protect
from model.transitions import Call
from tests.pkvm.helpers import PKVM


def parse_scenario(text, path="<scenario>"):
    return conformance.parse_scenario(PKVM, text, path)


def load_scenario(path):
    return conformance.load_scenario(PKVM, path)


def run_scenario(scenario):
    return conformance.run_scenario(PKVM, scenario)


def run_scenarios(paths):
    return conformance.run_scenarios(PKVM, paths)


def shipped_scenarios():
    return conformance.shipped_scenarios(PKVM)

HEADER = "machine ram=2 mmio=1 guests=protected,np\n"


def test_format_reads_calls_constants_and_expectations():
    s = parse_scenario(HEADER + """
        # a comment line
        host_share_hyp pfn=0 -> ok   # trailing comment
        host_donate_hyp pfn=PA_PAGES-1 nr=0x2 -> -EINVAL
        host_share_guest pfn=1 gfn=BLOCK+3 nr=1 vm=1 prot=RX -> -EPERM
        host_write pfn=HOLE -> -EPERM
        expect page 0: host=SHARED_OWNED hyp=SHARED_BORROWED pins=0 pte=0 vm0=NOPAGE
        expect vm1 gfn 4: none
        expect vm0: life=RUNNING
    """, "t.scn")
    calls = [step.call for step in s.steps if hasattr(step, "call")]
    assert calls == [Call("host_share_hyp", (0,)), Call("host_donate_hyp", (PA_PAGES - 1, 2)),
                     Call("host_share_guest", (1, 515, 1, 1, PROT_R | PROT_X)),
                     Call("host_write", (3,))]
    assert [step.expected for step in s.steps if hasattr(step, "call")] == [
        0, -errno.EINVAL, -errno.EPERM, -errno.EPERM]
    assert s.lines == 7 and s.config.ram == 2 and s.config.guests == (True, False)


@pytest.mark.parametrize("body, message", [
    ("host_share_hyp pfn=0 -> ok", "t.scn:1: the first line must be `machine"),
    (HEADER + "host_share_hyp pfn=0", "t.scn:2: a call line is `name key=value ... -> result`"),
    (HEADER + "host_share_hype pfn=0 -> ok", "t.scn:2: unknown call 'host_share_hype'"),
    (HEADER + "host_share_hyp -> ok", "t.scn:2: host_share_hyp needs pfn"),
    (HEADER + "host_share_hyp pfn=0 nr=1 -> ok", "t.scn:2: host_share_hyp has no parameter 'nr'"),
    (HEADER + "host_share_hyp pfn=0 pfn=1 -> ok", "t.scn:2: parameter pfn given twice"),
    (HEADER + "host_share_hyp pfn=zero -> ok", "t.scn:2: unknown name 'zero'"),
    (HEADER + "host_share_hyp pfn 0 -> ok", "t.scn:2: argument 'pfn' is not key=value"),
    (HEADER + "host_share_hyp pfn=0 -> EPERM", "t.scn:2: expected result 'EPERM'"),
    (HEADER + "host_share_hyp pfn=0 -> -ENOTANERRNO", "t.scn:2: expected result"),
    (HEADER + "\n\nhost_share_hyp pfn=1-2 -> ok", "t.scn:4: arguments are unsigned"),
    (HEADER + HEADER, "t.scn:2: a second machine line"),
    ("machine mmio=1", "t.scn:1: machine needs ram=N"),
    ("machine ram=two", "t.scn:1: machine option ram='two' is not a number"),
    ("machine ram=2 guests=protected,secure", "t.scn:1: guest kind 'secure'"),
    ("machine ram=2 colour=blue", "t.scn:1: unknown machine option(s) colour"),
    ("machine ram=0", "t.scn:1: need at least one RAM page"),
    ("machine ram=2 discipline=maybe", "t.scn:1: discipline must be on or off"),
    (HEADER + "expect page 9: host=OWNED", "t.scn:2: page 9 is not a RAM, MMIO or no-map page"),
    (HEADER + "expect page 0: owner=HOST", "t.scn:2: page check 'owner'"),
    (HEADER + "expect page 0 host=OWNED", "t.scn:2: expect needs `expect <subject>: <checks>`"),
    (HEADER + "expect vm5: life=DYING", "t.scn:2: vm5: the machine has 2 guest(s)"),
    (HEADER + "expect vm0: life=ASLEEP", "t.scn:2: vm check must be life="),
    (HEADER + "expect vm0 gfn 1: OWNERSHIP", "t.scn:2: entry check starts with a page state"),
    (HEADER + "expect vm0 gfn 1: OWNED colour=red", "t.scn:2: entry check 'colour'"),
    (HEADER + "expect host: OWNED", "t.scn:2: expect subject must be"),
    ("# only comments\n", "t.scn: no machine line"),
])
def test_malformed_lines_name_file_and_line(body, message):
    with pytest.raises(ScenarioError) as err:
        parse_scenario(body, "t.scn")
    assert str(err.value).startswith(message), str(err.value)


def test_a_malformed_file_stops_everything_before_running(tmp_path):
    good = tmp_path / "a.scn"
    good.write_text(HEADER + "host_share_hyp pfn=0 -> ok\n")
    bad = tmp_path / "b.scn"
    bad.write_text(HEADER + "host_share_hyp pfn=0 ->\n")
    with pytest.raises(ScenarioError, match=r"b\.scn:2: expected result ''"):
        run_scenarios([good, bad])


def test_a_wrong_expected_errno_is_reported_with_both_answers():
    report = run_scenario(parse_scenario(HEADER + "host_share_hyp pfn=0 -> -EBUSY\n", "t.scn"))
    (d,) = report.disagreements
    assert d.kind == "expectation" and d.where == "t.scn:2"
    assert "the scenario expects -EBUSY; both sides answer ok" in d.text()


def test_a_wrong_expectation_is_reported_per_side():
    report = run_scenario(parse_scenario(
        HEADER + "host_share_hyp pfn=0 -> ok\nexpect page 0: host=OWNED hyp=SHARED_BORROWED\n", "t.scn"))
    (d,) = report.disagreements
    assert d.where == "t.scn:3"
    assert [(c.where, c.what, c.model, c.reference) for c in d.cells] == [
        ("model", "host", "expected OWNED", "got SHARED_OWNED"),
        ("reference", "host", "expected OWNED", "got SHARED_OWNED")]


def test_a_broken_reference_disagrees_on_a_scenario_line(monkeypatch):
    monkeypatch.setattr(mem_protect, "hyp_poison_page", lambda hv, pfn: None)
    path = [p for p in shipped_scenarios() if p.name == "force_reclaim.scn"][0]
    report = run_scenario(load_scenario(path))
    d = report.disagreements[0]
    assert d.kind == "state" and d.call.name == "host_force_reclaim_page_guest"
    assert d.where.endswith("force_reclaim.scn:21")
    assert [(c.what, c.model, c.reference) for c in d.cells] == [("contents", "ZERO", "SECRET(vm0)")]


def test_disciplined_host_never_finalizes_a_vm_holding_pages():
    report = run_scenario(parse_scenario(HEADER + """
        vcpu_load vm=0 -> ok
        host_donate_guest pfn=0 gfn=0 vm=0 -> ok
        vcpu_put vm=0 -> ok
        start_teardown_vm vm=0 -> ok
        finalize_teardown_vm vm=0 -> ok
    """, "t.scn"))
    (d,) = report.disagreements
    assert d.kind == "discipline" and "discipline=off" in d.note


AREAS = ["hyp_sharing", "pins", "hyp_donation", "ffa", "np_guest_sharing", "protected_guest",
         "force_reclaim", "teardown", "stranding", "hole_punch", "writes", "ranges",
         "vm_references", "memcache", "host_records", "host_mappings"]


def test_one_shipped_scenario_per_area():
    assert sorted(p.stem for p in shipped_scenarios()) == sorted(AREAS)


@pytest.mark.parametrize("area", AREAS)
def test_shipped_scenario_agrees(area):
    path = [p for p in shipped_scenarios() if p.stem == area][0]
    report = run_scenario(load_scenario(path))
    assert [d.text() for d in report.disagreements] == []
    assert report.calls >= 15


def test_shipped_scenarios_cover_every_call_and_every_errno_of_the_contract():
    seen_calls, seen = set(), set()
    for path in shipped_scenarios():
        for step in load_scenario(path).steps:
            if hasattr(step, "call"):
                seen_calls.add(step.call.name)
                seen.add((step.call.name, step.expected))
    TRANSITIONS = PKVM.transitions
    assert seen_calls == set(TRANSITIONS)
    assert all((name, 0) in seen for name in TRANSITIONS)  # every call succeeds somewhere
    errnos = {e for _n, e in seen}
    assert {-errno.EPERM, -errno.EINVAL, -errno.EBUSY, -errno.ENOENT, -errno.E2BIG, -errno.EAGAIN,
            -errno.EFAULT, -errno.ENOMEM, -errno.ERANGE, -133} <= errnos
