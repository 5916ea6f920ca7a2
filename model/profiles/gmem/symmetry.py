"""Slot ids are interchangeable: nothing in KVM depends on which id a slot has (the guest sees
gfns, guest_memfd sees bindings), so a renaming of the slots is a bisimulation. So are the
files already created: nothing depends on which guest_memfd is which, but they are created in
order (file f is the f-th guest_memfd), so a renaming may only permute the created files (a
prefix) and must fix those not yet created. An extension's per-slot, per-file and per-index
fields move with their key; its fields' values are not renamed (a value naming a slot or a
file would not be).

The representative of an orbit is its least image (states compared as tuples). It is found
without building every image: each renaming is a precomputed list of field rewrites (one per
field it can change, from permutation and renaming tables), the fields no renaming changes are
left out of the comparison, and the renamings are compared field by field in the state's
order, those behind dropped at the first field where they are, so only the winner's image is
built (none when it is the state itself)."""

from __future__ import annotations

import itertools
import math
from operator import itemgetter

from model.profiles.gmem.states import BASE, Config, Layout, State
from model.renaming import GE, Cell, Image

_SLOT_REFS = ("gslot",)  # per gfn, slot + 1 or 0
_INDEX_SLOT_REFS = ("bind",)  # per file and index, slot + 1 or 0
_FILE_REFS = ("sfile", "lfile")  # f + 1 or 0


def _renaming(perm: tuple) -> tuple:
    """Reference values (key + 1, 0 = none) under perm (new key q is old key perm[q]): the new
    value of old value v is at v."""
    new = [0] * (len(perm) + 1)
    for q, old in enumerate(perm):
        new[old + 1] = q + 1
    return tuple(new)


def _picker(perm: tuple):
    """x -> (x[perm[0]], x[perm[1]], ...)."""
    return itemgetter(*perm) if len(perm) > 1 else lambda x: (x[perm[0]],)


def _rename(values: tuple):
    get = values.__getitem__
    return lambda x: tuple(map(get, x))


def _rename_rows(values: tuple):
    get = values.__getitem__
    return lambda rows: tuple(tuple(map(get, row)) for row in rows)


def _cells(x, names: tuple):
    """Every integer of x as its `Cell`, its value renamed by names."""
    return Cell(x, names) if isinstance(x, int) else tuple(_cells(y, names) for y in x)


def _then(first, second):
    return lambda x: second(first(x))


