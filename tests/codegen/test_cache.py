"""The trace cache (`model/codegen/cache.py`): a second run of the same machine reads every
tree and traces nothing, reaching the same states; a stale or tampered cache is caught by the
first states' check or not read at all; a profile with extensions is never cached."""

from __future__ import annotations

import pickle

import pytest

from model.codegen import cache, native, python
from model.extensions import mutate
from tests.codegen.test_codegen import SMALL, machine, small


def _states(found) -> set:
    search = found["search"]
    return {search.comp.unpack(search.packed(i)) for i in range(search.n)}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_second_run_reads_every_tree_and_reaches_the_same_states(name, tmp_path):
    profile, config = small(name)
    first = native.reachable(profile, config, properties=True, cache=str(tmp_path))
    assert first["cached"] == 0 and first["traced"] > 0
    assert len(list(tmp_path.glob("*.pickle"))) == 1
    again = native.reachable(profile, config, properties=True, cache=str(tmp_path))
    assert again["traced"] == again["reused"] == again["learned"] == again["in_python"] == 0
    assert again["cached"] > 0
    assert (again["states"], again["edges"]) == (first["states"], first["edges"])
    assert _states(again) == _states(first)


def test_a_larger_machine_learns_on_from_a_capped_runs_trees(tmp_path):
    profile, config = machine("pkvm", "--pages", "2", "--guests", "1", "--protected", "1")
    native.reachable(profile, config, properties=True, cache=str(tmp_path), max_seconds=1e-9)
    found = native.reachable(profile, config, properties=True, cache=str(tmp_path))
    assert found["complete"] and (found["states"], found["edges"]) == (7738, 50806)
    assert found["cached"] > 0 and found["traced"] > 0


def test_a_tampered_cache_is_caught_by_the_first_states_check(tmp_path):
    profile, config = small("pkvm")
    native.reachable(profile, config, cache=str(tmp_path))
    [path] = tmp_path.glob("*.pickle")
    entries, lazy = pickle.loads(path.read_bytes())
    calls = [str(c) for c in profile.calls(config)]
    # every call's tree swapped with the next call's on the same shape
    keys = sorted((k for k in entries if k[0] in calls),
                  key=lambda k: (str(k[1]), calls.index(k[0])))
    swapped, swaps = dict(entries), 0
    for a, b in zip(keys[::2], keys[1::2]):
        if a[1] == b[1]:
            swapped[a], swapped[b] = entries[b], entries[a]
            swaps += 1
    assert swaps > 0
    path.write_bytes(pickle.dumps((swapped, lazy)))
    with pytest.raises(python.Disagreement):
        native.reachable(profile, config, cache=str(tmp_path))


def test_a_changed_source_or_an_unreadable_file_is_traced_afresh(tmp_path, monkeypatch):
    profile, config = small("toy")
    native.reachable(profile, config, cache=str(tmp_path))
    [path] = tmp_path.glob("*.pickle")
    path.write_bytes(b"not a pickle")
    found = native.reachable(profile, config, cache=str(tmp_path))
    assert found["cached"] == 0 and found["traced"] > 0
    assert native.reachable(profile, config, cache=str(tmp_path))["cached"] > 0  # replaced
    monkeypatch.setattr(cache, "_source_digest", lambda: "an edited model")
    found = native.reachable(profile, config, cache=str(tmp_path))
    assert found["cached"] == 0 and len(list(tmp_path.glob("*.pickle"))) == 2


def test_a_profile_with_extensions_is_not_cached(tmp_path):
    profile, config = small("toy")
    broken = mutate(profile, "reclaim_no_scrub")
    found = native.reachable(broken, config, properties=True, cache=str(tmp_path))
    assert found["traced"] > 0 and list(tmp_path.iterdir()) == []
