"""The gmem profile's views: the reads, writes and quantifiers transitions and properties are
written in, concretely (tuples) and as z3 terms (arrays over unbounded integers).

Both readings give the same answer on every state the protocol reaches: a read outside its
domain (a gfn past the machine, a slot id past the slots, a file not created, an index past
the file's size) is 0, and a write there is dropped. The symbolic machine leaves the VM type,
the number of slots, gfns and files unbounded (z3 integers), so a proof holds for all of them.
Both read the fields of a `Layout`: the profile's own, then any an extension adds.
"""

from __future__ import annotations

import z3

from model.concrete import ConcreteView, assign
from model.profiles.gmem.states import (
    ARM64, BASE, LOFF_PAGES, SW_PROTECTED, VMFD, X86_DEFAULT, Config, Layout,
)
from model.symbolic import INT, SymbolicReading, SymbolicSteps, fresh


class Vocabulary:
    """What both readings derive from their reads (`read(field, key)`), written once."""

    # -- named reads ---------------------------------------------------------------------------
    def fsize(self, f): return self.read("fsize", f)
    def fflags(self, f): return self.read("fflags", f)
    def fd(self, f): return self.read("fd", f)
    def vmas(self, f): return self.read("vmas", f)
    def page(self, f, i): return self.read("page", (f, i))
    def bind(self, f, i): return self.read("bind", (f, i))
    def hpte(self, f, i): return self.read("hpte", (f, i))
    def sn(self, x): return self.read("sn", x)
    def sbase(self, x): return self.read("sbase", x)
    def sgmem(self, x): return self.read("sgmem", x)
    def sfile(self, x): return self.read("sfile", x)
    def spgoff(self, x): return self.read("spgoff", x)
    def sonly(self, x): return self.read("sonly", x)
    def attr(self, g): return self.read("attr", g)
    def gslot(self, g): return self.read("gslot", g)
    def lkind(self, g): return self.read("lkind", g)
    def lfile(self, g): return self.read("lfile", g)
    def lidx(self, g): return self.read("lidx", g)

    # -- the VM type (sheet 1.1) ------------------------------------------------------------
    def has_private(self):
        """kvm_arch_has_private_mem(): PRIVATE attributes, private accesses."""
        return self.vm_type_is(SW_PROTECTED)

    def supports_init_shared(self):
        """kvm_arch_supports_gmem_init_shared(): x86 without private memory, arm64."""
        return self.Not(self.vm_type_is(SW_PROTECTED))

    def arm64(self):
        return self.vm_type_is(ARM64)

    def slot_zap_all(self):
        """kvm_memslot_flush_zap_all(): an x86 default VM (KVM_X86_QUIRK_SLOT_ZAP_ALL, on by
        default) zaps every leaf when a slot goes, not only the slot's."""
        return self.vm_type_is(X86_DEFAULT)

    def Then(self, cond, thunk):
        """Implies(cond, thunk()), the consequent built only when needed (concretely: only when
        cond holds, which keeps per-edge step properties cheap)."""
        return self.Implies(cond, thunk())

    # -- derived reads -------------------------------------------------------------------------
    def has_flag(self, f, flag):
        return self.bit(self.fflags(f), flag)

    def live(self, f):
        """The file holds a reference (its fd or a VMA): not released."""
        return self.And(self.exists(f), self.Or(self.fd(f) == 1, self.vmas(f) > 0))

    def released(self, f):
        return self.And(self.exists(f), self.fd(f) == 0, self.vmas(f) == 0)

    def fd_ok(self, f):
        """fget(fd) finds an open file: a guest_memfd's fd, or the VM's own (VMFD)."""
        return self.Or(self.And(f == VMFD, self.vm() == 0), self.fd(f) == 1)

    def slot_of(self, g):
        """The slot covering gfn g (-1: none)."""
        return self.gslot(g) - 1

    def index_of(self, g):
        """kvm_gmem_get_index(): g's index in its slot's file."""
        x = self.slot_of(g)
        return g - self.sbase(x) + self.spgoff(x)

    def bound_file(self, g):
        """The file g's slot is bound to, + 1 (0: none)."""
        return self.If(self.gslot(g) != 0, self.sfile(self.slot_of(g)), 0)


