"""The bounded explorer: exhaustive checks, shortest traces, symmetry, graph properties, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from errno import EPERM

import pytest

from model.explorer import explore, unreduced_counts
from model.properties import Property
from model.profiles.pkvm.states import NOPAGE, OWNED, SHARED_BORROWED, Config, initial_state
from model.profiles.pkvm.symmetry import Symmetry
from model.profiles.pkvm.transitions import check_range
from tests.pkvm.helpers import PKVM, mutant, seeded
from tests.reports import untimed
from tests.stepper_check import agreeing_stepper

TRANSITIONS = PKVM.transitions

ONE_PAGE = Config(ram=1, guests=(True, False), gfns=2)  # gfns are symmetric: the group has order 4
TWO_NP = Config(ram=1, guests=(True, False, False), gfns=1)  # two interchangeable np guests


def _violations(result):
    return [(v.property, v.length) for v in result.violations]


@pytest.fixture(scope="module")
def model_runs():
    return {sym: explore(PKVM, ONE_PAGE, symmetry=sym) for sym in (True, False)}


def test_model_has_no_violation_and_witnesses_every_sometimes(model_runs):
    for result in model_runs.values():
        assert result.complete
        assert result.violations == []
        # the memcache and the host's records are off on this machine: topups are never made
        # and no pfn is shared twice (test_memcache.py, test_host_records.py)
        assert sorted(k for k, v in result.sometimes.items() if not v) == [
            "host_shares_twice", "host_topup_memcache_succeeds"]
        assert result.graph_checks["graph_nothing_stranded"] == 0
        assert result.graph_checks["graph_no_dead_end"] == 0


def test_symmetry_reduces_and_orbits_add_up_to_the_full_graph(model_runs):
    reduced, full = model_runs[True], model_runs[False]
    assert len(reduced.states) < len(full.states)
    assert unreduced_counts(reduced) == {"states": len(full.states), "edges": full.edges}
    assert reduced.depth == full.depth


@pytest.mark.parametrize("config", [TWO_NP, Config(ram=3, guests=(False,), gfns=1, nrs=(1, 2)),
                                    Config(ram=3, guests=(True,), gfns=1, nrs=(1,))],
                         ids=["guests", "pages-reversal", "pages-all"])
def test_guest_and_page_symmetry_is_exact(config):
    """Bounded, so quick: the reduced BFS tree holds one state per orbit of the full one."""
    reduced = explore(PKVM, config, symmetry=True, max_depth=5)
    full = explore(PKVM, config, symmetry=False, max_depth=5)
    assert len(reduced.states) < len(full.states)
    assert unreduced_counts(reduced)["states"] == len(full.states)
    assert _violations(reduced) == _violations(full) == []


def test_canonical_form_is_an_orbit_invariant():
    sym = Symmetry(TWO_NP)
    result = explore(PKVM, TWO_NP, symmetry=False, max_depth=4)
    for state in result.states[::7]:
        c = sym.canonical(state)
        for pi, pinv in sym.page_perms:
            for sigma, sinv in sym.guest_perms:
                img = sym.image(state, pi, pinv, sigma, sinv, None)
                assert sym.canonical(img) == c


def test_canonical_form_is_invariant_under_every_renaming():
    """Pages, guests and per-VM gfns renamed together: the representative does not move."""
    import itertools
    config = Config(ram=2, guests=(False, False), gfns=2)
    sym = Symmetry(config)
    states = explore(PKVM, config, symmetry=False, max_depth=3).states
    gfn_perms = list(itertools.permutations(range(2)))
    for state in states[::5]:
        c = sym.canonical(state)
        assert c in {sym.image(state, pi, pinv, sg, si, list(t))
                     for pi, pinv in sym.page_perms for sg, si in sym.guest_perms
                     for t in itertools.product(gfn_perms, repeat=2)}  # c is in the orbit
        for pi, pinv in sym.page_perms:
            for sigma, sinv in sym.guest_perms:
                for taus in itertools.product(gfn_perms, repeat=2):
                    img = sym.image(state, pi, pinv, sigma, sinv, list(taus))
                    assert sym.canonical(img) == c


def test_stepper_agrees_with_the_model_step_call_by_call():
    no_discipline = replace(ONE_PAGE, host_discipline=False)
    for config in (ONE_PAGE, no_discipline):
        states = explore(PKVM, config, symmetry=False, max_depth=6).states
        stepper = agreeing_stepper(PKVM, config, states)
        assert stepper.hits > stepper.misses


@pytest.mark.parametrize("name", [None, "share_ffa_from_shared", "force_reclaim_no_poison",
                                  "unshare_hyp_updates_before_check"])
def test_memo_and_plain_step_explore_the_same_graph(name):
    """The memo's sweep (quiet failures counted, not looked at) changes nothing a user sees."""
    protocol = mutant(name)
    config = protocol.adjust(ONE_PAGE)
    a = explore(protocol, config, symmetry=False, memo=True, max_depth=8)
    b = explore(protocol, config, symmetry=False, memo=False, max_depth=8)
    assert a.states == b.states
    assert sorted(a.graph.edges(data="calls")) == sorted(b.graph.edges(data="calls"))
    assert _violations(a) == _violations(b)
    assert a.sometimes == b.sometimes and a.witnesses == b.witnesses
    assert (a.tried, a.edges) == (b.tried, b.edges)


