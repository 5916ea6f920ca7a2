"""The packed state table's key index and the arcs' call ids: what they store comes back
unchanged past every growth (the index doubling, the call ids widening)."""

from model.explorer.results import Arcs
from model.explorer.table import Keys


def test_keys_are_numbered_in_order_and_found_past_growth_and_truncation():
    keys = Keys()
    words = [bytes([n % 7]) * (1 + n % 3) + n.to_bytes(3, "little") for n in range(5000)]
    assert [keys.add(w) for w in words] == list(range(5000))
    assert len(keys) == 5000
    assert all(keys.get(w) == n and keys[n] == w for n, w in enumerate(words))
    assert keys.get(b"absent") is None
    keys.truncate(1000)
    assert len(keys) == 1000
    assert keys.get(words[999]) == 999 and keys.get(words[1000]) is None
    assert keys.add(words[4999]) == 1000 and keys.get(words[4999]) == 1000


def test_arcs_keep_their_call_sets_when_the_ids_widen():
    arcs = Arcs()
    labels = [tuple(range(n % 5, n % 5 + 1 + n // 5)) for n in range(300)]
    for n, calls in enumerate(labels):
        arcs.add(n, n + 1, list(calls))
    arcs.add(300, 0, list(labels[0]))
    assert arcs.call_ids.typecode == "H"
    assert list(arcs.triples()) == [(n, n + 1, c) for n, c in enumerate(labels)] + [(300, 0, labels[0])]