class Concrete(Vocabulary, ConcreteView):
    def __init__(self, config: Config, state, transitions=None, fields: Layout = BASE):
        super().__init__(config, state, transitions)
        self.fields = fields
        self._writes: dict[str, object] = {}

    def Then(self, cond, thunk):
        return (not cond) or bool(thunk())

    # -- domains --------------------------------------------------------------------------------
    def vm_type_is(self, t):
        return self.config.vm_type == t

    def is_gfn(self, g):
        return 0 <= g < self.config.gfns

    def is_slot(self, x):
        return 0 <= x < self.config.slots

    def exists(self, f):
        return 0 <= f < self.pre.nfiles

    def in_file(self, f, i):
        return self.exists(f) and 0 <= i < self.pre.fsize[f]

    # -- the caller discipline's bounds (the machine's tuples) -------------------------------------
    def gfn_limit(self):
        return self.config.gfns

    def can_create(self):
        return self.pre.nfiles < self.config.files

    def size_fits(self, size):
        """At most `pages` pages, or an invalid loff_t that still fits a __u64 in bytes."""
        return size <= self.config.pages or LOFF_PAGES <= size < 2 * LOFF_PAGES

    def vma_limit(self):
        return self.config.max_vmas

    def _ok(self, field, key) -> bool:
        kind = self.fields.kind[field]
        if kind == "scalar":
            return True
        if kind == "file":
            return 0 <= key < self.config.files and key <= self.pre.nfiles
        if kind == "index":
            return self.in_file(*key)
        if kind == "slot":
            return self.is_slot(key)
        return self.is_gfn(key)

    def read(self, field, key=None):
        kind = self.fields.kind[field]
        if kind == "scalar":
            return getattr(self.pre, field)
        if kind == "file":
            return getattr(self.pre, field)[key] if self.exists(key) else 0
        if kind == "index":
            f, i = key
            return getattr(self.pre, field)[f][i] if self.in_file(f, i) else 0
        if kind == "slot":
            return getattr(self.pre, field)[key] if self.is_slot(key) else 0
        return getattr(self.pre, field)[key] if self.is_gfn(key) else 0

    def vm(self): return self.pre.vm
    def nfiles(self): return self.pre.nfiles

    # -- quantifiers ------------------------------------------------------------------------------
    def _files(self):
        return range(self.pre.nfiles)

    def _indices(self):
        return [(f, i) for f in self._files() for i in range(self.pre.fsize[f])]

    def forall_gfn(self, pred): return all(pred(g) for g in range(self.config.gfns))
    def exists_gfn(self, pred): return any(pred(g) for g in range(self.config.gfns))
    def forall_slot(self, pred): return all(pred(x) for x in range(self.config.slots))
    def exists_slot(self, pred): return any(pred(x) for x in range(self.config.slots))
    def forall_file(self, pred): return all(pred(f) for f in self._files())
    def forall_fi(self, pred): return all(pred(f, i) for f, i in self._indices())
    def exists_fi(self, pred): return any(pred(f, i) for f, i in self._indices())

    def all_gfns(self, lo, n, pred):
        """pred on every gfn of [lo, lo + n) (the caller keeps the range in the machine)."""
        return all(pred(g) for g in range(lo, lo + min(n, self.config.gfns + 1)))

    # -- writes -----------------------------------------------------------------------------------
    # A write is kept by key (`_writes`: field -> key -> value, a scalar's key None) and applied
    # to the pre-state by `post`: the call's writes are then known one by one (`assignments`),
    # and a call that writes one gfn's leaf reads nothing else of the column. Every write still
    # reads its field as a whole (`_touch`): the memo's whole-column answers replace a written
    # field whole, which is right only for a field the call read.
    def _touch(self, field):
        return getattr(self.pre, field)

    def _put(self, field, key, value):
        self._touch(field)
        self._writes.setdefault(field, {})[key] = value

    def set(self, field, key, value):
        if not self._live() or not self._ok(field, key):
            return
        self._put(field, None if self.fields.kind[field] == "scalar" else key, value)

    def set_where(self, field, pred, value_of):
        """Every key of the field's domain with pred(key) gets value_of(key) (pre-state reads)."""
        if not self._live():
            return
        kind = self.fields.kind[field]
        if kind == "index":
            changes = [((f, i), value_of(f, i)) for f, i in self._indices() if pred(f, i)]
        else:
            keys = range(self.pre.nfiles) if kind == "file" else \
                range(self.config.slots) if kind == "slot" else range(self.config.gfns)
            changes = [(k, value_of(k)) for k in keys if pred(k)]
        if not changes:
            self._touch(field)  # read (memo) and written: same on every reading
            return
        for key, value in changes:
            self.set(field, key, value)

    def _index_fields(self):
        return [n for n in self.fields.names if self.fields.kind[n] == "index"]

    def reset_row(self, f):
        """A new file's indices start as initially (they are: nothing writes an uncreated
        file)."""
        for field in self._index_fields():
            self._touch(field)

    def set_row(self, field, f, value):
        """Every index of the file being created (f = nfiles) gets value: what it starts as."""
        if self._live() and 0 <= f < self.config.files:
            for i in range(self.config.pages):
                self._put(field, (f, i), value)

    def assignments(self):
        """The writes as (path, value), a path being (field's position, key...)."""
        position = {name: n for n, name in enumerate(self.fields.names)}
        out = []
        for field, writes in self._writes.items():
            n = position[field]
            for key, value in writes.items():
                path = (n,) if key is None else (n, *key) if isinstance(key, tuple) else (n, key)
                out.append((path, value))
        return tuple(sorted(out))

    def post(self):
        return assign(self.pre, self.assignments(), self.fields.type)