def test_the_sweep_still_sees_failures_that_matter():
    """A failure that changes nothing is skipped only when no property left can tell it from
    another: an unknown errno, or a step property that reads the state, must still be seen."""
    def host_share_hyp(s, pfn):  # refuses a pinned page with an errno the kernel does not know
        yield from check_range(s, pfn, 1)
        yield s.require(s.pins(pfn) == 0, 4095)
        yield from PKVM.transitions["host_share_hyp"].body(s, pfn)
    protocol = seeded("host_share_hyp", host_share_hyp)
    config = protocol.adjust(ONE_PAGE)
    busy = Property("no_failure_while_pinned", "always", "no call fails -EPERM while a page is "
                    "pinned (as on MMIO, in every state)",
                    step=lambda call, errno, pre, post: pre.Implies(
                        errno == -EPERM, pre.Not(pre.exists_page(lambda p: pre.pins(p) > 0))))
    props = [*protocol.properties.values(), busy]
    a = explore(protocol, config, symmetry=False, memo=True, properties=props)
    b = explore(protocol, config, symmetry=False, memo=False, properties=props)
    assert {"errno_known", "no_failure_while_pinned"} <= {name for name, _n in _violations(a)}
    def traces(result):
        return [(v.property, [(step.call, step.errno) for step in v.trace])
                for v in result.violations]
    assert traces(a) == traces(b) and a.tried == b.tried


# -- hand-seeded bugs ---------------------------------------------------------------------------

def test_seeded_double_owner_gives_a_one_step_trace():
    def host_share_hyp(s, pfn):  # gives the hyp the page for good but lets the host keep it
        yield from check_range(s, pfn, 1)
        yield s.require(s.host(pfn) == OWNED, EPERM)
        s.set("hyp", pfn, OWNED)
    result = explore(seeded("host_share_hyp", host_share_hyp), ONE_PAGE)
    first = result.violations[0]
    assert first.property == "single_owner"
    assert first.length == 1
    assert first.trace[0].call.name == "host_share_hyp"
    assert first.trace[0].errno == 0


def test_seeded_deep_bug_gets_the_shortest_trace():
    """A bug only reachable after a vCPU load, a donation and a share back: four steps."""
    original = TRANSITIONS["guest_unshare_host"].body

    def guest_unshare_host(s, vm, gfn):
        yield from original(s, vm, gfn)
        s.set("hyp", s.e_pfn(vm, gfn), SHARED_BORROWED)  # a stray write after the checks
    result = explore(seeded("guest_unshare_host", guest_unshare_host), ONE_PAGE)
    names = {v.property: v for v in result.violations}
    assert "sharing_pairs" in names
    trace = names["sharing_pairs"].trace
    assert [s.call.name for s in trace] == ["vcpu_load", "host_donate_guest",
                                            "guest_share_host", "guest_unshare_host"]
    # consecutive steps chain: each step starts where the previous one ended
    assert trace[0].pre == initial_state(ONE_PAGE)
    assert all(a.post == b.pre for a, b in zip(trace, trace[1:]))


def test_seeded_write_before_check_is_caught_on_a_failing_call():
    def host_unshare_hyp(s, pfn):
        if pfn < s.n:  # the state stores RAM and MMIO pages only
            s.set("hyp", pfn, NOPAGE if s.hyp(pfn) != NOPAGE else SHARED_BORROWED)
        yield s.require(False, EPERM)
    result = explore(seeded("host_unshare_hyp", host_unshare_hyp), ONE_PAGE)
    v = {v.property: v for v in result.violations}["check_then_commit"]
    assert v.length == 1
    assert v.trace[0].errno == -EPERM
    assert v.trace[0].pre != v.trace[0].post


@pytest.mark.parametrize("memo", [True, False])
def test_a_failure_that_writes_is_caught_after_the_same_failure_that_does_not(memo):
    """The step properties an edge is shown are chosen per call and errno: a failure that
    changes nothing (the first ones here) must not excuse the same errno when it writes."""
    def host_unshare_hyp(s, pfn):
        if pfn < s.n and s.pins(pfn) > 0:  # writes before failing, on a pinned page only
            s.set("hyp", pfn, NOPAGE)
        yield s.require(False, EPERM)
    result = explore(seeded("host_unshare_hyp", host_unshare_hyp), ONE_PAGE, memo=memo)
    v = {v.property: v for v in result.violations}["check_then_commit"]
    assert v.trace[-1].errno == -EPERM and v.trace[-1].pre != v.trace[-1].post


