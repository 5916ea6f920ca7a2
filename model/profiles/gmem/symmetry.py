"""Slot ids are interchangeable: nothing in KVM depends on which id a slot has (the guest sees
gfns, guest_memfd sees bindings), so a renaming of the slots is a bisimulation. Files are not
renamed: they are created in order (file f is the f-th guest_memfd), which a renaming would
break for files not yet created. An extension's per-slot fields move with their slot; its
fields' values are not slot ids (a value naming a slot would not be renamed)."""

from __future__ import annotations

import itertools
import math

from model.profiles.gmem.states import BASE, Config, Layout, State

_REFS = [State._fields.index(f) for f in ("gslot",)]
_INDEX_REFS = [State._fields.index(f) for f in ("bind",)]


class SlotSymmetry:
    trivial = False

    def __init__(self, config: Config, fields: Layout = BASE):
        self.slot_index = [k for k, f in enumerate(fields.names) if fields.kind[f] == "slot"]
        self.n = config.slots
        self.order = math.factorial(self.n)
        self.perms = list(itertools.permutations(range(self.n)))

    def image(self, state: State, perm: tuple) -> State:
        """Slot q of the image is slot perm[q] of the state."""
        new_of = {old + 1: new + 1 for new, old in enumerate(perm)}
        new_of[0] = 0
        fields = list(state)
        for k in self.slot_index:
            fields[k] = tuple(state[k][perm[q]] for q in range(self.n))
        for k in _REFS:
            fields[k] = tuple(new_of[v] for v in state[k])
        for k in _INDEX_REFS:
            fields[k] = tuple(tuple(new_of[v] for v in row) for row in state[k])
        return type(state)(*fields)

    def canonical(self, state: State) -> State:
        return min((self.image(state, p) for p in self.perms), key=_key)

    def generators(self) -> list:
        return [(tuple(range(i)) + (i + 1, i) + tuple(range(i + 2, self.n)),)
                for i in range(self.n - 1)]

    def orbit_size(self, state: State) -> int:
        return len({self.image(state, p) for p in self.perms})

    def describe(self) -> dict:
        return {"slots": self.n > 1, "group_order": self.order}


def _key(state: State):
    return tuple(state)
