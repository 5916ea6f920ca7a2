"""A search stopped anywhere (between two nodes, or in the middle of one) and resumed from its
checkpoint, over as many sittings as it takes, ends with exactly the one search's graph, node
numbers, violations with their traces, witnesses and counts."""

from __future__ import annotations

import pickle

import pytest

from model.explorer import explore
from model.explorer.checkpoint import CheckpointError, load, save
from model.extensions import mutate
from model.profiles import get
from model.profiles.pkvm.states import Config
from tests.gmem.helpers import GMEM, machine

SMALL = machine(pages=1, sizes=(0, 1))  # 1,298 states, 93,124 calls tried


class Stop(Exception):
    """The stand-in for Ctrl-C: raised from inside a node's expansion."""


def sittings(profile, config, stops_at: list[int], **options):
    """Explore, stopped at each of the given tried-call counts (`on_edge` raising in the middle
    of a node), each time resumed from the snapshot the stop gave (pickled and read back)."""
    snapshot = None
    for limit in stops_at:
        seen = [0]

        def on_edge(_s, _c, _o, seen=seen, limit=limit):
            seen[0] += 1
            if seen[0] == limit:
                raise Stop
        saved = []
        result = explore(profile, config, on_edge=on_edge, stops=(Stop,), resume=snapshot,
                         checkpoint=saved.append, checkpoint_every=1e9, **options)
        assert result.stopped == "interrupted" and len(saved) == 1
        snapshot = pickle.loads(pickle.dumps(saved[0]))
    return explore(profile, config, resume=snapshot, **options)


def outline(result) -> dict:
    return {"states": list(result.states), "arcs": list(result.arcs.triples()),
            "parent": list(result.parent), "via": list(result.via),
            "depth_of": list(result.depth_of), "edges": result.edges, "tried": result.tried,
            "depth": result.depth, "complete": result.complete,
            "sometimes": result.sometimes, "graph": result.graph_checks,
            "violations": [(v.property, v.where, [(str(t.call), t.errno, t.post) for t in v.trace])
                           for v in result.violations],
            "witnesses": {k: v[:3] for k, v in result.witnesses.items()}}


@pytest.mark.parametrize("stops", [[1], [500, 9_000, 9_001, 40_000], [25_000]])
def test_a_resumed_gmem_search_is_the_one_search(stops):
    whole = explore(GMEM, SMALL)
    assert outline(sittings(GMEM, SMALL, stops)) == outline(whole)


def test_a_resumed_search_finds_the_same_violations_with_the_same_traces():
    profile = mutate(get("pkvm"), "share_hyp_skips_host_check")
    config = Config(ram=1, guests=(True, False), gfns=1)  # 8,565 states, 863,572 calls tried
    options = dict(stop_on_violation=False)
    whole = explore(profile, config, **options)
    assert len(whole.violations) == 4  # the check is not vacuous
    assert outline(sittings(profile, config, [3_000, 200_000, 500_000], **options)) == \
        outline(whole)


def test_checkpoints_are_taken_between_nodes_as_the_search_goes():
    whole = explore(GMEM, SMALL)
    layer = list(whole.depth_of).index(4)  # the first node of a layer: taken between two
    wanted = {layer, len(whole.states) // 2}
    taken, kept = [0], {}

    def checkpoint(snapshot):  # a snapshot is the live search: written down when taken
        taken[0] += 1
        if snapshot.next in wanted:
            kept[snapshot.next] = pickle.dumps(snapshot)
    explore(GMEM, SMALL, checkpoint=checkpoint, checkpoint_every=-1.0)
    assert taken[0] == len(whole.states)  # one after every node: a negative interval
    for snapshot in kept.values():
        assert outline(explore(GMEM, SMALL, resume=pickle.loads(snapshot))) == outline(whole)
    assert set(kept) == wanted


def test_a_checkpoint_file_belongs_to_its_search(tmp_path):
    path = str(tmp_path / "c.pkl")
    saved = []
    explore(GMEM, SMALL, checkpoint=saved.append, checkpoint_every=0.0, max_states=50)
    state_type = type(GMEM.initial_state(SMALL))
    save(path, {"machine": "a"}, saved[-1], state_type)
    assert load(path, {"machine": "a"}, state_type).next == saved[-1].next
    with pytest.raises(CheckpointError, match="its machine is 'a', this command's 'b'"):
        load(path, {"machine": "b"}, state_type)
    (tmp_path / "junk").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a pkvm-model checkpoint"):
        load(str(tmp_path / "junk"), {}, state_type)


def test_a_search_that_falls_back_to_no_symmetry_writes_no_checkpoint_of_it():
    """Its checkpoints would be of an unreduced search, read back as a reduced one."""
    profile = mutate(get("pkvm"), "donate_hyp_checks_first_page")
    config = profile.adjust(Config(ram=2, guests=(True,), gfns=1))
    saved = []
    result = explore(profile, config, checkpoint=saved.append, checkpoint_every=-1.0)
    assert "refused" in result.symmetry
    assert 0 < len(saved) < len(result.states)  # only of the reduced search, refused early
