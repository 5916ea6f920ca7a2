"""Symmetry reduction in the native search: a profile's renamings (`model.renaming`) as
programs over a row's cells, one per renaming and shape, and the kernel that replaces a row by
its least image.

The least image under any fixed order of rows is a canonical form when the renamings with the
identity form a group: every state of an orbit has the same images. The order here is the
rows' (shape id, then cells), not the explorer's order of states, so the representatives differ
from the explorer's but the orbits, and so the number of states, are the same. A renaming is
enumerated whole (pKVM's gfn renamings too, which the explorer sorts instead): a program is a
few words per cell, and a row's images cost no Python.
"""

from __future__ import annotations

import numba
import numpy as np

from model.codegen.columns import Column
from model.codegen.trace import build, flatten, size, spans
from model.renaming import EQ, LT, NE, Cell


class Orbits:
    """The programs of a symmetry's renamings on every shape a `Compiled` has met."""

    def __init__(self, compiled, symmetry):
        if not hasattr(symmetry, "renaming"):
            raise ValueError(f"{type(symmetry).__name__} does not say its renamings as data "
                             f"(`elements`, `renaming`): the native search cannot reduce by it")
        self.comp, self.symmetry = compiled, symmetry
        self.elements = symmetry.elements()
        # image shape, conditions (first, count), cells (first, count), sorts (first, count),
        # the first position a sort may change (the cells before it are final as computed),
        # the cells it may change (first, count: on its own shape, the others are the row's)
        self.programs = Column(10)
        self.moved = Column()  # a renaming's cells that are not the row's own, in order
        self.conditions = Column(3)  # row position, comparison, constant
        self.cells = Column(8)  # position, table, its length, base, key position, keys, when
        self.sorts = Column(3)  # first row position, record length, records
        self.names = Column()  # the renaming tables, end to end
        self._tables: dict = {}  # (names, keyed) -> its offset
        self._requires: dict = {}  # a renaming's conditions -> their first row (shared)
        self.of = np.full((0, 2), -1, dtype=np.int64)  # shape id -> first program, programs
        self.top = 0  # the largest value a table holds
        self.covered = 0

    def cover(self) -> bool:
        """Programs for every shape met so far, those of the images' shapes too; whether any
        shape was new."""
        shapes = self.comp.shapes
        if self.covered == len(shapes):
            return False
        made = []
        while self.covered < len(shapes):  # an image may register a shape: covered in turn
            sid = self.covered
            self.covered += 1
            made.append((sid, self.programs.n))
            shape = shapes[sid]
            positions = build(shape, range(size(shape)))  # each integer the number of its cell
            for element in self.elements:
                self._encode(self.symmetry.renaming(positions, *element))
        of = np.full((len(shapes), 2), -1, dtype=np.int64)
        of[:len(self.of)] = self.of
        for sid, first in made:
            of[sid] = (first, len(self.elements))
        self.of = of
        return True

    def _encode(self, image) -> None:
        cells: list = []
        shape, _ = flatten(_placed(image.state, cells))
        sid = self.comp.shape_id(shape)
        conditions = self._requires.get(image.requires)
        if conditions is None:  # equal conditions share their rows: the loop tests them once
            conditions = self._requires[image.requires] = self.conditions.n
            for at, op, value in image.requires:
                self.conditions.add([[1 + at, op, value]])
        first, moved = self.cells.n, self.moved.n
        for j, cell in enumerate(cells):
            self.cells.add([self._cell(cell)])
            if cell.at != j or cell.names:
                self.moved.add([j])
        sorts, final = self.sorts.n, 1 + len(cells)
        where = spans(shape)
        for path in image.sorted:
            start, end = where[path]
            records = len(_at(shape, path)[1])
            if records > 1:
                self.sorts.add([[1 + start, (end - start) // records, records]])
                final = min(final, 1 + start)
        self.programs.add([[sid, conditions, len(image.requires), first, len(cells),
                            sorts, self.sorts.n - sorts, final, moved, self.moved.n - moved]])

    def _cell(self, cell: Cell) -> list:
        when = self.conditions.n
        for at, op, value in cell.when:
            self.conditions.add([[1 + at, op, value]])
        if not cell.names:
            return [1 + cell.at, -1, 0, 0, -1, 0, when, 0]
        keyed = cell.key is not None
        tables = cell.names if keyed else (cell.names,)
        length = len(tables[0])
        offset = self._tables.get((cell.names, keyed))
        if offset is None:
            flat = [v for table in tables for v in table]
            offset = self._tables[(cell.names, keyed)] = self.names.add(flat)
            self.top = max(self.top, *flat)
        return [1 + cell.at, offset, length, cell.base, 1 + cell.key if keyed else -1,
                len(tables), when, len(cell.when)]

    def tables(self) -> tuple:
        return (self.programs.data, self.conditions.data, self.cells.data, self.sorts.data,
                self.names.data, self.moved.data)


def _placed(x, cells: list):
    """x with 0 in place of every `Cell` (noted in order): the image's shape."""
    if isinstance(x, Cell):
        cells.append(x)
        return 0
    if isinstance(x, tuple):
        parts = [_placed(y, cells) for y in x]
        return tuple(parts) if type(x) is tuple else type(x)(*parts)
    return x


def _at(shape, path: tuple):
    for i in path:
        shape = shape[1][i]
    return shape


# -- the kernel --------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _holds(value, op, constant) -> bool:
    if op == EQ:
        return value == constant
    if op == NE:
        return value != constant
    if op == LT:
        return value < constant
    return value >= constant


@numba.njit(cache=True, inline="always")
def applies(row, p, stabs) -> bool:
    """Whether the row meets the conditions of program p's renaming."""
    programs, conditions = stabs[0], stabs[1]
    for c in range(programs[p, 1], programs[p, 1] + programs[p, 2]):
        if not _holds(row[conditions[c, 0]], conditions[c, 1], conditions[c, 2]):
            return False
    return True


@numba.njit(cache=True, inline="always")
def _value(row, i, cells, conditions, names):
    """The value of a renaming's cell i on the row (one exit: numba inlines it well)."""
    v = row[cells[i, 0]]
    table = cells[i, 1]
    if table >= 0:
        ok = True
        for c in range(cells[i, 6], cells[i, 6] + cells[i, 7]):
            if not _holds(row[conditions[c, 0]], conditions[c, 1], conditions[c, 2]):
                ok = False
                break
        length = cells[i, 2]
        if ok and cells[i, 4] >= 0:
            k = row[cells[i, 4]]
            if 0 <= k < cells[i, 5]:
                table += k * length
            else:
                ok = False
        at = v - cells[i, 3]
        if ok and 0 <= at < length:
            v = names[table + at]
    return v


@numba.njit(cache=True, inline="always")
def image(row, p, stabs, img, width, least, prune, least_is_row) -> bool:
    """Program p's image of the row (which meets its conditions), written into img; with
    `prune`, False (img unfinished) as soon as a final cell shows it greater than `least`.
    When `least` is the row itself and the image has its shape, the cells the renaming moves
    or renames are looked at first: the others equal the row's."""
    programs, conditions, cells, sorts, names, moved = stabs
    img[0] = programs[p, 0]
    if prune:
        if img[0] > least[0]:
            return False
        prune = img[0] == least[0]
    first, count, final = programs[p, 3], programs[p, 4], programs[p, 7]
    if prune and least_is_row:  # then img[0] == row[0]: the image has the row's shape
        for m in range(programs[p, 8], programs[p, 8] + programs[p, 9]):
            j = moved[m]
            if 1 + j >= final:
                break
            v = _value(row, first + j, cells, conditions, names)
            if v > least[1 + j]:
                return False
            if v < least[1 + j]:
                prune = False
                break
    for j in range(count):
        v = _value(row, first + j, cells, conditions, names)
        img[1 + j] = v
        if prune and 1 + j < final:
            if v > least[1 + j]:
                return False
            prune = v == least[1 + j]
    for w in range(1 + count, width):
        img[w] = 0
    for s in range(programs[p, 5], programs[p, 5] + programs[p, 6]):
        _sort(img, sorts[s, 0], sorts[s, 1], sorts[s, 2])
    return True


@numba.njit(cache=True, inline="always")
def _sort(img, start, length, records) -> None:
    """The records at img[start:] sorted (insertion: a VM has a few)."""
    for r in range(1, records):
        j = r
        while j > 0:
            a, b = start + (j - 1) * length, start + j * length
            order = 0
            for w in range(length):
                if img[a + w] != img[b + w]:
                    order = 1 if img[a + w] > img[b + w] else -1
                    break
            if order <= 0:
                break
            for w in range(length):
                img[a + w], img[b + w] = img[b + w], img[a + w]
            j -= 1


@numba.njit(cache=True, inline="always")
def canonical(row, of, stabs, img, best, width, lo, hi) -> int:
    """The row replaced by its least image: 1 if that changed it, 0 if not, -1 when its shape
    has no programs yet, -2 when an image holds a value outside [lo, hi] (the row unchanged)."""
    sid = row[0]
    if sid >= len(of) or of[sid, 0] < 0:
        return -1
    changed = False
    for w in range(width):
        best[w] = row[w]
    tested, holds = -1, False  # the conditions last tested (renamings share them) and if held
    for p in range(of[sid, 0], of[sid, 0] + of[sid, 1]):
        if stabs[0][p, 1] != tested:
            tested, holds = stabs[0][p, 1], applies(row, p, stabs)
        if not holds or not image(row, p, stabs, img, width, best, True, not changed):
            continue
        less = False
        for w in range(width):
            if img[w] != best[w]:
                less = img[w] < best[w]
                break
        if less:
            for w in range(width):
                if img[w] < lo or img[w] > hi:
                    return -2
                best[w] = img[w]
            changed = True
    if changed:
        for w in range(width):
            row[w] = best[w]
        return 1
    return 0
