"""A symmetry's renamings written as data, so that a compiled search canonicalises states
without running Python per state.

A profile's symmetry says how one renaming (one element of its group) rewrites a state in
`renaming(positions, *element)`: `positions` is a state of one shape whose every integer is the
number of its cell, and the answer is the image with a `Cell` in place of every integer (where
the image's cell comes from, and how its value is renamed), the image's tuples to sort after
renaming, and the conditions on the state under which the renaming applies at all. The
profile's own `image` stays what the explorer runs; a compiled search holds the two against
each other on its first states.
"""

from __future__ import annotations

from dataclasses import dataclass

# a condition's comparison of a cell's value with a constant
EQ, NE, LT, GE = range(4)


@dataclass(frozen=True)
class Cell:
    """The image's cell: the state's cell `at`, its value v renamed to names[v - base] when v
    lies in [base, base + len(names)) and every condition in `when` holds. With a `key` (a
    cell), names holds one table per value of the key's cell (a key outside it: kept)."""

    at: int
    names: tuple = ()
    base: int = 0
    key: int | None = None
    when: tuple = ()  # (cell, comparison, constant)


@dataclass(frozen=True)
class Image:
    """One renaming on one shape: the image (`Cell`s in place of integers), the paths (indices
    from the root) of its tuples whose entries are sorted after renaming, and the conditions
    (cell, comparison, constant) under which the renaming applies (elsewhere it is skipped:
    the group must then still be a group on the states where it applies)."""

    state: object
    sorted: tuple = ()
    requires: tuple = ()