def test_seeded_bug_found_alike_with_and_without_symmetry():
    original = TRANSITIONS["host_force_reclaim_page_guest"].body

    def host_force_reclaim_page_guest(s, pfn):  # keeps the secret: no zeroing
        contents = s.contents(pfn)
        yield from original(s, pfn)
        s.set("contents", pfn, contents)
    protocol = seeded("host_force_reclaim_page_guest", host_force_reclaim_page_guest)
    runs = [explore(protocol, ONE_PAGE, symmetry=sym) for sym in (True, False)]
    assert _violations(runs[0]) == _violations(runs[1])
    assert ("confidentiality", 4) in _violations(runs[0])  # load, donate, write, reclaim


# -- mutants ------------------------------------------------------------------------------------

def _mutant_names():
    return sorted(PKVM.mutants)


TWO_PAGES = Config(ram=2, guests=(True, False), gfns=1)  # the two RAM pages are symmetric


@pytest.mark.parametrize("machine", ["gfns", "pages"])
@pytest.mark.parametrize("name", _mutant_names())
def test_mutant_violations_are_the_same_with_and_without_symmetry(name, machine):
    base, depth = (ONE_PAGE, 7) if machine == "gfns" else (TWO_PAGES, 4)
    protocol = mutant(name)
    config = protocol.adjust(base)
    runs = [explore(protocol, config, symmetry=sym, max_depth=depth) for sym in (True, False)]
    assert _violations(runs[0]) == _violations(runs[1])
    for v in runs[0].violations:
        assert v.length >= 1
        assert all(a.post == b.pre for a, b in zip(v.trace, v.trace[1:]))


# -- graph properties ---------------------------------------------------------------------------

def test_nothing_stranded_catches_the_no_discipline_hazard():
    config = Config(ram=1, guests=(True,), gfns=1, host_discipline=False)
    result = explore(PKVM, config, properties=[])  # the graph property alone, no state invariant
    assert result.graph_checks["graph_nothing_stranded"] > 0
    v = {v.property: v for v in result.violations}["graph_nothing_stranded"]
    assert [s.call.name for s in v.trace] == ["vcpu_load", "host_donate_guest", "vcpu_put",
                                              "start_teardown_vm", "finalize_teardown_vm"]
    for guests in ((True,), (False,)):  # complete at every depth: what no BMC depth shows
        disciplined = explore(PKVM, replace(config, guests=guests, host_discipline=True),
                              properties=[])
        assert disciplined.complete and disciplined.graph_checks["graph_nothing_stranded"] == 0


def test_dead_end_is_reported():
    # a protocol where nothing but loading a vCPU (once: one vCPU) and donating to the guest
    # succeeds: a dead end after both
    def refuse(s, *args):
        yield s.require(False, EPERM)
    kept = ("vcpu_load", "host_donate_guest")
    protocol = {name: t if name in kept else replace(t, body=refuse)
                for name, t in TRANSITIONS.items()}
    result = explore(PKVM.with_changes(transitions=protocol), Config(ram=1, guests=(True,), gfns=1),
                     properties=[])
    assert result.graph_checks["graph_no_dead_end"] == 1
    assert result.graph_checks["graph_nothing_stranded"] > 0


def test_bounds_make_the_exploration_incomplete():
    result = explore(PKVM, ONE_PAGE, max_depth=2)
    assert not result.complete and result.depth == 2
    assert result.graph_checks["checked"] is False
    capped = explore(PKVM, ONE_PAGE, max_states=50)
    assert not capped.complete and len(capped.states) == 50


def test_on_edge_sees_every_tried_call():
    seen = []
    result = explore(PKVM, Config(ram=1, guests=(True,), gfns=1), max_depth=1,
                     on_edge=lambda s, call, outcome: seen.append((call, outcome.errno)))
    assert len(seen) == result.tried
    assert any(errno for _c, errno in seen) and any(not errno for _c, errno in seen)


def test_determinism():
    a = explore(PKVM, ONE_PAGE).summary()
    b = explore(PKVM, ONE_PAGE).summary()
    for d in (a, b):
        d.pop("seconds")
        d.pop("states_per_second")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_properties_are_checked_on_states_not_once_per_orbit_only():
    """Every node is a state the property predicates accept (spot check of the view)."""
    result = explore(PKVM, ONE_PAGE)
    for state in result.states[::50]:
        view = PKVM.view(ONE_PAGE, state)
        assert all(p.state(view) for p in PKVM.always if p.state)


# -- the command line ---------------------------------------------------------------------------

