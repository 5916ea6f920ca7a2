"""Slot ids are interchangeable: nothing in KVM depends on which id a slot has (the guest sees
gfns, guest_memfd sees bindings), so a renaming of the slots is a bisimulation. So are the
files already created: nothing depends on which guest_memfd is which, but they are created in
order (file f is the f-th guest_memfd), so a renaming may only permute the created files (a
prefix) and must fix those not yet created. An extension's per-slot, per-file and per-index
fields move with their key; its fields' values are not renamed (a value naming a slot or a
file would not be)."""

from __future__ import annotations

import itertools
import math

from model.profiles.gmem.states import BASE, Config, Layout, State

_SLOT_REFS = [State._fields.index(f) for f in ("gslot",)]
_INDEX_SLOT_REFS = [State._fields.index(f) for f in ("bind",)]
_FILE_REFS = [State._fields.index(f) for f in ("sfile", "lfile")]


def _renaming(perm: tuple) -> dict:
    """Reference values (key + 1, 0 = none) under perm (new key q is old key perm[q])."""
    return {0: 0, **{old + 1: new + 1 for new, old in enumerate(perm)}}


class GmemSymmetry:
    trivial = False

    def __init__(self, config: Config, fields: Layout = BASE):
        self.slot_index = [k for k, f in enumerate(fields.names) if fields.kind[f] == "slot"]
        self.file_index = [k for k, f in enumerate(fields.names)
                           if fields.kind[f] in ("file", "index")]
        self.n, self.files = config.slots, config.files
        self.order = math.factorial(self.n) * math.factorial(self.files)
        self.perms = list(itertools.permutations(range(self.n)))
        self.file_perms = list(itertools.permutations(range(self.files)))

    def image(self, state: State, perm: tuple, fperm: tuple | None = None) -> State:
        """Slot q of the image is slot perm[q] of the state, file q is file fperm[q]; a file
        renaming that moves a file not yet created leaves the state as it is."""
        fields = list(state)
        slot_of = _renaming(perm)
        for k in self.slot_index:
            fields[k] = tuple(state[k][perm[q]] for q in range(self.n))
        for k in _SLOT_REFS:
            fields[k] = tuple(slot_of[v] for v in fields[k])
        for k in _INDEX_SLOT_REFS:
            fields[k] = tuple(tuple(slot_of[v] for v in row) for row in fields[k])
        if fperm is not None and self._fixes_uncreated(state, fperm):
            file_of = _renaming(fperm)
            for k in self.file_index:
                fields[k] = tuple(fields[k][fperm[q]] for q in range(self.files))
            for k in _FILE_REFS:
                fields[k] = tuple(file_of[v] for v in fields[k])
        return type(state)(*fields)

    @staticmethod
    def _fixes_uncreated(state: State, fperm: tuple) -> bool:
        return all(fperm[q] == q for q in range(state.nfiles, len(fperm)))

    def _images(self, state: State):
        return (self.image(state, p, f) for p in self.perms for f in self.file_perms
                if self._fixes_uncreated(state, f))

    def canonical(self, state: State) -> State:
        return min(self._images(state), key=_key)

    def generators(self) -> list:
        def swaps(n):
            return [tuple(range(i)) + (i + 1, i) + tuple(range(i + 2, n)) for i in range(n - 1)]
        identity = tuple(range(self.n))
        return [(p,) for p in swaps(self.n)] + [(identity, f) for f in swaps(self.files)]

    def orbit_size(self, state: State) -> int:
        return len(set(self._images(state)))

    def describe(self) -> dict:
        return {"slots": self.n > 1, "files": self.files > 1, "group_order": self.order}


def _key(state: State):
    return tuple(state)