class Direct(Concrete):
    """`Concrete` with the named reads of the profile's own fields done in place, without the
    `read` and domain checks they go through there: a step's time is mostly its reads. The
    same answers from the same fields, so `GmemProfile.view` uses it whenever no extension
    redefines a read (a redefined `read`, `is_gfn` or `gslot` would change what these mean)."""

    def fsize(self, f):
        pre = self.pre
        return pre.fsize[f] if 0 <= f < pre.nfiles else 0

    def fflags(self, f):
        pre = self.pre
        return pre.fflags[f] if 0 <= f < pre.nfiles else 0

    def fd(self, f):
        pre = self.pre
        return pre.fd[f] if 0 <= f < pre.nfiles else 0

    def vmas(self, f):
        pre = self.pre
        return pre.vmas[f] if 0 <= f < pre.nfiles else 0

    def page(self, f, i):
        pre = self.pre
        return pre.page[f][i] if 0 <= f < pre.nfiles and 0 <= i < pre.fsize[f] else 0

    def bind(self, f, i):
        pre = self.pre
        return pre.bind[f][i] if 0 <= f < pre.nfiles and 0 <= i < pre.fsize[f] else 0

    def hpte(self, f, i):
        pre = self.pre
        return pre.hpte[f][i] if 0 <= f < pre.nfiles and 0 <= i < pre.fsize[f] else 0

    def sn(self, x): return self.pre.sn[x] if 0 <= x < self.config.slots else 0
    def sbase(self, x): return self.pre.sbase[x] if 0 <= x < self.config.slots else 0
    def sgmem(self, x): return self.pre.sgmem[x] if 0 <= x < self.config.slots else 0
    def sfile(self, x): return self.pre.sfile[x] if 0 <= x < self.config.slots else 0
    def spgoff(self, x): return self.pre.spgoff[x] if 0 <= x < self.config.slots else 0
    def sonly(self, x): return self.pre.sonly[x] if 0 <= x < self.config.slots else 0
    def attr(self, g): return self.pre.attr[g] if 0 <= g < self.config.gfns else 0
    def gslot(self, g): return self.pre.gslot[g] if 0 <= g < self.config.gfns else 0
    def lkind(self, g): return self.pre.lkind[g] if 0 <= g < self.config.gfns else 0
    def lfile(self, g): return self.pre.lfile[g] if 0 <= g < self.config.gfns else 0
    def lidx(self, g): return self.pre.lidx[g] if 0 <= g < self.config.gfns else 0

    def slot_of(self, g):
        return (self.pre.gslot[g] if 0 <= g < self.config.gfns else 0) - 1

    def index_of(self, g):
        pre = self.pre
        x = (pre.gslot[g] if 0 <= g < self.config.gfns else 0) - 1
        return g - pre.sbase[x] + pre.spgoff[x] if 0 <= x < self.config.slots else g

    def bound_file(self, g):
        pre = self.pre
        x = (pre.gslot[g] if 0 <= g < self.config.gfns else 0) - 1
        sfile = pre.sfile[x] if 0 <= x < self.config.slots else 0  # read as If reads both
        return sfile if x != -1 else 0


