"""Symmetry reduction in the native search: a profile's renamings (`model.renaming`) as
programs over a row's cells, one per renaming and shape, and the kernel that replaces a row by
its least image.

The least image under any fixed order of rows is a canonical form when the renamings with the
identity form a group: every state of an orbit has the same images. The order here is the
rows' (shape id, then cells), not the explorer's order of states, so the representatives differ
from the explorer's but the orbits, and so the number of states, are the same. A renaming is
enumerated whole (pKVM's gfn renamings too, which the explorer sorts instead): a program is a
few words per cell, and a row's images cost no Python. Most images are never made: the cells a
renaming moves, read in order against the least image so far, settle which is less.
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
        self.every = np.arange(1, dtype=np.int64)  # 0, 1, ...: every cell of the widest image
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
            encoded = self._cell(cell)
            self.cells.add([encoded])
            if cell.at != j or encoded[1] >= 0:
                self.moved.add([j])
        if len(cells) > len(self.every):
            self.every = np.arange(len(cells), dtype=np.int64)
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
        keyed = cell.key is not None
        tables = cell.names if keyed else (cell.names,)
        if all(table == tuple(range(cell.base, cell.base + len(table))) for table in tables):
            return [1 + cell.at, -1, 0, 0, -1, 0, when, 0]  # renamed to itself: a plain cell
        for at, op, value in cell.when:
            self.conditions.add([[1 + at, op, value]])
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
                self.names.data, self.moved.data, self.every)


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

FEW = 8  # moved cells' values computed at a time while comparing an image

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
def _values(row, first, which, lo, hi, stabs, out, shift) -> None:
    """The values on the row of a renaming's cells first + which[k], k in [lo, hi), written to
    out[k + shift]: a cell's value, renamed through its table (chosen by its key cell's value)
    where its conditions hold. One loop with no call on arrays inside: each array argument of
    a call costs numba a reference count, inlined or not (a call per cell took 7x as long)."""
    conditions, cells, names = stabs[1], stabs[2], stabs[4]
    for k in range(lo, hi):
        i = first + which[k]
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
                key = row[cells[i, 4]]
                if 0 <= key < cells[i, 5]:
                    table += key * length
                else:
                    ok = False
            at = v - cells[i, 3]
            if ok and 0 <= at < length:
                v = names[table + at]
        out[k + shift] = v


@numba.njit(cache=True, inline="always")
def _computed(row, p, stabs):
    """The cells of program p's image that are computed, as (a list, where p's start in it,
    how many): on the row's own shape the cells it moves or renames, in order (the others are
    the row's); on another shape every cell."""
    programs = stabs[0]
    if programs[p, 0] == row[0]:
        return stabs[5], programs[p, 8], programs[p, 9]
    return stabs[6], 0, programs[p, 4]


@numba.njit(cache=True, inline="always")
def _compute(row, p, stabs, vals, lo, hi) -> None:
    """The values of program p's computed cells, the lo-th to the hi-th, into vals (at the
    same places)."""
    which, base, _count = _computed(row, p, stabs)
    _values(row, stabs[0][p, 3], which, base + lo, base + hi, stabs, vals, -base)


@numba.njit(cache=True, inline="always")
def _write(row, p, stabs, img, vals, known, width, start) -> None:
    """Program p's image of the row written into img, then its tuples sorted, with the values
    of the first `known` computed cells in vals: on the row's own shape, the row with the
    cells the renaming moves in place (the positions before `start` are taken as img holds
    them); on another shape, every cell."""
    programs, sorts = stabs[0], stabs[3]
    which, base, count = _computed(row, p, stabs)
    _compute(row, p, stabs, vals, known, count)
    img[0] = programs[p, 0]
    if img[0] == row[0]:
        for w in range(max(start, 1), width):
            img[w] = row[w]
    else:
        for w in range(1 + count, width):
            img[w] = 0
    for k in range(count):
        if 1 + which[base + k] >= start:
            img[1 + which[base + k]] = vals[k]
    for s in range(programs[p, 5], programs[p, 5] + programs[p, 6]):
        _sort(img, sorts[s, 0], sorts[s, 1], sorts[s, 2])