@pytest.fixture
def main(monkeypatch):
    """model.cli.main with this work's subcommands (others may not be installed yet)."""
    from model import cli
    monkeypatch.setattr(cli, "SUBCOMMANDS", ("explore", "diagram"))
    return cli.main


SMALL = ["--pages", "1", "--gfns", "1"]


def test_cli_exit_0_and_json(main, capsys):
    assert main(["explore", *SMALL, "--memcache", "1", "--host-records", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("states", "edges", "depth", "complete", "seconds", "states_per_second",
                "violations", "sometimes", "symmetry", "graph"):
        assert key in data
    assert data["violations"] == [] and data["complete"] and all(data["sometimes"].values())
    assert data["graph"]["graph_nothing_stranded"] == 0 and data["graph"]["graph_no_dead_end"] == 0


def test_cli_exit_1_with_a_trace(main, capsys):
    assert main(["explore", *SMALL, "--mutant", "force_reclaim_no_zeroing", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    v = data["violations"][0]
    assert v["property"] == "confidentiality"
    assert [s["name"] for s in v["trace"]] == ["vcpu_load", "host_donate_guest", "guest_write",
                                               "host_force_reclaim_page_guest"]
    assert "pfn0.host" in v["trace"][-1]["changed"]
    assert main(["explore", *SMALL, "--mutant", "force_reclaim_no_zeroing"]) == 1
    text = capsys.readouterr().out
    assert "violated: confidentiality" in text and "host_force_reclaim_page_guest(pfn=0)" in text


def test_cli_no_host_discipline_strands_pages(main, capsys):
    argv = ["explore", "--pages", "1", "--guests", "1", "--gfns", "1", "--no-host-discipline",
            "--all-violations", "--json"]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["graph"]["graph_nothing_stranded"] > 0
    names = [v["property"] for v in data["violations"]]
    assert "graph_nothing_stranded" in names and "nothing_stranded" in names


@pytest.mark.parametrize("argv", [
    ["explore", "--pages", "0"],
    ["explore", "--guests", "1", "--protected", "2"],
    ["explore", "--mutant", "no_such_mutant"],
    ["explore", "--max-depth", "-1"],
    ["explore", "--pages", "x"],
    ["explore", *SMALL, "--save-graph", "graph.xyz"],
])
def test_cli_exit_2_on_bad_input(main, capsys, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkvm-model: error: ") and err.count("\n") == 1


def test_cli_save_graph(main, tmp_path, capsys):
    import networkx as nx
    path = tmp_path / "g.graphml"
    assert main(["explore", *SMALL, "--save-graph", str(path)]) == 0
    g = nx.read_graphml(path)
    data = capsys.readouterr().out
    assert g.number_of_nodes() == 835 and "835" in data  # 444 before the VM refcount
    assert all("calls" in d for _u, _v, d in g.edges(data=True))


def test_cli_json_is_deterministic(main, capsys):
    outs = []
    for _ in range(2):
        assert main(["explore", *SMALL, "--json"]) == 0
        outs.append(untimed(json.loads(capsys.readouterr().out)))
    assert outs[0] == outs[1]


def test_symmetry_is_refused_for_a_protocol_that_tells_pages_apart():
    """A range checked by its first page only: pages are no longer interchangeable."""
    protocol = mutant("donate_hyp_checks_first_page")
    config = protocol.adjust(Config(ram=2, guests=(True,), gfns=1))
    result = explore(protocol, config, stop_on_violation=True)
    assert result.symmetry["requested"] and "refused" in result.symmetry
    assert result.symmetry["enabled"] is False
    assert ("single_owner", 2) in _violations(result)
    full = explore(protocol, config, symmetry=False, stop_on_violation=True)
    assert _violations(full) == _violations(result)


def test_model_passes_the_symmetry_check():
    result = explore(PKVM, Config(ram=2, guests=(True, False), gfns=2), max_depth=4,
                     symmetry_check=10**6)
    assert result.symmetry["enabled"] and "refused" not in result.symmetry


def test_a_search_for_witnesses_stops_with_the_layer_that_sees_the_last(model_runs):
    """`stop_when_witnessed`: the search ends with the layer in which the last sometimes
    property asked for is witnessed, each at the depth of the complete search's witness."""
    wanted = [PKVM.properties[n] for n in ("host_donate_guest_succeeds", "vcpu_put_succeeds")]
    result = explore(PKVM, ONE_PAGE, properties=wanted, graph_checks=False,
                     stop_when_witnessed=True)
    assert result.sometimes == {p.name: True for p in wanted}
    assert result.stopped == "witnessed" and not result.complete
    full = model_runs[True]
    assert len(result.states) < len(full.states)
    depth = {name: full.depth_of[w[1]] for name, w in full.witnesses.items()}
    assert result.depth == max(depth[p.name] for p in wanted) + 1
