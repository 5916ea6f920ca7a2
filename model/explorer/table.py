"""The explored states, packed: a state is stored as a short bytes key of per-field value ids.

A state is a named tuple of fields, and most fields take few distinct values over a whole
search (a successor changes one or two fields of its parent). So each field's distinct values
are kept once, numbered in the order they are met, and a state is the concatenation of its
fields' numbers (each a little-endian base-128 varint, so any number of values fits and the
key decodes uniquely). A key is about as many bytes as the state has fields, and bytes cache
their hash: the table holds tens of bytes per state where tuples of tuples held hundreds.
"""

from __future__ import annotations

from itertools import compress
from operator import getitem, is_not


class StateTable:
    """States by node id (`table[i]` is the state of node i) and node ids by state."""

    def __init__(self):
        self.keys: list[bytes] = []
        self.nodes: dict[bytes, int] = {}
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
        node = self.nodes[key] = len(self.keys)
        self.keys.append(key)
        return node

    def expand(self, node: int) -> tuple:
        """(state, field ids) of a node."""
        ids = self.decode(self.keys[node])
        return self.build(ids), ids

    def __getitem__(self, node):
        if isinstance(node, slice):
            return [self.build(self.decode(k)) for k in self.keys[node]]
        return self.build(self.decode(self.keys[node]))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        for key in self.keys:
            yield self.build(self.decode(key))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def truncate(self, nodes: int) -> None:
        """Forget every node from `nodes` on."""
        for key in self.keys[nodes:]:
            del self.nodes[key]
        del self.keys[nodes:]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