class GmemSymmetry:
    trivial = False

    def __init__(self, config: Config, fields: Layout = BASE):
        self.names, self.kind = fields.names, fields.kind
        self.n, self.files = config.slots, config.files
        self.order = math.factorial(self.n) * math.factorial(self.files)
        self.perms = list(itertools.permutations(range(self.n)))
        self._renamings: dict = {}  # (perm, fperm) -> _rewrites
        self._groups: dict = {}  # files created -> _group

    def _rewrites(self, perm: tuple, fperm: tuple) -> tuple:
        """The renaming (slot q of the image is slot perm[q], file q is file fperm[q]) as
        (field index, rewrite) for each field it changes, in field order."""
        known = self._renamings.get((perm, fperm))
        if known is None:
            known = self._renamings[perm, fperm] = self._make_rewrites(perm, fperm)
        return known

    def _make_rewrites(self, perm: tuple, fperm: tuple) -> tuple:
        moves_slots = perm != tuple(range(self.n))
        moves_files = fperm != tuple(range(self.files))
        pick_slots, pick_files = _picker(perm), _picker(fperm)
        slot_of, file_of = _renaming(perm), _renaming(fperm)
        out = []
        for k, name in enumerate(self.names):
            kind, steps = self.kind[name], []
            if kind == "slot" and moves_slots:
                steps.append(pick_slots)
            if kind in ("file", "index") and moves_files:
                steps.append(pick_files)
            if name in _SLOT_REFS and moves_slots:
                steps.append(_rename(slot_of))
            if name in _INDEX_SLOT_REFS and moves_slots:
                steps.append(_rename_rows(slot_of))
            if name in _FILE_REFS and moves_files:
                steps.append(_rename(file_of))
            if steps:
                out.append((k, steps[0] if len(steps) == 1 else _then(*steps)))
        return tuple(out)

    def _group(self, created: int) -> tuple:
        """The renamings of a state with `created` files, the identity first: (the indexes of
        the fields some renaming changes, and per renaming one rewrite per such field)."""
        known = self._groups.get(created)
        if known is None:
            known = self._groups[created] = self._make_group(created)
        return known

    def _make_group(self, created: int) -> tuple:
        fixed = tuple(range(created, self.files))
        elements = [(p, f + fixed) for f in itertools.permutations(range(created))
                    for p in self.perms]
        moved = sorted({k for e in elements for k, _ in self._rewrites(*e)})
        same = lambda x: x  # noqa: E731 - the field a renaming leaves as it is
        rewrites = []
        for e in elements:
            mine = dict(self._rewrites(*e))
            rewrites.append(tuple(mine.get(k, same) for k in moved))
        return tuple(moved), tuple(rewrites)

    def image(self, state: State, perm: tuple, fperm: tuple | None = None) -> State:
        """Slot q of the image is slot perm[q] of the state, file q is file fperm[q]; a file
        renaming that moves a file not yet created leaves the state as it is."""
        if fperm is None or not self._fixes_uncreated(state, fperm):
            fperm = tuple(range(self.files))
        return self._build(state, self._rewrites(perm, fperm))

    @staticmethod
    def _build(state: State, rewrites) -> State:
        fields = list(state)
        for k, rewrite in rewrites:
            fields[k] = rewrite(fields[k])
        return type(state)(*fields)

    @staticmethod
    def _fixes_uncreated(state: State, fperm: tuple) -> bool:
        return all(fperm[q] == q for q in range(state.nfiles, len(fperm)))

    def _images(self, state: State):
        moved, rewrites = self._group(state.nfiles)
        return (self._build(state, zip(moved, mine)) for mine in rewrites)

    def canonical(self, state: State) -> State:
        """The least image of the state: the least of the renamings' rewrites of the first
        field they change, then of the next among the renamings left, until one renaming is
        left or none of them differs."""
        moved, left = self._group(state.nfiles)
        identity = left[0]
        for j, k in enumerate(moved):
            if len(left) == 1:
                break
            value = state[k]
            images = [mine[j](value) for mine in left]
            least = min(images)
            left = [mine for mine, image in zip(left, images) if image == least]
        if left[0] is identity:
            return state
        return self._build(state, zip(moved, left[0]))

    # -- the renaming as data (`model.renaming`), for a compiled search --------------------------
    def elements(self) -> list[tuple]:
        """Every renaming but the identity, as `image`'s arguments (slot, then file permutation)."""
        identity = (tuple(range(self.n)), tuple(range(self.files)))
        return [e for e in itertools.product(self.perms, itertools.permutations(range(self.files)))
                if e != identity]

    def renaming(self, at: State, perm: tuple, fperm: tuple) -> Image:
        """`image` on the cells of one shape (`at`: each integer the number of its cell); a
        file renaming applies only to a state that has created every file it moves."""
        slot_of, file_of = _renaming(perm), _renaming(fperm)
        pick = {"slot": perm, "file": fperm, "index": fperm}
        fields = []
        for name, column in zip(self.names, at):
            names = (slot_of if name in _SLOT_REFS or name in _INDEX_SLOT_REFS
                     else file_of if name in _FILE_REFS else ())
            order = pick.get(self.kind[name], range(len(column)) if isinstance(column, tuple)
                             else None)
            fields.append(Cell(column, names) if order is None else
                          tuple(_cells(column[i], names) for i in order))
        moved = [q for q in range(self.files) if fperm[q] != q]
        nfiles = self.names.index("nfiles")
        requires = ((at[nfiles], GE, 1 + moved[-1]),) if moved else ()
        return Image(type(at)(*fields), requires=requires)

    def generators(self) -> list:
        def swaps(n):
            return [tuple(range(i)) + (i + 1, i) + tuple(range(i + 2, n)) for i in range(n - 1)]
        identity = tuple(range(self.n))
        return [(p,) for p in swaps(self.n)] + [(identity, f) for f in swaps(self.files)]

    def orbit_size(self, state: State) -> int:
        return len(set(self._images(state)))

    def describe(self) -> dict:
        return {"slots": self.n > 1, "files": self.files > 1, "group_order": self.order}