@numba.njit(cache=True, inline="always")
def image(row, p, stabs, img, vals, width) -> None:
    """Program p's image of the row (which meets its conditions), written into img."""
    _write(row, p, stabs, img, vals, 0, width, 1)


@numba.njit(cache=True, inline="always")
def _against(row, p, stabs, best, diff, ndiff, vals):
    """Program p's image of the row against `best`, the least image so far (it differs from
    the row at the ndiff positions diff[:ndiff], in order), read off its computed cells in
    order, merged with those positions: -1 when the image is less, 1 when it is greater or
    equal, 0 when the two agree up to the first tuple the image sorts and it changes a cell
    from there on (compare it whole); and how many cells' values it put in vals (a few at a
    time: most renamings are settled by their first). On the row's shape the image is the row
    but where the renaming moves a cell, and a tuple left as it is stays sorted (a state keeps
    its tuples sorted)."""
    shape = stabs[0][p, 0]
    if shape != best[0]:
        return (-1 if shape < best[0] else 1), 0
    final = stabs[0][p, 7]
    which, base, count = _computed(row, p, stabs)
    m, known = 0, 0
    d = 1 if ndiff > 0 and diff[0] == 0 else 0  # the shapes agree
    big = len(row) + 1
    while True:
        qm = 1 + which[base + m] if m < count else big
        qd = diff[d] if d < ndiff else big
        if qm >= final and qd >= final:
            break  # equal to best before the sorted tuples
        if qd < qm:  # the image is the row's here, and best is not
            return (-1 if row[qd] < best[qd] else 1), known
        if m == known:
            known = min(known + FEW, count)
            _compute(row, p, stabs, vals, m, known)
        v = vals[m]
        if v != best[qm]:
            return (-1 if v < best[qm] else 1), known
        m += 1
        if qd == qm:
            d += 1
    if shape != row[0]:
        return 0, known
    _compute(row, p, stabs, vals, known, count)
    for k in range(m, count):  # a moved cell past `final`: does the image differ there?
        if vals[k] != row[1 + which[base + k]]:
            return 0, count
    if d < ndiff:  # the image is the row past `final`, and best is not at diff[d]
        return (-1 if row[diff[d]] < best[diff[d]] else 1), count
    return 1, count


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
def canonical(row, of, stabs, scratch, width, lo, hi) -> int:
    """The row replaced by its least image: 1 if that changed it, 0 if not, -1 when its shape
    has no programs yet, -2 when an image holds a value outside [lo, hi] (the row unchanged).
    An image is made only where the cells it moves say it is less than the least so far, or
    may be (a sorted tuple changes). `scratch`: four rows of working space (an image, the
    least so far, the positions where that differs from the row, a renaming's cell values)."""
    sid = row[0]
    if sid >= len(of) or of[sid, 0] < 0:
        return -1
    img, best, diff, vals = scratch[0], scratch[1], scratch[2], scratch[3]
    for w in range(width):
        best[w] = row[w]
    ndiff = 0
    tested, holds = -1, False  # the conditions last tested (renamings share them) and if held
    for p in range(of[sid, 0], of[sid, 0] + of[sid, 1]):
        if stabs[0][p, 1] != tested:
            tested, holds = stabs[0][p, 1], applies(row, p, stabs)
        if not holds:
            continue
        order, known = _against(row, p, stabs, best, diff, ndiff, vals)
        if order > 0:
            continue
        start = 1
        if order == 0:  # equal to best before the sorted tuples
            start = stabs[0][p, 7]
            for w in range(start):
                img[w] = best[w]
        _write(row, p, stabs, img, vals, known, width, start)
        if order == 0:
            for w in range(start, width):
                if img[w] != best[w]:
                    order = -1 if img[w] < best[w] else 1
                    break
            if order >= 0:
                continue
        ndiff = 0
        for w in range(width):
            if img[w] < lo or img[w] > hi:
                return -2
            best[w] = img[w]
            if img[w] != row[w]:
                diff[ndiff] = w
                ndiff += 1
    if ndiff > 0:
        for w in range(width):
            row[w] = best[w]
        return 1
    return 0
