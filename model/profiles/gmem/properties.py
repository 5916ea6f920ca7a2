"""What must always hold (sheet 9), what must sometimes happen, the graph properties, and the
strengthening invariants the prover needs on top (stated, and proved inductive with the rest).

Step properties see the call's name, its code and the two states, not its arguments: an
argument-dependent statement ("an access whose kind differs from the attribute ...") is proved
as the state invariants that rule the other outcomes out (see `kinds_agree`) plus the shape of
the failing outcomes (`exits_are_outcomes`); the exact exit record is held by conformance.
"""

from __future__ import annotations

from errno import EBADF, EFAULT, EIO, ENOMEM

from model.profiles.gmem.states import (
    ABSENT, DESTROYED, EXIT_BASE, EXIT_MMIO, GUEST, HOST, INIT_SHARED, MMAP, NO_LEAF,
    PRIVATE_ATTR, PRIVATE_LEAF, SHARED_ATTR, SHARED_LEAF, SIGBUS, SIGSEGV, ZERO, memfault_code,
)
from model.properties import GraphProperty, Property, always, always_step, check_then_commit

GUEST_ACCESSES = ("guest_read", "guest_write")
HOST_ACCESSES = ("host_read", "host_write")


def _gmem_leaf(s, g):
    return s.And(s.lkind(g) != NO_LEAF, s.lfile(g) != 0)


def _leaf_page(s, g):
    return s.page(s.lfile(g) - 1, s.lidx(g))


def _from_gmem(s, g):
    """fault_from_gmem() for the leaf's kind on g's slot (arm64: every gmem slot)."""
    x = s.slot_of(g)
    return s.Or(s.lkind(g) == PRIVATE_LEAF, s.sonly(x) == 1, s.And(s.arm64(), s.sgmem(x) == 1))


# -- always (sheet 9) --------------------------------------------------------------------------------

def zero_before_reuse(s):
    """Nothing observes a page that is not uptodate: every guest_memfd leaf and every host PTE
    maps an uptodate page (zeroed when handed out, or written since); so after a punch (pages
    absent) none of them survives."""
    return s.And(
        s.forall_gfn(lambda g: s.Implies(_gmem_leaf(s, g), _leaf_page(s, g) >= ZERO)),
        s.forall_fi(lambda f, i: s.Implies(s.hpte(f, i) == 1, s.page(f, i) >= ZERO)))


def no_stale_leaf(s):
    """A leaf into guest_memfd maps the page now at its gfn's index in the slot's current file,
    and that index is bound to that slot."""
    def ok(g):
        x = s.slot_of(g)
        return s.Implies(_gmem_leaf(s, g), s.And(
            s.gslot(g) != 0, s.sfile(x) == s.lfile(g), s.lidx(g) == s.index_of(g),
            s.bind(s.lfile(g) - 1, s.lidx(g)) == x + 1))
    return s.forall_gfn(ok)


def backing_or_exit(s):
    """Missing backing is never mapped silently: every leaf lies in a slot, and it maps
    guest_memfd exactly when the fault takes guest_memfd (private, GMEM_ONLY, arm64 gmem slot);
    such a leaf has a file (no_stale_leaf), so without one the access could only exit."""
    return s.forall_gfn(lambda g: s.Implies(s.lkind(g) != NO_LEAF, s.And(
        s.gslot(g) != 0, (s.lfile(g) != 0) == _from_gmem(s, g))))


def host_never_private(s):
    """No host PTE maps a guest_memfd page bound to a PRIVATE gfn (the host writes only through
    a PTE, so it never writes one either)."""
    def ok(g):
        f = s.bound_file(g) - 1
        return s.Implies(s.And(s.bound_file(g) != 0, s.hpte(f, s.index_of(g)) == 1),
                         s.attr(g) == SHARED_ATTR)
    return s.forall_gfn(ok)


