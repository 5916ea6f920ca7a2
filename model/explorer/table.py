"""The explored states, packed: a state is stored as a short bytes key of per-field value ids.

A state is a named tuple of fields, and most fields take few distinct values over a whole
search (a successor changes one or two fields of its parent). So each field's distinct values
are kept once, numbered in the order they are met, and a state is the concatenation of its
fields' numbers (each a little-endian base-128 varint, so any number of values fits and the
key decodes uniquely). A key is about as many bytes as the state has fields. The keys are not
kept as bytes objects in a dict (about 140 bytes a state, most of it object headers and the
dict's slots) but end to end in one bytearray, found through an open-addressing index of node
ids (`Keys`): about 35 bytes a state, for a lookup written in Python rather than C.
"""

from __future__ import annotations

from array import array
from itertools import compress
from operator import getitem, is_not


class StateTable:
    """States by node id (`table[i]` is the state of node i) and node ids by state."""

    def __init__(self):
        self.keys = Keys()
        self.get = self.keys.get  # the node id of a key, or None
        self._kind = None  # the states' named-tuple type
        self._fields = range(0)
        self._ids: list[dict] = []  # per field: value -> id
        self._values: list[list] = []  # per field: id -> value
        self._codes: list[list] = []  # per field: id -> its varint
        self._numbers: list[int] = []  # one int object per id: keys built of ids share them
        self.small = True  # every id so far is below 256 (fits a byte)

    # -- packing ---------------------------------------------------------------------------
    def _start(self, state) -> None:
        self._kind = type(state)
        self._fields = range(len(state))
        self._ids = [{} for _ in state]
        self._values = [[] for _ in state]
        self._codes = [[] for _ in state]

    def _id(self, i: int, value) -> int:
        ids = self._ids[i]
        n = ids.get(value)
        if n is None:
            n = ids[value] = len(self._values[i])
            self._values[i].append(value)
            self._codes[i].append(_varint(n))
            if n == len(self._numbers):
                self._numbers.append(n)
                self.small = n < 256
        return n

    def value_id(self, field: int, value) -> int:
        """The id of one value of a field (numbered if new)."""
        return self._id(field, value)

    def ids(self, state, like=None, like_ids=None) -> list[int]:
        """The field ids of a state (new values are numbered); `like` (a state of the table)
        and `like_ids` (its field ids) let the fields it shares with that state, by identity,
        skip their lookup."""
        if type(state) is not self._kind:
            if self._kind is not None:
                raise TypeError(f"a {type(state).__name__} among {self._kind.__name__} states")
            self._start(state)
        if like is None:
            return [self._id(i, value) for i, value in enumerate(state)]
        ids = list(like_ids)
        for i in compress(self._fields, map(is_not, state, like)):
            ids[i] = self._id(i, state[i])
        return ids

    def pack(self, ids: list[int]) -> bytes:
        """The packed key of the state of these field ids."""
        return b"".join(map(getitem, self._codes, ids))

    def key(self, state) -> bytes:
        """The packed key of a state."""
        return self.pack(self.ids(state))

    def decode(self, key: bytes) -> list[int]:
        """The field ids of a key (the table's own int objects)."""
        out = []
        numbers = self._numbers
        n = shift = 0
        for byte in key:
            n |= (byte & 0x7F) << shift
            if byte & 0x80:
                shift += 7
            else:
                out.append(numbers[n])
                n = shift = 0
        return out

    def build(self, ids: list[int]):
        """The state of the given field ids."""
        return self._kind(*map(getitem, self._values, ids))

    # -- the table ---------------------------------------------------------------------------
    def add(self, key: bytes) -> int:
        """Store a new state by its key; its node id."""
        return self.keys.add(key)

    def expand(self, node: int) -> tuple:
        """(state, field ids) of a node."""
        ids = self.decode(self.keys[node])
        return self.build(ids), ids

    def __getitem__(self, node):
        if isinstance(node, slice):
            return [self[n] for n in range(len(self))[node]]
        return self.build(self.decode(self.keys[node]))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        for node in range(len(self.keys)):
            yield self[node]

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def truncate(self, nodes: int) -> None:
        """Forget every node from `nodes` on."""
        self.keys.truncate(nodes)

    # -- on disk (`model/explorer/checkpoint.py`) ----------------------------------------------
    def __getstate__(self) -> dict:
        """The keys and each field's values; the rest is derived from them (and a value
        numbered as the search was interrupted may be missing from a lookup table)."""
        return {"keys": self.keys, "kind": self._kind, "values": self._values}

    def __setstate__(self, saved: dict) -> None:
        self.__init__()
        self.keys, self.get = saved["keys"], saved["keys"].get
        self._kind, self._values = saved["kind"], saved["values"]
        self._fields = range(len(self._values))
        self._ids = [{v: n for n, v in enumerate(values)} for values in self._values]
        self._codes = [[_varint(n) for n in range(len(values))] for values in self._values]
        most = max(map(len, self._values), default=0)
        self._numbers = list(range(most))
        self.small = most <= 256


class Keys:
    """Distinct bytes keys numbered 0, 1, ... in the order they are added: `keys[i]` is key i,
    `get(key)` its number. The keys lie end to end in one bytearray (`starts[i]` is where key
    i begins); the index is an array of numbers by hash, probed linearly and never more than
    half full, so a key costs its bytes and 12 to 16 bytes more."""

    def __init__(self):
        self._blob = bytearray()
        self._starts = array("q", [0])  # key i is blob[starts[i]:starts[i + 1]]
        self._slots = array("i", [-1]) * 8  # a key's number at its hash (probing on), -1 free
        self._mask = 7

    def get(self, key: bytes) -> int | None:
        blob, starts, slots, mask = self._blob, self._starts, self._slots, self._mask
        i = hash(key) & mask
        n = slots[i]
        while n >= 0:
            if blob[starts[n]:starts[n + 1]] == key:
                return n
            i = (i + 1) & mask
            n = slots[i]
        return None

    def add(self, key: bytes) -> int:
        """Number a key that `get` does not know."""
        n = len(self._starts) - 1
        self._blob += key
        self._starts.append(len(self._blob))
        if 2 * (n + 1) > len(self._slots):
            self._index(2 * len(self._slots))
        else:
            self._place(key, n)
        return n

    def _place(self, key: bytes, n: int) -> None:
        slots, mask = self._slots, self._mask
        i = hash(key) & mask
        while slots[i] >= 0:
            i = (i + 1) & mask
        slots[i] = n

    def _index(self, size: int) -> None:
        self._slots = array("i", [-1]) * size
        self._mask = size - 1
        for n in range(len(self)):
            self._place(self[n], n)

    def __getitem__(self, n: int) -> bytes:
        return bytes(self._blob[self._starts[n]:self._starts[n + 1]])

    def __len__(self) -> int:
        return len(self._starts) - 1

    def truncate(self, n: int) -> None:
        """Forget every key from number `n` on."""
        del self._blob[self._starts[n]:]
        del self._starts[n + 1:]
        self._index(len(self._slots))

    def __getstate__(self) -> dict:
        """The keys without their index: it is by `hash`, which differs between processes."""
        return {"blob": self._blob, "starts": self._starts, "size": len(self._slots)}

    def __setstate__(self, saved: dict) -> None:
        self._blob, self._starts = saved["blob"], saved["starts"]
        self._index(saved["size"])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
