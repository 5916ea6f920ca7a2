"""The native backend: the traced trees as arrays, searched by one numba-compiled loop.

The Python backend spends about half a microsecond per call on the Python function call alone,
15-20 times what SPIN's compiled model spends. Here the same decision trees (`Compiled`'s, so
the same tracing, learning and checks) are encoded as flat arrays: an expression as a postfix
program over a state's cells, a node as its test and children, an end as its errno, post shape
and cells' programs. One interpreter of those arrays, compiled by numba once whatever the
machine, runs a breadth-first search over fixed-width rows of cells (a row: shape id, then
cells, zero-padded) with an open-addressing table, and keeps each state's parent and call, so a
violated `always` property comes with its shortest path. A state the arrays cannot answer
stops the loop: a shape met for the first time gets its trees; a value the trace was not told
of, or a lazily traced path not shown yet, is learned by tracing the trees that escaped again
with the state's cells as an oracle; the changed trees are encoded again and the loop tries
the state again. Only a state they still cannot answer (a path left to the concrete reading)
is stepped in Python. With the profile's symmetry, each successor not stored yet is replaced
by its least image under the profile's renamings, run as programs over the row (`orbits.py`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np

from model.codegen import orbits
from model.codegen.cache import TraceCache
from model.codegen.columns import Column
from model.codegen.expr import Sym, cells_of, key, truth
from model.codegen.orbits import Orbits, applies, canonical, image
from model.codegen.python import Compiled, Disagreement, check
from model.codegen.trace import OTHER, End, size, unchanged


def _dated_after_the_kernel(here: Path, kernel: Path) -> None:
    """numba keys a cached function on its own file alone (time and size), and the loop here
    inlines the symmetry kernel of `orbits.py`: after a change to that file only, the cached
    loop would run the old kernel (it did, once, unnoticed). So this file takes the kernel's
    time when that is newer, before numba reads it, and the loop is compiled again."""
    try:
        newer = kernel.stat().st_mtime
        if newer > here.stat().st_mtime:
            os.utime(here, (time.time(), newer))
    except OSError:
        pass  # an installed copy that cannot be written is not edited either


_dated_after_the_kernel(Path(__file__), Path(orbits.__file__))

# -- expression programs ---------------------------------------------------------------------
# An instruction is two int64 words: opcode, argument.
CONST, CELL, NEG, INVERT, NOT, AND, OR, ITE = range(8)
_BINARY = ("add", "sub", "mul", "floordiv", "mod", "and_", "or_", "xor", "lshift", "rshift",
           "eq", "ne", "lt", "le", "gt", "ge")
_OPCODE = {name: 8 + i for i, name in enumerate(_BINARY)}
_OPCODE.update(neg=NEG, invert=INVERT, **{"not": NOT, "and": AND, "or": OR, "ite": ITE})

WORDS = 8  # a set of row positions: 8 words of bits (positions past 512: every property, always)
ALL = -1  # every property due
MOVING = 2  # a successor whose least image is to be found
SEEN = 8  # under symmetry, a successor met that was not its own least image kept per 8 rows
BATCH = 256  # rows expanded together, a share per thread, before their successors are stored
THREADS = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else os.cpu_count() or 1)  # the cores this process may run on

# node kinds
TEST, OUT, NONE, ESCAPE = range(4)
# what the loop stopped for
DONE, GROW, STEP_IN_PYTHON, PAUSE, RANGE, SYMMETRY = range(6)


class Encoding:
    """Every tree of a `Compiled` as arrays, kept up to date as it learns."""

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        self.code = Column()  # programs, two words an instruction
        self.programs: dict = {}  # expression key -> program id
        self.nodes: dict = {}  # a node's content -> its number
        self.prog = Column(2)  # program id -> (start, end)
        self.kind = Column()
        self.arg = Column()  # TEST: program; OUT: errno program
        self.first = Column()  # TEST: first child; OUT: first cell program
        self.count = Column()  # TEST: children; OUT: cells
        self.post = Column()  # OUT: post shape id, -1 when every cell is kept
        self.values = Column()  # a child's value
        self.kids = Column()  # a child's node
        self.writes = Column(2)  # an OUT's writes: (row position, program)
        self.trim = Column(2)  # OUT: the post row's length, the pre row's (cells between: 0)
        self.changed = Column(WORDS)  # OUT to the same shape: the positions it writes
        self.reads: dict = {}  # (slot, shape id) -> the positions its tree decides on, as bits
        self.propread = np.full((0, max(len(compiled.always), 1), WORDS), ALL, dtype=np.int64)
        self.callread = np.full((0, len(compiled.calls), WORDS), ALL, dtype=np.int64)
        self.roots = np.full((0, len(compiled.calls)), -1, dtype=np.int64)
        self.proots = np.full((0, max(len(compiled.always), 1)), -1, dtype=np.int64)
        self.encoded: dict = {}  # (slot, shape id) -> the tree encoded there
        self.seen_made = 0  # how much of `Compiled.made` is encoded
        self.seen_shapes = 0  # how many of `Compiled.shapes` the width has counted
        self.width = 1

    # -- programs --
    def program(self, x) -> int:
        k = key(x)
        pid = self.programs.get(k)
        if pid is None:
            words: list[int] = []
            _postfix(x, words)
            start = self.code.add(words)
            pid = self.programs[k] = self.prog.add([[start, self.code.n]])
        return pid

    # -- trees --
    def node(self, tree, sid: int) -> int:
        """The number of a tree's root; equal subtrees are encoded once (a lazily traced tree
        is made again whole each time it learns a path, mostly of the same subtrees)."""
        if isinstance(tree, End):
            if tree.kind == "none":
                content: tuple = (NONE,)
            elif tree.kind == "value":
                content = (OUT, self.program(tree.value))
            elif tree.kind != "out":
                content = (ESCAPE,)
            else:
                errno = self.program(tree.errno)
                shape = self.compiled.shapes[sid]
                if unchanged(tree, shape):
                    content = (OUT, errno)
                else:
                    writes = tuple((1 + i, self.program(c)) for i, c in enumerate(tree.cells)
                                   if not _kept(c, i))
                    content = (OUT, errno, writes, self.compiled.shape_id(tree.shape),
                               1 + len(tree.cells), 1 + size(shape))
        else:
            children = [(int(v), self.node(child, sid)) for v, child in tree.children
                        if v is not OTHER]
            content = (TEST, self.program(tree.expr if tree.kind == "int" else truth(tree.expr)),
                       tuple(children))
        at = self.nodes.get(content)
        if at is None:
            at = self.nodes[content] = self._make(content)
        return at

    def _make(self, content: tuple) -> int:
        kind = content[0]
        if kind == TEST:
            _kind, test, children = content
            first = self.values.n
            if children:
                self.values.add([v for v, _c in children])
                self.kids.add([c for _v, c in children])
            return self._node(TEST, test, first, len(children), -1)
        if kind != OUT or len(content) == 2:
            return self._node(kind, content[1] if kind == OUT else 0, 0, 0, -1)
        _kind, errno, writes, post, length, pre_length = content
        first = self.writes.add(list(writes)) if writes else self.writes.n
        self.width = max(self.width, length)
        self.trim.add([[length, pre_length]])
        self.changed.add([_bits(sum(1 << p for p, _x in writes))])
        return self._node(OUT, errno, first, len(writes), post)

    def _node(self, kind, arg, first, count, post) -> int:
        if kind != OUT or post < 0:
            self.trim.add([[0, 0]])
            self.changed.add([[0] * WORDS])
        at = self.kind.add([kind])
        self.arg.add([arg])
        self.first.add([first])
        self.count.add([count])
        self.post.add([post])
        return at

    def refresh(self) -> None:
        """Encode every tree `Compiled` made or remade since the last refresh."""
        comp = self.compiled
        self._cover()
        made, self.seen_made = comp.made[self.seen_made:], len(comp.made)
        for slot, sid in made:
            tree = comp.trees[(slot, sid)]
            if self.encoded.get((slot, sid)) is not tree:
                self.encoded[(slot, sid)] = tree
                root = self.node(tree, sid)
                if slot >= 0:
                    self.roots[sid, slot] = root
                    self.callread[sid, slot] = self._read(slot, sid, tree)
                else:
                    self.proots[sid, -1 - slot] = root
                    self.propread[sid, -1 - slot] = self._read(slot, sid, tree)
        self._cover()  # the post shapes the trees named first
        for shape in comp.shapes[self.seen_shapes:]:
            self.width = max(self.width, 1 + size(shape))
        self.seen_shapes = len(comp.shapes)

    def _cover(self) -> None:
        """A row of roots for every shape (-1: no tree there yet)."""
        shapes = len(self.compiled.shapes)
        if shapes > len(self.roots):
            self.roots = _grown(self.roots, shapes)
            self.proots = _grown(self.proots, shapes)
            self.propread = _grown(self.propread, shapes)
            self.callread = _grown(self.callread, shapes)

    def _read(self, slot: int, sid: int, tree) -> list[int]:
        """What a call's or property's tree decides on, on a shape, joined to what it decided on
        before (a tree that learns keeps its old paths, and a state is judged by the path its
        ancestor took)."""
        bits = self.reads.get((slot, sid), 0) | _positions(tree, self.compiled.shapes[sid])
        self.reads[(slot, sid)] = bits
        return _bits(bits)

    def tables(self) -> tuple:
        return (self.code.data, self.prog.data, self.kind.data, self.arg.data, self.first.data,
                self.count.data, self.post.data, self.values.data, self.kids.data,
                self.writes.data, self.trim.data, self.changed.data)


def _grown(table, rows: int):
    out = np.full((rows, *table.shape[1:]), -1, dtype=np.int64)
    out[:len(table)] = table
    return out


def _kept(cell, i: int) -> bool:
    """Whether an end's cell i is the pre-state's cell i as it was (not a write)."""
    return isinstance(cell, Sym) and cell.op == "cell" and cell.args[0] == i


def _positions(tree, shape) -> int:
    """The row positions a tree's known paths decide on, as bits: its tests, a property's
    value, a call's errno, and where an end writes, what it writes and reads to write it
    (whether a failing call changes the row, check-then-commit, may change with those). A
    path not known yet is stepped in Python when a state takes it, and no state was judged
    by it."""
    if isinstance(tree, End):
        if tree.kind == "value":
            return sum(1 << (1 + i) for i in cells_of(tree.value))
        if tree.kind != "out":
            return 0
        bits = sum(1 << (1 + i) for i in cells_of(tree.errno))
        if not unchanged(tree, shape):
            for i, cell in enumerate(tree.cells):
                if not _kept(cell, i):
                    bits |= (1 << (1 + i)) | sum(1 << (1 + j) for j in cells_of(cell))
        return bits
    bits = sum(1 << (1 + i) for i in cells_of(tree.expr))
    for _v, child in tree.children:
        bits |= _positions(child, shape)
    return bits


def _bits(bits: int) -> list[int]:
    """A set of positions (an int's bits) as WORDS signed 64-bit words."""
    out = []
    for _w in range(WORDS):
        word = bits & ((1 << 64) - 1)
        out.append(word - (1 << 64) if word >> 63 else word)
        bits >>= 64
    return out


def _postfix(x, words: list) -> None:
    if not isinstance(x, Sym):
        words += (CONST, int(x))
        return
    if x.op == "cell":
        words += (CELL, x.args[0] + 1)  # the row's word 0 is the shape id
        return
    for a in x.args:
        _postfix(a, words)
    words += (_OPCODE[x.op], len(x.args))


# -- the loop ----------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _run(code, start, end, row, stack) -> int:
    """A postfix program over one row (both branches of an ite are computed: no side effects,
    and a division by zero gives 0 where Python would not have taken that branch)."""
    sp = 0
    for pc in range(start, end, 2):
        op = code[pc]
        a = code[pc + 1]
        if op == CONST:
            stack[sp] = a
            sp += 1
            continue
        if op == CELL:
            stack[sp] = row[a]
            sp += 1
            continue
        if op == NEG:
            stack[sp - 1] = -stack[sp - 1]
            continue
        if op == INVERT:
            stack[sp - 1] = ~stack[sp - 1]
            continue
        if op == NOT:
            stack[sp - 1] = 1 if stack[sp - 1] == 0 else 0
            continue
        if op == AND or op == OR:
            sp -= a
            acc = 1 if op == AND else 0
            for i in range(a):
                if op == AND and stack[sp + i] == 0:
                    acc = 0
                if op == OR and stack[sp + i] != 0:
                    acc = 1
            stack[sp] = acc
            sp += 1
            continue
        if op == ITE:
            sp -= 3
            stack[sp] = stack[sp + 1] if stack[sp] != 0 else stack[sp + 2]
            sp += 1
            continue
        sp -= 1
        y = stack[sp]
        x = stack[sp - 1]
        if op == 8:
            r = x + y
        elif op == 9:
            r = x - y
        elif op == 10:
            r = x * y
        elif op == 11:
            r = x // y if y != 0 else 0
        elif op == 12:
            r = x % y if y != 0 else 0
        elif op == 13:
            r = x & y
        elif op == 14:
            r = x | y
        elif op == 15:
            r = x ^ y
        elif op == 16:
            r = x << y
        elif op == 17:
            r = x >> y
        elif op == 18:
            r = 1 if x == y else 0
        elif op == 19:
            r = 1 if x != y else 0
        elif op == 20:
            r = 1 if x < y else 0
        elif op == 21:
            r = 1 if x <= y else 0
        elif op == 22:
            r = 1 if x > y else 0
        else:
            r = 1 if x >= y else 0
        stack[sp - 1] = r
    return stack[0]


@numba.njit(cache=True, inline="always")
def _walk(node, row, tabs, stack):
    """The end a row reaches from a node: (end node, or -1 at a test no child matches)."""
    code, prog, kind, arg, first, count, _post, values, kids, _writes, _trim, _changed = tabs
    while kind[node] == TEST:
        v = _run(code, prog[arg[node], 0], prog[arg[node], 1], row, stack)
        k = first[node]
        nxt = -1
        for i in range(k, k + count[node]):
            if values[i] == v:
                nxt = kids[i]
                break
        if nxt < 0:
            return -1
        node = nxt
    return node


@numba.njit(cache=True, inline="always")
def _changes(end, row, tabs, stack) -> bool:
    """Whether an OUT end with writes leads anywhere but its row: another shape, a written
    value that differs, or a cell past the post shape that was not zero."""
    code, prog, _kind, _arg, first, count, post, _values, _kids, writes, trim, _changed = tabs
    if post[end] != row[0]:
        return True
    for j in range(first[end], first[end] + count[end]):
        p = writes[j, 1]
        if _run(code, prog[p, 0], prog[p, 1], row, stack) != row[writes[j, 0]]:
            return True
    for w in range(trim[end, 0], trim[end, 1]):
        if row[w] != 0:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _successor(end, row, nxt, tabs, stack, lo, hi) -> bool:
    """The row an OUT end leads to, written into nxt: the row with its post shape, its writes
    (computed from the pre-state) and the cells past the post shape's zeroed; False (nxt
    unfinished) when a written value is outside [lo, hi]."""
    code, prog, _kind, _arg, first, count, post, _values, _kids, writes, trim, _changed = tabs
    for w in range(len(row)):
        nxt[w] = row[w]
    nxt[0] = post[end]
    for j in range(first[end], first[end] + count[end]):
        p = writes[j, 1]
        v = _run(code, prog[p, 0], prog[p, 1], row, stack)
        if v < lo or v > hi:
            return False
        nxt[writes[j, 0]] = v
    for w in range(trim[end, 0], trim[end, 1]):
        nxt[w] = 0
    return True


@numba.njit(cache=True, inline="always")
def _hash(row, width):
    h = np.uint64(14695981039346656037)
    for i in range(width):
        h = (h ^ np.uint64(row[i] & 0xFFFFFFFF)) * np.uint64(1099511628211)
    return h ^ (h >> np.uint64(29))


@numba.njit(cache=True, inline="always")
def _find(rows, index, row, width):
    """The slot of `index` holding the row, or the empty slot where it goes."""
    mask = np.uint64(len(index) - 1)
    at = _hash(row, width) & mask
    while True:
        i = index[at]
        if i < 0:
            return at
        same = True
        for w in range(width):
            if rows[i, w] != row[w]:
                same = False
                break
        if same:
            return at
        at = (at + np.uint64(1)) & mask


@numba.njit(cache=True, inline="always")
def _insert(rows, index, parent, via, n, row, width, src, call):
    """Add a row if new: (its id, the new count of rows)."""
    at = _find(rows, index, row, width)
    if index[at] >= 0:
        return index[at], n
    for w in range(width):
        rows[n, w] = row[w]
    parent[n] = src
    via[n] = call
    index[at] = n
    return n, n + 1


@numba.njit(cache=True, nogil=True)
def _expand(first, last, base, rows, index, seen, dues, calldues, roots, proots, nprops, tabs,
            width, lo, hi, out, won, broke):
    """Rows first..last-1 expanded, row r into the (r - base)-th place of `out`: its status, the
    always properties it violates, the calls that fail there, how many succeed, and its
    successors (but self-loops), each with its call and its end; one stored already (under
    symmetry: its own least image) or met before (`seen`) is marked -1, found. The calls that
    succeed are marked in `won` (every thread writes only ones there); broke[i] is the first
    call that fails at the row and changes it all the same (breaking check-then-commit), or
    -1. Nothing else shared is written, and the GIL is let go: a thread each expands a share
    of a batch, and the successors are stored in order afterwards (`_store`), which then
    looks up only the others (most successors are found: 12 edges a state at pKVM 2 x 3)."""
    succ, met, via, ends, moved, starts, count, made, fails, violations, status = out
    code, prog, kind, arg, _first, _count, post, _values, _kids, _writes, _trim, _changed = tabs
    ncalls = roots.shape[1]
    cwords = calldues.shape[1]
    seenmask = np.uint64(len(seen) - 1)
    stack = np.zeros(256, dtype=np.int64)
    row = np.zeros(width, dtype=np.int64)
    nxt = np.zeros(width, dtype=np.int64)
    callsok = np.zeros(ncalls, dtype=np.int64)  # the calls that succeed at a row, and their ends
    callends = np.zeros(ncalls, dtype=np.int64)
    a = (first - base) * ncalls  # the next successor's place: a share's are together
    for r in range(first, last):
        i = r - base
        status[i] = DONE
        starts[i] = a
        count[i] = 0
        broke[i] = -1
        for w in range(width):
            row[w] = rows[r, w]
        sid = row[0]
        due = dues[r]
        for q in range(nprops):
            violations[i, q] = 0
            if q < 63 and (due >> q) & 1 == 0:
                continue
            t = proots[sid, q]
            end = _walk(t, row, tabs, stack) if t >= 0 else -1
            if end < 0 or kind[end] != OUT:
                status[i] = STEP_IN_PYTHON
                return
            if _run(code, prog[arg[end], 0], prog[arg[end], 1], row, stack) == 0:
                violations[i, q] = 1
        for w in range(cwords):
            fails[i, w] = ~calldues[r, w]
        mine = 0
        for ci in range(ncalls):
            if (calldues[r, ci >> 6] >> (ci & 63)) & 1 == 0:
                continue  # failed in the parent, and the step left what decided it
            t = roots[sid, ci]
            end = _walk(t, row, tabs, stack) if t >= 0 else -1
            if end < 0 or kind[end] == ESCAPE:
                status[i] = STEP_IN_PYTHON
                return
            if kind[end] == NONE or _run(code, prog[arg[end], 0], prog[arg[end], 1], row,
                                         stack) != 0:
                if kind[end] != NONE and post[end] >= 0 and broke[i] < 0 and _changes(
                        end, row, tabs, stack):
                    broke[i] = ci  # a failure that changes the row: not check-then-commit
                fails[i, ci >> 6] |= np.int64(1) << (ci & 63)  # no edge in the graph
                continue
            if won[ci] == 0:  # written once: the threads share its cache line after that
                won[ci] = 1
            callsok[mine] = ci
            callends[mine] = end
            mine += 1
        made[i] = mine
        for k in range(mine):
            ci, end = callsok[k], callends[k]
            if post[end] < 0:
                continue  # every cell kept: a self-loop
            if not _successor(end, row, nxt, tabs, stack, lo, hi):
                status[i] = RANGE
                break
            via[a] = ci
            ends[a] = end
            moved[a] = 0
            if _known(rows, index, seen, seenmask, nxt, width):
                moved[a] = -1
            for w in range(width):
                succ[a, w] = nxt[w]
            a += 1
        count[i] = a - starts[i]


@numba.njit(cache=True, inline="always")
def _known(rows, index, seen, seenmask, nxt, width) -> bool:
    """Whether a successor is stored (under symmetry, its own least image) or was met before
    (`seen`: its least image is stored; without symmetry a row of -1, never met)."""
    if index[_find(rows, index, nxt, width)] >= 0:
        return True
    slot = _hash(nxt, width) & seenmask
    if seen[slot, 0] != nxt[0]:
        return False
    for w in range(1, width):
        if seen[slot, w] != nxt[w]:
            return False
    return True


@numba.njit(cache=True)
def _sift(head, last, width, out, todo, firsts, placed) -> int:
    """Under symmetry, between expanding a batch and storing it: which successors need their
    least image (`todo`, in order; how many is the answer). Not one found already
    (`_expand`), nor one met earlier in the batch (an index of the batch's successors,
    `firsts`, empty again on return): one thread storing in order would have found each of
    those without the renamings, and a batch's rows are siblings that reach the same states
    (steps that commute). The others are marked MOVING."""
    succ, met, via, ends, moved, starts, count, made, fails, violations, status = out
    k = 0
    for r in range(head, last):
        i = r - head
        if status[i] != DONE:
            break
        for a in range(starts[i], starts[i] + count[i]):
            if moved[a] == -1:
                continue
            at = _find(succ, firsts, succ[a], width)
            if firsts[at] >= 0:
                moved[a] = -1  # met earlier in the batch
                continue
            firsts[at] = a
            placed[k] = at
            moved[a] = MOVING
            todo[k] = a
            k += 1
    for j in range(k):
        firsts[placed[j]] = -1
    return k


@numba.njit(cache=True, nogil=True)
def _least(first, last, todo, out, of, stabs, width, lo, hi) -> None:
    """The successors todo[first:last] replaced by their least images, each kept in `met` as
    it was met, and marked 1 if that changed it (0 if not, or -2 when its shape has no
    programs yet, -3 when a value needs wider cells). Nothing shared is written but its own
    successors: a thread each takes a share, without the GIL."""
    succ, met, via, ends, moved, starts, count, made, fails, violations, status = out
    nxt = np.zeros(width, dtype=np.int64)
    scratch = np.zeros((4, width), dtype=np.int64)
    for k in range(first, last):
        a = todo[k]
        for w in range(width):
            met[a, w] = succ[a, w]
            nxt[w] = succ[a, w]
        mv = canonical(nxt, of, stabs, scratch, width, lo, hi)
        if mv == 1:
            for w in range(width):
                succ[a, w] = nxt[w]
        moved[a] = mv if mv >= 0 else mv - 1


@numba.njit(cache=True)
def _store(rows, index, parent, via, dues, calldues, n, head, last, propread, callread, nprops,
           tabs, width, violated, seen, out, broke, broken):
    """The successors of rows head..last-1, as `_expand` left them, stored in order (the ids,
    parents and counts one thread would give): (why, the row it stopped at, n, edges). The
    first row violating always property i is noted in violated[i], the first row where a
    failing call changes the state in broken (row, call). A new row's properties
    and calls are judged incrementally: dues[r] holds the properties the step that found it
    may have changed (it wrote a position the property read on that shape), calldues[r] the
    calls (those that did not fail in the parent, and those whose failure the step may have
    changed: it wrote a position their tree decides on); a step to another shape, or a
    successor replaced by its least image, makes them all due. The other properties hold or
    fail as in the parent, the other calls fail as they did there (most calls fail in most
    states). A successor replaced by its least image is kept in `seen` as it was met; one
    marked -1 was found already (`_expand`, `_sift`), and one marked below that could not be
    made (its shape has no programs yet, -2; a value needs wider cells, -3)."""
    succ, met, calls, ends, moved, starts, count, made, fails, violations, status = out
    changed, post = tabs[11], tabs[6]
    incremental = width <= 64 * WORDS
    nwords = (width + 63) // 64
    edges = 0
    ncalls = callread.shape[1]
    cwords = calldues.shape[1]
    seenmask = np.uint64(len(seen) - 1)
    for r in range(head, last):
        i = r - head
        if status[i] != DONE:
            return status[i], r, n, edges
        if n + ncalls > len(rows) or 2 * (n + ncalls) > len(index):
            return GROW, r, n, edges
        for q in range(nprops):
            if violations[i, q] and violated[q] < 0:
                violated[q] = r
        if broke[i] >= 0 and broken[0] < 0:
            broken[0], broken[1] = r, broke[i]
        sid = rows[r, 0]
        for a in range(starts[i], starts[i] + count[i]):
            if moved[a] == -1:
                continue  # found already
            if moved[a] < -1:
                return (SYMMETRY if moved[a] == -2 else RANGE), r, n, edges
            ci, end = calls[a], ends[a]
            before = n
            found, n = _insert(rows, index, parent, via, n, succ[a], width, r, ci)
            if moved[a] == 1:
                slot = _hash(met[a], width) & seenmask
                for w in range(width):
                    seen[slot, w] = met[a, w]
            if n == before:
                continue
            if not (incremental and post[end] == sid and moved[a] == 0):
                dues[found] = ALL
                for w in range(cwords):
                    calldues[found, w] = ALL
                continue
            mask = 0  # which properties and calls the new row must judge
            for q in range(min(nprops, 63)):
                for w in range(nwords):
                    if propread[sid, q, w] & changed[end, w] != 0:
                        mask |= 1 << q
                        break
            dues[found] = mask
            for w in range(cwords):
                calldues[found, w] = ~fails[i, w]
            for cj in range(ncalls):
                if (fails[i, cj >> 6] >> (cj & 63)) & 1 == 0:
                    continue
                for w in range(nwords):
                    if callread[sid, cj, w] & changed[end, w] != 0:
                        calldues[found, cj >> 6] |= np.int64(1) << (cj & 63)
                        break
        edges += made[i]
    return DONE, last, n, edges


@numba.njit(cache=True)
def _reindex(rows, n, index, width):
    for i in range(n):
        index[_find(rows, index, rows[i], width)] = i


# -- the driver --------------------------------------------------------------------------------

# the loop's symmetry arguments without symmetry (of the types `Orbits` gives)
_NO_PROGRAMS = np.full((0, 2), -1, dtype=np.int64)
_NO_TABLES = tuple(np.zeros((1, w), dtype=np.int64) for w in (10, 3, 8, 3)) + tuple(
    np.zeros(1, dtype=np.int64) for _ in range(3))


class NativeSearch:
    """The reachable states of one configuration, searched natively (no graph): with `orbits`,
    one state per orbit of the profile's symmetry."""

    # a row's cells: as narrow as every value met so far (a wider one widens them all)
    DTYPES = (np.int8, np.int16, np.int32, np.int64)

    def __init__(self, compiled: Compiled, orbits: Orbits | None = None):
        self.comp = compiled
        self.enc = Encoding(compiled)
        self.orbits = orbits
        self.rows = np.zeros((1 << 12, 1), dtype=np.int8)
        self.index = np.full(1 << 13, -1, dtype=np.int32)
        self.parent = np.zeros(1 << 12, dtype=np.int32)
        self.via = np.zeros(1 << 12, dtype=np.int32)
        self.dues = np.zeros(1 << 12, dtype=np.int64)
        self.calldues = np.zeros((1 << 12, max(1, (len(compiled.calls) + 63) // 64)),
                                 dtype=np.int64)
        self.seen = np.zeros((0, 0), dtype=np.int8)
        self._out_key = None
        self.threads = THREADS  # a share of each batch per thread, expanded in this pool
        self._pool = (ThreadPoolExecutor(self.threads, thread_name_prefix="native")
                      if self.threads > 1 else None)
        self.n = self.head = self.edges = 0
        self.violated = np.full(max(len(compiled.always), 1), -1, dtype=np.int64)
        self.won = np.zeros(max(len(compiled.calls), 1), dtype=np.int8)  # calls that succeeded
        self.broken = np.full(2, -1, dtype=np.int64)  # a failing call that changed a row, where
        self.in_python = 0  # states stepped in Python
        self.learned = 0  # states the trees learned (traced again with them as an oracle)
        self._learning = -1  # the last of them
        self.encode_seconds = 0.0
        self.engine_seconds = 0.0  # numba compiling the loop, or loading it from its cache

    def _deepen(self, values) -> None:
        """Cells wide enough for these values."""
        lo, hi = min(values), max(values)
        for dtype in self.DTYPES:
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                break
        else:
            raise OverflowError(f"a cell value beyond 64 bits: {lo if lo < 0 else hi}")
        if np.iinfo(dtype).bits > np.iinfo(self.rows.dtype).bits:
            self.rows = self.rows.astype(dtype)

    def _widen(self, width: int) -> None:
        if width > self.rows.shape[1]:
            rows = np.zeros((len(self.rows), width), dtype=self.rows.dtype)
            rows[:self.n, :self.rows.shape[1]] = self.rows[:self.n]
            self.rows = rows
            self.index.fill(-1)
            _reindex(self.rows, self.n, self.index, width)

    def _grow(self, need: int) -> None:
        cap = len(self.rows)
        while need > cap:
            cap *= 2
        if cap > len(self.rows):
            rows = np.zeros((cap, self.rows.shape[1]), dtype=self.rows.dtype)
            rows[:self.n] = self.rows[:self.n]
            self.rows = rows
            for name in ("parent", "via", "dues", "calldues"):
                old = getattr(self, name)
                new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
                new[:self.n] = old[:self.n]
                setattr(self, name, new)
        if 2 * need > len(self.index):
            size_ = len(self.index)
            while 2 * need > size_:
                size_ *= 2
            self.index = np.full(size_, -1, dtype=np.int32 if size_ < 2**31 else np.int64)
            _reindex(self.rows, self.n, self.index, self.rows.shape[1])

    def _add(self, packed: tuple, src: int, call: int) -> None:
        packed = self.representative(packed)
        self._widen(len(packed))
        row = np.zeros(self.rows.shape[1], dtype=np.int64)
        row[:len(packed)] = packed
        self._deepen(packed)
        self._grow(self.n + 1)
        before = self.n
        found, self.n = _insert(self.rows, self.index, self.parent, self.via, self.n, row,
                                self.rows.shape[1], src, call)
        if self.n > before:
            self.dues[found] = ALL
            self.calldues[found] = ALL

    def _seen(self) -> np.ndarray:
        """The loop's successors met that were not their own least image: a row per `SEEN`
        rows of the arrays (one without symmetry), as wide and deep; emptied when it changes."""
        rows = max(1, len(self.rows) // SEEN) if self.orbits is not None else 1
        if self.seen.shape != (rows, self.rows.shape[1]) or self.seen.dtype != self.rows.dtype:
            self.seen = np.full((rows, self.rows.shape[1]), -1, dtype=self.rows.dtype)
        return self.seen

    def _search(self, stop_at: int, symmetric: bool, of, stabs) -> int:
        """Breadth-first from the head until every row is expanded or it must stop: why. A
        batch of rows at a time: each thread expands a share of it (`_expand`); under
        symmetry, the successors not found otherwise (`_sift`) are replaced by their least
        images, a share per thread (`_least`); then they are stored in order (`_store`): the
        same ids, parents and counts as one thread storing as it goes. The head, the rows and
        the edges are brought up to date after each batch (a Ctrl-C between two leaves the
        search whole)."""
        out, (todo, firsts, placed), broke = self._batch()
        enc, seen, width = self.enc, self._seen(), self.rows.shape[1]
        info, nprops, tables = np.iinfo(self.rows.dtype), len(self.comp.always), enc.tables()

        def expand(first, last):
            return (first, last, self.head, self.rows, self.index, seen, self.dues,
                    self.calldues, enc.roots, enc.proots, nprops, tables, width, info.min,
                    info.max, out, self.won, broke)

        def least(first, last):
            return first, last, todo, out, of, stabs, width, info.min, info.max

        def sift(last):
            return self.head, last, width, out, todo, firsts, placed

        def store(last):
            return (self.rows, self.index, self.parent, self.via, self.dues, self.calldues,
                    self.n, self.head, last, enc.propread, enc.callread, nprops, tables, width,
                    self.violated, seen, out, broke, self.broken)

        self._ready(_expand, expand(self.head, self.head))
        self._ready(_store, store(self.head))
        if symmetric:
            self._ready(_sift, sift(self.head))
            self._ready(_least, least(0, 0))
        while self.head < self.n:
            if self.head >= stop_at:
                return PAUSE
            last = min(self.n, stop_at, self.head + BATCH)
            self._shared(_expand, expand, self.head, last)
            if symmetric:
                self._shared(_least, least, 0, _sift(*sift(last)))
            why, self.head, self.n, stored = _store(*store(last))
            self.edges += stored
            if why != DONE:
                return why
        return DONE

    def _shared(self, fn, args, first: int, last: int) -> None:
        """fn(*args(a, b)) on a share of first..last-1 per thread, all done on return."""
        if self._pool is None or last - first < 2:
            fn(*args(first, last))
            return
        cut = [first + k * (last - first) // self.threads for k in range(self.threads + 1)]
        for done in [self._pool.submit(fn, *args(a, b)) for a, b in zip(cut, cut[1:])]:
            done.result()

    def _batch(self) -> tuple:
        """What a batch of `BATCH` rows expands to (its successors as deep as the rows), the
        successors to replace by their least images (with a table of those met first), and
        each row's failing call that changed it, if any."""
        ncalls, width, dtype = len(self.comp.calls), self.rows.shape[1], self.rows.dtype
        key = (ncalls, width, dtype, BATCH)
        if self._out_key != key:
            self._out_key = key
            rows, calls = (BATCH * ncalls, width), BATCH * ncalls
            self._out = (np.zeros(rows, dtype=dtype), np.zeros(rows, dtype=dtype),
                         np.zeros(calls, dtype=np.int64), np.zeros(calls, dtype=np.int64),
                         np.zeros(calls, dtype=np.int64), np.zeros(BATCH, dtype=np.int64),
                         np.zeros(BATCH, dtype=np.int64), np.zeros(BATCH, dtype=np.int64),
                         np.zeros((BATCH, self.calldues.shape[1]), dtype=np.int64),
                         np.zeros((BATCH, max(1, len(self.comp.always))), dtype=np.int8),
                         np.zeros(BATCH, dtype=np.int64))
            slots = 1 << (2 * BATCH * ncalls - 1).bit_length()
            self._sifting = (np.zeros(BATCH * ncalls, dtype=np.int64),
                             np.full(slots, -1, dtype=np.int64),
                             np.zeros(BATCH * ncalls, dtype=np.int64))
            self._broke = np.zeros(BATCH, dtype=np.int64)
        return self._out, self._sifting, self._broke

    def _symmetry(self) -> tuple:
        """The loop's symmetry arguments: whether it reduces, the programs of every shape."""
        if self.orbits is None:
            return False, _NO_PROGRAMS, _NO_TABLES
        if self.orbits.cover():
            self._deepen([self.orbits.top])
        return True, self.orbits.of, self.orbits.tables()

    def representative(self, packed: tuple) -> tuple:
        """The least image of a packed state (itself without symmetry)."""
        if self.orbits is None:
            return packed
        _symmetric, of, stabs = self._symmetry()
        row = self.wide_row(packed)
        width = len(row)
        lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        args = (row, of, stabs, np.zeros((4, width), np.int64), width, lo, hi)
        self._ready(canonical, args)
        canonical(*args)
        return self.held(row)

    def wide_row(self, packed: tuple) -> np.ndarray:
        """A packed state as a row as wide as the widest shape's: a renaming may change the
        shape, so its programs write images that wide."""
        row = np.zeros(1 + max(size(shape) for shape in self.comp.shapes), dtype=np.int64)
        row[:len(packed)] = packed
        return row

    def held(self, row) -> tuple:
        """The packed state a row holds (its shape's cells, without the padding)."""
        return tuple(int(x) for x in row[:1 + size(self.comp.shapes[int(row[0])])])

    def packed(self, i: int) -> tuple:
        return self.held(self.rows[i])

    def _ready(self, fn, args) -> None:
        """The loop compiled for these argument types (cells widen: a new type), timed apart."""
        types = tuple(numba.typeof(a) for a in args)
        if types not in fn.overloads:
            started = time.perf_counter()
            fn.compile(types)
            self.engine_seconds += time.perf_counter() - started

    def _learn(self) -> None:
        """The trees of the calls and properties the arrays cannot answer at the head, traced
        again with its cells as an oracle: they learn its path, and the loop tries it again
        (no Python function is compiled)."""
        comp, s = self.comp, self.packed(self.head)
        for ci, out in enumerate(answers(self, s)):
            if out == "python":
                comp.learn(ci, s)
        for i, value in enumerate(_holds(self, s)):
            if value is None:
                comp.learn(-1 - i, s)
        self.learned += 1

    def _step_in_python(self) -> None:
        """The state at the head, stepped by the Python backend (which learns what it meets):
        for a state whose trees learned and still cannot answer it (a path left to the
        concrete reading)."""
        comp, s = self.comp, self.packed(self.head)
        for i in range(len(comp.always)):
            if not comp.holds(s, i) and self.violated[i] < 0:
                self.violated[i] = self.head
        for ci, out in enumerate(answers(self, s)):
            if out == "python":  # only the calls the arrays cannot answer are compiled
                out = comp.step(s, ci)
            if out is None:
                continue
            if out[0]:
                if out[1] != s and self.broken[0] < 0:
                    self.broken[:] = (self.head, ci)
                continue
            self.won[ci] = 1
            self.edges += 1
            self._add(out[1], self.head, ci)
        self.head += 1
        self.in_python += 1

    def run(self, initial, deadline: float | None = None, until: int | None = None,
            batch: int = 1 << 16, progress=None) -> bool:
        """Search from the initial state (packed) until every state is expanded (True), or
        `until` states are, or the deadline passes (False); `progress(rows, edges, expanded)`
        after each `batch` of rows (it may raise to stop the search, which stays whole)."""
        if self.n == 0:
            self._add(initial, -1, -1)
        while self.head < self.n and (until is None or self.head < until):
            if until is not None:
                batch = min(batch, until - self.head)
            started = time.perf_counter()
            symmetric, of, stabs = self._symmetry()  # before the trees: it may add shapes
            self.enc.refresh()
            self.encode_seconds += time.perf_counter() - started
            self._widen(self.enc.width)
            why = self._search(self.head + batch, symmetric, of, stabs)
            if why == GROW:
                self._grow(self.n + len(self.comp.calls))
            elif why == STEP_IN_PYTHON:
                made = len(self.comp.made)
                self.comp.trees_of(int(self.rows[self.head, 0]))  # a shape met the first time
                if len(self.comp.made) > made:
                    continue
                if self._learning == self.head:  # its trees learned, and still cannot answer
                    self._step_in_python()
                else:
                    self._learning = self.head
                    self._learn()
            elif why == RANGE:  # a successor's value needs wider cells: widen, then redo
                self._deepen([int(np.iinfo(self.rows.dtype).max) + 1])
            if progress is not None:
                progress(self.n, self.edges, self.head)
            if deadline is not None and time.perf_counter() > deadline:
                break
        return self.head >= self.n

    def layers(self) -> list[int]:
        """How many rows lie at each breadth-first depth (the last one maybe not all found):
        by them a search stopped at a cap says how far it got, since its layers grow to a
        peak and then shrink (pKVM 3 x 3 with symmetry: 33 layers, the largest the 16th)."""
        parent = self.parent[1:self.n]  # stored breadth first: the parents ascend
        ends = [min(self.n, 1)]
        while ends[-1] < self.n:  # the next layer: the rows whose parent lies before its end
            ends.append(1 + int(np.searchsorted(parent, ends[-1])))
        return [b - a for a, b in zip([0, *ends], ends)]

    def path(self, i: int, initial: tuple) -> list:
        """The calls from the initial state (packed) to state i (breadth-first: a shortest
        path). Under symmetry, each row's step is a call on its parent's representative: the
        path is walked again from the initial state itself, taking at each step a call whose
        successor has the next row's representative, so it is a run of the model."""
        calls, rows = [], [i]
        while self.parent[i] >= 0:
            calls.append(int(self.via[i]))
            i = int(self.parent[i])
            rows.append(i)
        calls, rows = calls[::-1], rows[::-1]
        if self.orbits is None:
            return [self.comp.calls[ci] for ci in calls]
        state, out = initial, []
        for row in rows[1:]:
            want = self.packed(row)
            for ci in range(len(self.comp.calls)):
                step = self.comp.step(state, ci)
                if step is not None and step[0] == 0 and self.representative(step[1]) == want:
                    out.append(self.comp.calls[ci])
                    state = step[1]
                    break
            else:
                raise Disagreement(f"no call from {self.comp.unpack(state)} reaches the orbit "
                                   f"of {self.comp.unpack(want)}")
        return out


def answers(search: NativeSearch, packed: tuple) -> list:
    """What the arrays answer for every call of one state: (errno, packed successor), None,
    or "python" where the loop would step the state in Python (for holding them against the
    concrete reading, and for stepping in Python only the calls that need it)."""
    status, errnos, rows, ends = _evaluate(search, packed, "roots", len(search.comp.calls))
    out: list = []
    for ci in range(len(search.comp.calls)):
        if status[ci] == ESCAPE:
            out.append("python")
        elif status[ci] == NONE:
            out.append(None)
        elif ends[ci] < 0:  # every cell kept
            out.append((int(errnos[ci]), packed))
        else:
            out.append((int(errnos[ci]), tuple(rows[ci, :ends[ci]].tolist())))
    return out


def _holds(search: NativeSearch, packed: tuple) -> list:
    """What the arrays answer for every always property of one state: True, False, or None
    where the loop would step the state in Python."""
    nprops = len(search.comp.always)
    status, values, _rows, _ends = _evaluate(search, packed, "proots", nprops)
    return [None if status[i] != OUT else bool(values[i]) for i in range(nprops)]


def _evaluate(search: NativeSearch, packed: tuple, roots: str, n: int) -> tuple:
    """`_answers` of one state over the first n roots of its shape in the encoding's table
    `roots` (the calls', "roots", or the properties', "proots"), the trees encoded first (which
    may grow the table: it is read after)."""
    enc = search.enc
    started = time.perf_counter()
    enc.refresh()
    search.encode_seconds += time.perf_counter() - started
    table = getattr(enc, roots)
    row = np.zeros(max(enc.width, len(packed)), dtype=np.int64)
    row[:len(packed)] = packed
    sid = packed[0]
    roots = table[sid, :n] if sid < len(table) else np.full(n, -1)
    args = (np.ascontiguousarray(roots), row, enc.tables())
    search._ready(_answers, args)
    return _answers(*args)


@numba.njit(cache=True)
def _answers(roots, row, tabs):
    """Every call on one row, as the loop steps it (its own inlined code): per call, its
    status (OUT, NONE or ESCAPE), errno, successor row and the successor's length (-1: the
    row itself)."""
    code, prog, kind, arg, _first, _count, post, _values, _kids, _writes, trim, _changed = tabs
    n, width = len(roots), len(row)
    stack = np.zeros(256, dtype=np.int64)
    status = np.full(n, ESCAPE, dtype=np.int64)
    errnos = np.zeros(n, dtype=np.int64)
    rows = np.zeros((n, width), dtype=np.int64)
    ends = np.full(n, -1, dtype=np.int64)
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    for ci in range(n):
        if roots[ci] < 0:
            continue
        end = _walk(roots[ci], row, tabs, stack)
        if end < 0 or kind[end] == ESCAPE:
            continue
        status[ci] = kind[end]
        if kind[end] == NONE:
            continue
        errnos[ci] = _run(code, prog[arg[end], 0], prog[arg[end], 1], row, stack)
        if post[end] >= 0:
            _successor(end, row, rows[ci], tabs, stack, lo, hi)
            ends[ci] = trim[end, 0]
    return status, errnos, rows, ends


def check_native(search: NativeSearch, states) -> int:
    """Every call on every state, the arrays against the Python backend (itself held against
    `profile.step` by `check`); the number of answers compared."""
    comp = search.comp
    n = 0
    for state in states:
        packed = comp.pack(state)
        comp.trees_of(packed[0])
        got = answers(search, packed)
        for ci, answer in enumerate(got):
            if answer == "python":
                continue
            want = comp.step(packed, ci)
            n += 1
            if want is None and answer is not None or want is not None and (
                    answer is None or answer[0] != want[0] or answer[1] != want[1]):
                raise Disagreement(f"{comp.calls[ci]} on {state}: compiled {want}, "
                                   f"native {answer}")
    return n


def check_orbits(search: NativeSearch, states) -> int:
    """Every renaming's program on every state, against the profile's own `image` (itself
    checked by the explorer as it goes); the number of images compared. A renaming whose
    conditions a state fails is skipped there, as the loop skips it."""
    orbits, comp = search.orbits, search.comp
    if orbits is None or not states:
        return 0
    _symmetric, of, stabs = search._symmetry()  # the states' shapes are all covered
    n = 0
    for state in states:
        packed = comp.pack(state)
        row = search.wide_row(packed)
        width = len(row)
        img, vals = np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.int64)
        if n == 0:
            search._ready(image, (row, 0, stabs, img, vals, width))
            search._ready(applies, (row, 0, stabs))
        for k, element in enumerate(orbits.elements):
            p = of[packed[0], 0] + k
            if not applies(row, p, stabs):
                continue
            image(row, p, stabs, img, vals, width)
            want = comp.pack(orbits.symmetry.image(state, *element))
            got = search.held(img)
            n += 1
            if got != want:
                raise Disagreement(f"renaming {element} of {state}: the profile's image "
                                   f"{comp.unpack(want)}, its program's {comp.unpack(got)}")
    return n


def reachable(profile, config, *, max_seconds: float | None = None, check_first: int = 100,
              properties: bool = False, compiled=None, cache: str | None = None,
              symmetry: bool = False, progress=None, stops: tuple = ()) -> dict:
    """As `search.reachable`, natively: states, edges, seconds (all of it) and search seconds
    (without tracing, compiling the trees and the loop, encoding and the check of the first
    states), whether it completed, the always properties violated with a shortest path to
    each, the rows found at each depth (`layers`), the transitions that succeeded somewhere
    (`succeeded`), and a shortest path to a state where a failing call changes the state
    (`broken`: the path, and the call on the representative; under symmetry the state the
    path reaches is in its orbit, where a renamed call fails so). With `cache` (a folder),
    the trees are read from there and written back after; with `symmetry`, one state per
    orbit of the profile's symmetry. `progress` is the search's (`NativeSearch.run`); an
    exception of `stops` raised on the way (a Ctrl-C) ends the search where it is: `stopped`
    holds it."""
    start = time.perf_counter()
    comp = compiled or Compiled(profile, config, properties,
                                None if cache is None else TraceCache(cache, profile, config))
    loading = time.perf_counter() - start
    deadline = None if max_seconds is None else start + max_seconds
    group = profile.symmetry(config, enabled=symmetry)
    search = NativeSearch(comp, Orbits(comp, group) if not group.trivial else None)
    initial = comp.pack(profile.initial_state(config))
    checking, stopped = 0.0, None
    try:
        complete = search.run(initial, deadline, until=check_first, progress=progress)
        began = time.perf_counter()
        first = [comp.unpack(search.packed(i)) for i in range(min(search.n, check_first))]
        compiling, engine = comp.compile_seconds, search.engine_seconds
        check(comp, first)
        check_native(search, first)
        check_orbits(search, first)
        checking = (time.perf_counter() - began - (comp.compile_seconds - compiling)
                    - (search.engine_seconds - engine))
        if not complete:
            complete = search.run(initial, deadline, progress=progress)
    except stops as stop:
        complete, stopped = False, stop
    if search.orbits is not None and stopped is None:  # the renamings again, over the run
        started, engine = time.perf_counter(), search.engine_seconds
        spread = np.unique(np.linspace(0, search.n - 1, min(check_first, search.n), dtype=int))
        check_orbits(search, [comp.unpack(search.packed(int(i))) for i in spread])
        checking += time.perf_counter() - started - (search.engine_seconds - engine)
    seconds = time.perf_counter() - start
    saving = time.perf_counter()
    comp.save()
    saving = time.perf_counter() - saving
    violated = {comp.always[i].name: [str(c) for c in search.path(int(at), initial)]
                for i, at in enumerate(search.violated[:len(comp.always)]) if at >= 0}
    at, ci = (int(x) for x in search.broken)
    broken = None if at < 0 else {"path": [str(c) for c in search.path(at, initial)],
                                  "call": str(comp.calls[ci])}
    return {"states": search.n, "edges": search.edges, "seconds": seconds,
            "search_seconds": seconds - loading - comp.compile_seconds - search.encode_seconds
            - checking - search.engine_seconds,
            "encode_seconds": search.encode_seconds, "check_seconds": checking,
            "engine_seconds": search.engine_seconds,
            "complete": complete, "traced": comp.traced, "reused": comp.reused,
            "cached": comp.cached, "cache_seconds": loading + saving,
            "compile_seconds": comp.compile_seconds, "fallbacks": comp.fallbacks,
            "shapes": len(comp.shapes), "in_python": search.in_python,
            "learned": search.learned, "group_order": group.order,
            "violated": sorted(violated), "paths": violated, "layers": search.layers(),
            "succeeded": sorted({comp.calls[i].name for i in np.flatnonzero(search.won)}),
            "broken": broken,
            "bytes_per_state": _bytes(search), "stopped": stopped, "search": search}


def _bytes(search: NativeSearch) -> float:
    held = sum(a.nbytes for a in (search.rows, search.index, search.parent, search.via,
                                   search.dues, search.calldues, search.seen))
    return held / max(search.n, 1)