def binding_within_slot(s):
    """A binding names a live slot that has this file and covers the index; a slot with a file
    is bound over exactly its range and its file is live: bindings never outlive slot or file."""
    def entry(f, i):
        x = s.bind(f, i) - 1
        return s.Implies(s.bind(f, i) != 0, s.And(
            s.is_slot(x), s.sn(x) != 0, s.sfile(x) == f + 1, s.spgoff(x) <= i,
            i < s.spgoff(x) + s.sn(x)))

    def slot(x):
        f = s.sfile(x) - 1
        return s.Implies(s.sfile(x) != 0, s.And(
            s.live(f), s.sgmem(x) == 1, s.spgoff(x) >= 0, s.spgoff(x) + s.sn(x) <= s.fsize(f)))

    def covered(f, i):
        return s.forall_slot(lambda x: s.Implies(
            s.And(s.sfile(x) == f + 1, s.spgoff(x) <= i, i < s.spgoff(x) + s.sn(x)),
            s.bind(f, i) == x + 1))
    return s.And(s.forall_fi(entry), s.forall_slot(slot), s.forall_fi(covered))


def kinds_agree(s):
    """A leaf's kind is its gfn's attribute (so an access whose kind differs from the attribute
    can never have installed a leaf: it exits), and private leaves map guest_memfd. Leaves are
    4 KiB only: no leaf spans gfns of different attributes or slots."""
    return s.forall_gfn(lambda g: s.And(
        s.Implies(s.lkind(g) == PRIVATE_LEAF, s.And(s.attr(g) == PRIVATE_ATTR, s.lfile(g) != 0)),
        s.Implies(s.lkind(g) == SHARED_LEAF, s.attr(g) == SHARED_ATTR)))


def vm_outlives_files(s):
    """No VM is destroyed while a guest_memfd of it, or a VMA of one, lives."""
    return s.Implies(s.vm() == DESTROYED, s.forall_file(lambda f: s.released(f)))


def punch_leaves_no_mapping(call, errno, pre, post):
    """After PUNCH_HOLE no host PTE maps a punched page and no leaf remains on a gfn bound to
    one (no mirrored TDP: shared leaves of userspace pages go too). Step properties do not see
    the arguments: a punched page is one the punch freed."""
    def ok(f, i):
        freed = pre.page(f, i) != post.page(f, i)
        return pre.Then(freed, lambda: pre.And(
            post.hpte(f, i) == 0, post.page(f, i) == ABSENT,
            post.forall_gfn(lambda g: pre.Implies(
                pre.And(pre.bound_file(g) == f + 1, pre.index_of(g) == i),
                post.lkind(g) == NO_LEAF))))
    if call != "punch":  # the call's name is no state value: a Python test is fine
        return pre.And()
    return pre.Then(errno == 0, lambda: post.forall_fi(ok))


_RUN_EXITS = (-EBADF, EXIT_MMIO) + tuple(memfault_code(p, e) for p in (False, True)
                                         for e in (EFAULT, EIO, ENOMEM))


def exits_are_outcomes(call, errno, pre, post):
    """A failing guest access ends in a KVM_RUN exit (memory fault or MMIO) or EBADF; a failing
    KVM_PRE_FAULT_MEMORY only in an errno; a failing host access in EBADF or a signal."""
    if call in GUEST_ACCESSES:
        return pre.Or(errno == 0, *[errno == c for c in _RUN_EXITS])
    if call in HOST_ACCESSES:
        return pre.Or(errno == 0, errno == -EBADF, errno == SIGBUS, errno == SIGSEGV)
    return pre.Or(errno == 0, errno > -EXIT_BASE)


ALWAYS = (always(zero_before_reuse), always(no_stale_leaf), always(backing_or_exit),
          always(host_never_private), always(binding_within_slot), always(kinds_agree),
          always(vm_outlives_files), always_step(punch_leaves_no_mapping),
          always_step(exits_are_outcomes), always_step(check_then_commit))


# -- strengthening (prover) ----------------------------------------------------------------------

def _bool(s, v):
    return s.Or(v == 0, v == 1)


def types_ok(s):
    """Every field holds a value of its kind; the VM type's guards show in the state: an
    INIT_SHARED file only where the VM supports it, PRIVATE only where it has private memory."""
    return s.And(
        s.vm() >= 0, s.vm() <= DESTROYED, s.nfiles() >= 0,
        s.forall_file(lambda f: s.And(
            s.fsize(f) >= 1, s.fflags(f) >= 0, s.fflags(f) <= MMAP | INIT_SHARED, _bool(s, s.fd(f)),
            s.vmas(f) >= 0, s.Implies(s.has_flag(f, INIT_SHARED), s.supports_init_shared()))),
        s.forall_fi(lambda f, i: s.And(
            s.page(f, i) >= ABSENT, s.page(f, i) <= HOST, _bool(s, s.hpte(f, i)), s.bind(f, i) >= 0,
            s.Implies(s.hpte(f, i) == 1, s.And(s.vmas(f) > 0, s.has_flag(f, INIT_SHARED))),
            s.Implies(s.released(f), s.And(s.page(f, i) == ABSENT, s.bind(f, i) == 0)))))