# -- symbolic ------------------------------------------------------------------------------------

class Machine:
    """The static part: the VM type and how many slots, gfns and files (all unbounded)."""

    def __init__(self, tag: str = ""):
        self.vm_type = z3.Int(f"vm_type{tag}")
        self.slots = z3.Int(f"slots{tag}")
        self.gfns = z3.Int(f"gfns{tag}")
        self.files = z3.Int(f"files{tag}")

    def axioms(self):
        return [z3.Or(self.vm_type == 0, self.vm_type == 1, self.vm_type == 2), self.slots >= 1,
                self.gfns >= 1, self.files >= 1, self.files < VMFD]


def _sort(fields: Layout, field):
    kind = fields.kind[field]
    return None if kind == "scalar" else (INT, INT) if kind == "index" else (INT,)


class SymbolicState:
    def __init__(self, arrays: dict, fields: Layout = BASE):
        self.arrays, self.fields = arrays, fields

    @classmethod
    def fresh(cls, tag: str, fields: Layout = BASE):
        out = {}
        for f in fields.names:
            sort = _sort(fields, f)
            out[f] = z3.Int(f"{f}{tag}") if sort is None else z3.Array(f"{f}{tag}", *sort, INT)
        return cls(out, fields)

    def same_as(self, other):
        return z3.And(*[self.arrays[f] == other.arrays[f] for f in self.fields.names])


def initial(machine: Machine, fields: Layout = BASE) -> SymbolicState:
    out = {}
    for f in fields.names:
        sort, value = _sort(fields, f), z3.IntVal(fields.initial[f])
        if sort is None:
            out[f] = value
        elif len(sort) == 1:
            out[f] = z3.K(INT, value)
        else:
            a, b = z3.Ints(f"a_{f} b_{f}")
            out[f] = z3.Lambda([a, b], value)
    return SymbolicState(out, fields)