def slots_ok(s):
    """Slot fields are consistent: an absent slot is all zero, only guest_memfd slots have a file
    or GMEM_ONLY, GMEM_ONLY is the file's MMAP (arm64: every gmem slot), slots lie in the gfns."""
    def ok(x):
        f = s.sfile(x) - 1
        return s.And(
            s.sn(x) >= 0, _bool(s, s.sgmem(x)), _bool(s, s.sonly(x)), s.sfile(x) >= 0,
            s.spgoff(x) >= 0, s.sbase(x) >= 0, s.sbase(x) + s.sn(x) <= s.gfn_limit(),
            s.Implies(s.sn(x) == 0, s.And(s.sbase(x) == 0, s.sgmem(x) == 0)),
            s.Implies(s.sgmem(x) == 0, s.And(s.sfile(x) == 0, s.spgoff(x) == 0, s.sonly(x) == 0)),
            s.Implies(s.sfile(x) != 0, s.And(s.exists(f),
                                             (s.sonly(x) == 1) == s.has_flag(f, MMAP))),
            s.Implies(s.And(s.arm64(), s.sgmem(x) == 1), s.sonly(x) == 1))
    return s.forall_slot(ok)


def gslot_ok(s):
    """gslot is the slot covering each gfn (so slots never overlap)."""
    def cover(g):
        x = s.slot_of(g)
        return s.And(s.gslot(g) >= 0, s.Implies(s.gslot(g) != 0, s.And(
            s.is_slot(x), s.sn(x) != 0, s.sbase(x) <= g, g < s.sbase(x) + s.sn(x))))

    def unique(g):
        return s.forall_slot(lambda x: s.Implies(
            s.And(s.sn(x) != 0, s.sbase(x) <= g, g < s.sbase(x) + s.sn(x)), s.gslot(g) == x + 1))
    return s.And(s.forall_gfn(cover), s.forall_gfn(unique))


def gfns_ok(s):
    """Attributes and leaves hold values of their kind; an empty leaf is all zero; a destroyed
    VM has no slot, attribute or leaf."""
    gone = s.vm() == DESTROYED
    return s.And(
        s.forall_gfn(lambda g: s.And(
            _bool(s, s.attr(g)), s.lkind(g) >= NO_LEAF, s.lkind(g) <= PRIVATE_LEAF,
            s.lfile(g) >= 0, s.Implies(s.attr(g) == PRIVATE_ATTR, s.has_private()),
            s.Implies(s.lkind(g) == NO_LEAF, s.And(s.lfile(g) == 0, s.lidx(g) == 0)),
            s.Implies(gone, s.And(s.attr(g) == 0, s.gslot(g) == 0, s.lkind(g) == NO_LEAF)))),
        s.forall_slot(lambda x: s.Implies(gone, s.sn(x) == 0)))


STRENGTHENING = tuple(Property(fn.__name__, "always", (fn.__doc__ or "").strip(), state=fn)
                      for fn in (types_ok, slots_ok, gslot_ok, gfns_ok))


def field_bounds(field) -> Property:
    """An extension's field (`ext.field`) stays within its values, at every key of its kind."""
    def ok(s, *key):
        value = s.read(field.name, key if len(key) == 2 else key[0] if key else None)
        return s.And(value >= field.low, value <= field.high)
    quantify = {"scalar": lambda s, p: p(), "file": lambda s, p: s.forall_file(p),
                "index": lambda s, p: s.forall_fi(p), "slot": lambda s, p: s.forall_slot(p),
                "gfn": lambda s, p: s.forall_gfn(p)}[field.kind]
    return Property(f"{field.name}_in_values", "always",
                    f"the extension's field {field.name} stays within {field.low}..{field.high}",
                    state=lambda s: quantify(s, lambda *key: ok(s, *key)))


# -- sometimes ---------------------------------------------------------------------------------

def _exit(name, code, doc):
    return Property(name, "sometimes", doc,
                    step=lambda call, errno, pre, post: pre.And(call in GUEST_ACCESSES,
                                                                errno == code))