class Symbolic(Vocabulary, SymbolicReading):
    def __init__(self, machine: Machine, state: SymbolicState, transitions=None):
        super().__init__()
        self.machine, self.state, self.transitions = machine, state, transitions or {}
        self.config = None

    @staticmethod
    def bit(value, mask):
        return (value / mask) % 2 == 1

    def vm_type_is(self, t):
        return self.machine.vm_type == t

    def is_gfn(self, g):
        return z3.And(g >= 0, g < self.machine.gfns)

    def is_slot(self, x):
        return z3.And(x >= 0, x < self.machine.slots)

    def exists(self, f):
        return z3.And(f >= 0, f < self.state.arrays["nfiles"])

    def in_file(self, f, i):
        return z3.And(self.exists(f), i >= 0, i < z3.Select(self.state.arrays["fsize"], f))

    def gfn_limit(self):
        return self.machine.gfns

    def can_create(self):
        return self.nfiles() < self.machine.files

    def size_fits(self, size):
        return z3.BoolVal(True)

    def vma_limit(self):
        return z3.IntVal(1 << 30)

    def _guard(self, field, key):
        kind = self.state.fields.kind[field]
        if kind == "file":
            return self.exists(key)
        if kind == "index":
            return self.in_file(*key)
        if kind == "slot":
            return self.is_slot(key)
        return self.is_gfn(key)

    def read(self, field, key=None):
        arr = self.state.arrays[field]
        kind = self.state.fields.kind[field]
        if kind == "scalar":
            return arr
        value = z3.Select(arr, *key) if kind == "index" else z3.Select(arr, key)
        return z3.If(self._guard(field, key), value, 0)

    def vm(self): return self.state.arrays["vm"]
    def nfiles(self): return self.state.arrays["nfiles"]

    # -- quantifiers ------------------------------------------------------------------------------
    def forall_gfn(self, pred):
        return self._quantify("gfn", lambda g: g < self.machine.gfns, pred)

    def exists_gfn(self, pred):
        return self._quantify("gfn", lambda g: g < self.machine.gfns, pred, universal=False)

    def forall_slot(self, pred):
        return self._quantify("slot", lambda x: x < self.machine.slots, pred)

    def exists_slot(self, pred):
        return self._quantify("slot", lambda x: x < self.machine.slots, pred, universal=False)

    def forall_file(self, pred):
        return self._quantify("file", lambda f: f < self.nfiles(), pred)

    def forall_fi(self, pred):
        return self._quantify("fi", lambda f, i: self.in_file(f, i), pred, arity=2)

    def exists_fi(self, pred):
        return self._quantify("fi", lambda f, i: self.in_file(f, i), pred, universal=False,
                              arity=2)

    def all_gfns(self, lo, n, pred):
        return self._quantify("gfn", lambda g: z3.And(g >= lo, g < lo + n), pred)

    def same_state(self, other):
        return self.state.same_as(other.state)


class SymbolicStep(SymbolicSteps, Symbolic):
    def _write_guard(self, field, key):
        """Where a write lands: as `Concrete._ok` (a new file is written at index nfiles)."""
        if self.state.fields.kind[field] == "file":
            return z3.And(key >= 0, key <= self.nfiles())
        return self._guard(field, key)

    def set(self, field, key, value):
        on = self._on()
        arr = self.post[field]
        kind = self.state.fields.kind[field]
        if kind == "scalar":
            self.post[field] = z3.If(on, value, arr)
            return
        on = z3.And(on, self._write_guard(field, key))
        if kind == "index":
            a, b = fresh("a"), fresh("b")
            self.post[field] = z3.Lambda([a, b], z3.If(z3.And(on, a == key[0], b == key[1]), value,
                                                       z3.Select(arr, a, b)))
        else:
            q = fresh("q")
            self.post[field] = z3.Lambda([q], z3.If(z3.And(on, q == key), value, z3.Select(arr, q)))

    def set_where(self, field, pred, value_of):
        on = self._on()
        arr = self.post[field]
        if self.state.fields.kind[field] == "index":
            a, b = fresh("a"), fresh("b")
            hit = z3.And(on, self._guard(field, (a, b)), pred(a, b))
            self.post[field] = z3.Lambda([a, b], z3.If(hit, value_of(a, b), z3.Select(arr, a, b)))
        else:
            q = fresh("q")
            hit = z3.And(on, self._guard(field, q), pred(q))
            self.post[field] = z3.Lambda([q], z3.If(hit, value_of(q), z3.Select(arr, q)))

    def reset_row(self, f):
        fields = self.state.fields
        for field in fields.names:
            if fields.kind[field] == "index":
                self.set_row(field, f, fields.initial[field])

    def set_row(self, field, f, value):
        on = self._on()
        arr = self.post[field]
        a, b = fresh("a"), fresh("b")
        self.post[field] = z3.Lambda([a, b], z3.If(z3.And(on, a == f), value, z3.Select(arr, a, b)))

    def post_state(self) -> SymbolicState:
        return SymbolicState(dict(self.post), self.state.fields)