def _only(*names):
    """A step predicate evaluated only on calls of these transitions (False on the others)."""
    def wrap(fn):
        def pred(call, errno, pre, post):
            return fn(call, errno, pre, post) if call in names else pre.Or()
        pred.__name__, pred.__doc__ = fn.__name__, fn.__doc__
        return pred
    return wrap


@_only(*GUEST_ACCESSES)
def _refault_zero(call, errno, pre, post):
    return pre.And(call in GUEST_ACCESSES, errno == 0, post.exists_gfn(lambda g: pre.And(
        pre.lkind(g) == NO_LEAF, post.lkind(g) == PRIVATE_LEAF,
        pre.page(post.lfile(g) - 1, post.lidx(g)) == ABSENT, _leaf_page(post, g) >= ZERO)))


@_only("set_attributes")
def _converted(call, errno, pre, post):
    return pre.And(call == "set_attributes", errno == 0, post.exists_gfn(lambda g: pre.And(
        pre.lkind(g) == SHARED_LEAF, pre.lfile(g) != 0, post.attr(g) == PRIVATE_ATTR,
        post.lkind(g) == NO_LEAF)))


@_only("punch")
def _punch_private(call, errno, pre, post):
    return pre.And(call == "punch", errno == 0, post.exists_gfn(lambda g: pre.And(
        pre.lkind(g) == PRIVATE_LEAF, post.lkind(g) == NO_LEAF)))


@_only(*GUEST_ACCESSES)
def _release_efault(call, errno, pre, post):
    """Every attribute shared, so a shared EFAULT exit cannot be a kind mismatch nor a missing
    slot (MMIO) nor a non-gmem slot (userspace page): only a GMEM_ONLY slot whose file is gone."""
    return pre.And(call in GUEST_ACCESSES, errno == memfault_code(False, EFAULT),
                   pre.forall_gfn(lambda g: pre.attr(g) == SHARED_ATTR),
                   pre.exists_slot(lambda x: pre.And(pre.sgmem(x) == 1, pre.sfile(x) == 0,
                                                     pre.sn(x) != 0)))


def _two_slots(s):
    return s.exists_slot(lambda x: s.exists_slot(lambda y: s.And(
        x != y, s.sfile(x) != 0, s.sfile(x) == s.sfile(y))))


def _private_written(s):
    return s.exists_gfn(lambda g: s.And(s.lkind(g) == PRIVATE_LEAF, _leaf_page(s, g) == GUEST))


def host_write_seen(s):
    """A host write seen through a GMEM_ONLY slot: a guest leaf maps a page the host wrote."""
    return s.exists_gfn(lambda g: s.And(s.lkind(g) == SHARED_LEAF, s.lfile(g) != 0,
                                        _leaf_page(s, g) == HOST))


SOMETIMES = (
    _exit("exit_memfault_shared", memfault_code(False, EFAULT),
          "a shared access ends in a memory fault exit (EFAULT, flags 0)"),
    _exit("exit_memfault_private", memfault_code(True, EFAULT),
          "a private access ends in a memory fault exit (EFAULT, flags PRIVATE)"),
    _exit("exit_mmio", EXIT_MMIO, "a shared access without a slot ends in an MMIO exit"),
    Property("private_written", "sometimes", "a private page holds what the guest wrote",
             state=_private_written),
    Property("converted_to_private", "sometimes",
             "a gfn mapped shared from guest_memfd is converted to private (its leaf zapped)",
             step=_converted),
    Property("punched_private", "sometimes", "a punch zaps a private leaf", step=_punch_private),
    Property("refaulted_zero", "sometimes",
             "a private access re-faults an absent (punched) page and gets it zeroed",
             step=_refault_zero),
    Property("release_then_efault", "sometimes",
             "a guest_memfd released under a bound GMEM_ONLY slot, then an EFAULT exit",
             step=_release_efault),
    Property("one_file_two_slots", "sometimes", "one file backs two slots", state=_two_slots),
)
HOST_WRITE_SEEN = Property("host_write_seen", "sometimes", host_write_seen.__doc__.strip(),
                           state=host_write_seen)


def _destroyed(config, state) -> bool:
    return state.vm == DESTROYED


GRAPH = (
    GraphProperty("graph_can_destroy", "return",
                  "from every reachable state the VMM can tear everything down (VM destroyed)",
                  _destroyed),
    GraphProperty("graph_no_dead_end", "progress",
                  "every reachable state but the destroyed VM's has a successor", _destroyed),
)
