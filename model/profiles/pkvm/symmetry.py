"""Symmetry of the pKVM protocol: pages of a region, VMs of a kind and gfns are interchangeable.

The explorer asks the profile for this group (`PkvmProfile.symmetry`) and explores one state per
orbit; `Symmetry` says why that is sound here, and the explorer checks it as it goes.
"""

from __future__ import annotations

import itertools
from operator import itemgetter

from model.profiles.pkvm.states import (
    BLOCK_PAGES, PAGE_FIELDS, POISON, Config, Contents, Leaf, Mapping, Owner, State,
)
from model.renaming import EQ, LT, NE, Cell, Image


def _gather(order: tuple):
    """column -> tuple(column[i] for i in order), as one C call where itemgetter allows."""
    if len(order) > 1:
        return itemgetter(*order)
    return lambda column: tuple(column[i] for i in order)


class Symmetry:
    """Canonical representatives of states under renamings that no transition can tell apart.

    The group. Three kinds of renaming act on a state together:
    - pages: a permutation of the pfns of each memory region (RAM, MMIO, no-map) that maps every range a
      call can name to another such range. Single-page calls see pages one at a time, so any
      permutation of a region qualifies when every tried `nr` is 1 or covers the whole region;
      otherwise only the reversal of the region (it maps intervals to intervals) does.
    - guests: a permutation of the VM handles that keeps each handle's kind (protected or not).
    - gfns: a permutation of the tried gfns `[0, gfns)`, independently per VM. No transition
      compares a gfn with anything but another gfn of the same VM, except block alignment, which
      only matters when `BLOCK_PAGES` is a tried `nr`: then gfns are not renamed.
    The renaming of a state moves every per-page field to the new pfn, every guest's lifecycle
    and stage-2 to the new handle, and renames the identifiers stored *inside* the state: the
    host stage-2 annotation of a guest-owned page (`pte_handle`, `pte_gfn`, only when
    `pte_owner` is GUEST: otherwise they are not names), each leaf's gfn and pfn (a POISON leaf
    maps no pfn), each of the host's mapping records' gfn and pfn, and SECRET contents, which
    name the VM whose secret they are. This is a
    bijection on states (its inverse is the renaming by the inverse permutations).

    Why exploring representatives is sound. Every transition body reads and writes pages, VMs
    and gfns only through the names it is given or finds in the state, applies the same checks
    to every page of a region and every VM of a kind, and tries every argument of the renamed
    domains (`calls` is closed under the renaming). Hence step(g.s, g.c) = g.step(s, c) for every
    renaming g: the reachable set is a union of orbits, and a BFS that replaces every successor
    by its representative visits one state per reachable orbit, at the same depth as the full
    BFS. Every property is stated with quantifiers over pages, VMs and entries (never a fixed
    pfn, handle or gfn), so it holds on a state iff it holds on its representative; the graph
    properties' targets (the host owns every RAM page; every VM is torn down) are unions of
    orbits too. Traces are replayed on concrete states (`Exploration.trace`), so what the user
    sees is a real run of the model.

    The representative is the least renaming under tuple order, taken over all page and guest
    permutations; gfns are not enumerated but sorted by a signature that names no gfn (the leaf
    at that gfn with its pfn already renamed, the host's record there with its pfn renamed, and
    the renamed pfns whose annotation names it).
    Two gfns with the same signature hold the same leaf and no annotation names either, so
    swapping them fixes the state: any order among them gives the same image. The
    representative therefore depends only on the orbit.

    States a mutant can build with a multi-page leaf have no well-defined page or gfn renaming
    (a renamed contiguous range need not be contiguous); they are kept as they are (their own
    representative). That is always sound: a representative only has to lie in the orbit.
    """

    def __init__(self, config: Config, enabled: bool = True):
        self.config = config
        self.n = config.pages
        self.guests = len(config.guests)
        self.gfns = config.gfns
        mmio_end = config.ram + config.mmio
        regions = [(0, config.ram), (config.ram, mmio_end), (mmio_end, config.pages)]
        per_region = [self._region_perms(lo, hi) if enabled else [tuple(range(lo, hi))]
                      for lo, hi in regions]
        self.page_perms = [self._with_inverse(sum(parts, ())) for parts in
                           itertools.product(*per_region)]
        # a column renamed by one C call: precomputed per inverse page permutation
        self._getters = {pinv: _gather(pinv) for _, pinv in self.page_perms}
        kinds: dict[bool, list[int]] = {}
        for vm, protected in enumerate(config.guests):
            kinds.setdefault(protected, []).append(vm)
        self.guest_perms = []
        if enabled:
            choices = [list(itertools.permutations(vms)) for vms in kinds.values()]
            for images in itertools.product(*choices):
                sigma = [0] * self.guests
                for vms, image in zip(kinds.values(), images):
                    for vm, new in zip(vms, image):
                        sigma[vm] = new
                self.guest_perms.append(self._with_inverse(tuple(sigma)))
        else:
            self.guest_perms = [self._with_inverse(tuple(range(self.guests)))]
        self.gfn_symmetry = enabled and config.gfns > 1 and BLOCK_PAGES not in config.nrs
        self._identity = tuple(range(self.gfns))
        self.trivial = (len(self.page_perms) == 1 and len(self.guest_perms) == 1
                        and not self.gfn_symmetry)
        gfn_perms = itertools.permutations(range(self.gfns)) if self.gfn_symmetry else [None]
        self.gfn_perm_count = len(list(gfn_perms))
        self.order = (len(self.page_perms) * len(self.guest_perms)
                      * self.gfn_perm_count ** self.guests)

    def _region_perms(self, lo: int, hi: int) -> list[tuple]:
        size = hi - lo
        identity = tuple(range(lo, hi))
        if size <= 1 or 0 in self.config.nrs:  # nr 0 fails on a region's first pfn only
            return [identity]
        if all(nr == 1 or nr >= size for nr in self.config.nrs):
            return list(itertools.permutations(identity))
        return [identity, identity[::-1]]

    @staticmethod
    def _with_inverse(perm: tuple) -> tuple[tuple, tuple]:
        inverse = [0] * len(perm)
        for old, new in enumerate(perm):
            inverse[new] = old
        return perm, tuple(inverse)

    def generators(self) -> list[tuple]:
        """Renamings that generate the group (page and guest permutations, gfn transpositions),
        as (pi, pinv, sigma, sinv, taus) arguments of `image`."""
        ident_p = self.page_perms[0]
        ident_g = self.guest_perms[0]
        ident_t = [list(range(self.gfns)) for _ in range(self.guests)]
        out = []
        for pi in self.page_perms[1:]:
            out.append((*pi, *ident_g, None))
        for sigma in self.guest_perms[1:]:
            out.append((*ident_p, *sigma, None))
        if self.gfn_symmetry:
            for vm in range(self.guests):
                for g in range(self.gfns - 1):
                    taus = [list(t) for t in ident_t]
                    taus[vm][g], taus[vm][g + 1] = g + 1, g
                    out.append((*ident_p, *ident_g, taus))
        return out

    def describe(self) -> dict:
        return {
            "pages": len(self.page_perms) > 1,
            "guests": len(self.guest_perms) > 1,
            "gfns": self.gfn_symmetry,
            "group_order": self.order,
        }

    def regular(self, state: State) -> bool:
        """Whether the page and gfn renamings are defined on the state (no multi-page leaf)."""
        for leaves in state.s2:
            for leaf in leaves:
                if leaf.span != 1 or leaf.size != 1 or (
                        self.gfn_symmetry and leaf.gfn >= self.gfns):
                    return False
        for maps in state.maps:
            for m in maps:
                if m.nr != 1 or (self.gfn_symmetry and m.gfn >= self.gfns):
                    return False
        return True

    # -- the renaming ----------------------------------------------------------------------------
    def _gfn_order(self, state: State, pi: tuple) -> list:
        """Per VM, the gfn renaming that sorts gfns by their (gfn-free) signature under pi (the
        identity for a VM with no leaf, record or annotation: all its signatures are equal)."""
        taus = []
        n, gfns = self.n, self.gfns
        refs: dict[tuple, list] = {}
        owner = state.pte_owner
        if Owner.GUEST in owner:
            for p in range(n):
                if owner[p] == Owner.GUEST:
                    refs.setdefault((state.pte_handle[p], state.pte_gfn[p]), []).append(pi[p])
        named = {vm for vm, _ in refs}
        for vm, leaves in enumerate(state.s2):
            if not leaves and not state.maps[vm] and vm not in named:
                taus.append(self._identity)
                continue
            at = {}
            for leaf in leaves:
                pfn = pi[leaf.pfn] if leaf.state != POISON and leaf.pfn < n else leaf.pfn
                at[leaf.gfn] = (leaf.span, leaf.size, leaf.state, leaf.prot, pfn)
            rec = {m.gfn: pi[m.pfn] if m.pfn < n else m.pfn for m in state.maps[vm]}
            sigs = [(at.get(g, ()), rec.get(g, -1), tuple(sorted(refs.get((vm, g), ()))))
                    for g in range(gfns)]
            order = sorted(range(gfns), key=sigs.__getitem__)
            tau = [0] * gfns
            for new, old in enumerate(order):
                tau[old] = new
            taus.append(tau)
        return taus

    def image(self, state: State, pi: tuple, pinv: tuple, sigma: tuple, sinv: tuple,
              taus: list | None) -> State:
        """The state renamed: page p becomes pi[p], VM v becomes sigma[v], gfn g of v taus[v][g]."""
        return self._assemble(state, self._pages(state, pinv, sigma, taus),
                              self._vms(state, pi, taus), sinv)

    def _pages(self, state: State, pinv: tuple, sigma: tuple, taus: list | None) -> list:
        """The per-page columns renamed (the first fields of the image, compared first)."""
        get = self._getters[pinv]
        fields = [get(column) for column in state[:len(PAGE_FIELDS)]]
        n, guests, gfns = self.n, self.guests, self.gfns
        owner, contents = fields[7], fields[11]
        if Owner.GUEST in owner:
            handle, gfn = list(fields[8]), list(fields[9])
            for q in range(n):
                if owner[q] == Owner.GUEST and 0 <= handle[q] < guests:
                    h = handle[q]
                    if taus is not None and 0 <= gfn[q] < gfns:
                        gfn[q] = taus[h][gfn[q]]
                    handle[q] = sigma[h]
            fields[8], fields[9] = tuple(handle), tuple(gfn)
        if max(contents, default=0) >= Contents.SECRET_BASE:
            fields[11] = tuple(
                Contents.SECRET_BASE + sigma[c - Contents.SECRET_BASE]
                if c >= Contents.SECRET_BASE and c - Contents.SECRET_BASE < guests else c
                for c in contents)
        return fields

    def _vms(self, state: State, pi: tuple, taus: list | None) -> tuple[list, list]:
        """Per VM (old handle), its leaves and the host's records of it with pfns and gfns
        renamed: the same for every guest permutation, which only reorders them."""
        n, gfns = self.n, self.gfns
        s2, maps = [], []
        for v in range(self.guests):
            tau = taus[v] if taus is not None else None
            s2.append(tuple(sorted(
                Leaf(tau[leaf.gfn] if tau is not None and leaf.gfn < gfns else leaf.gfn,
                     leaf.span, leaf.size, leaf.state, leaf.prot,
                     pi[leaf.pfn] if leaf.state != POISON and leaf.pfn < n else leaf.pfn)
                for leaf in state.s2[v])))
            maps.append(tuple(sorted(
                Mapping(tau[m.gfn] if tau is not None and m.gfn < gfns else m.gfn, m.nr,
                        pi[m.pfn] if m.pfn < n else m.pfn)
                for m in state.maps[v])))
        return s2, maps

    def _assemble(self, state: State, fields: list, vms: tuple[list, list], sinv: tuple) -> State:
        """The image from its renamed page columns and VMs, VM w being the old sinv[w]."""
        s2, maps = vms
        order = range(self.guests)
        return State(*fields, life=tuple(state.life[sinv[w]] for w in order),
                     s2=tuple(s2[sinv[w]] for w in order),
                     refs=tuple(state.refs[sinv[w]] for w in order),
                     mc=tuple(state.mc[sinv[w]] for w in order),
                     maps=tuple(maps[sinv[w]] for w in order))

    def canonical(self, state: State) -> State:
        """The orbit's representative (the state itself when no renaming applies). Images are
        compared on their page columns first: one whose columns are larger than the best's so
        far cannot be the least, and its VMs' fields are never built."""
        if self.trivial or not self.regular(state):
            return state
        best = best_pages = None
        for pi, pinv in self.page_perms:
            taus = self._gfn_order(state, pi) if self.gfn_symmetry else None
            vms = None
            for sigma, sinv in self.guest_perms:
                pages = self._pages(state, pinv, sigma, taus)
                if best_pages is not None and pages > best_pages:
                    continue
                if vms is None:
                    vms = self._vms(state, pi, taus)
                img = self._assemble(state, pages, vms, sinv)
                if best is None or img < best:
                    best, best_pages = img, pages
        return best

    # -- the renaming as data (`model.renaming`), for a compiled search --------------------------
    def elements(self) -> list[tuple]:
        """Every renaming but the identity, as `image`'s arguments (gfn renamings enumerated)."""
        return list(self._group())[1:]

    def _group(self):
        """Every renaming, the identity first, as `image`'s arguments."""
        gfn_perms = (list(itertools.permutations(range(self.gfns))) if self.gfn_symmetry
                     else [None])
        for pi in self.page_perms:
            for sigma in self.guest_perms:
                for taus in itertools.product(gfn_perms, repeat=self.guests):
                    yield (*pi, *sigma, None if taus[0] is None else list(taus))

    def renaming(self, at: State, pi: tuple, pinv: tuple, sigma: tuple, sinv: tuple,
                 taus: list | None) -> Image:
        """`image` on the cells of one shape (`at`: each integer the number of its cell),
        applied only to regular states (`canonical` keeps the others as they are)."""
        n, guests, gfns = self.n, self.guests, self.gfns
        names = {"pte_handle": tuple(sigma), "contents": tuple(
            Contents.SECRET_BASE + sigma[v] for v in range(guests))}
        fields = []
        for name, column in zip(PAGE_FIELDS, at[:len(PAGE_FIELDS)]):
            cells = []
            for q in range(n):
                p = pinv[q]
                guest = ((at.pte_owner[p], EQ, Owner.GUEST),)
                if name == "pte_handle":
                    cells.append(Cell(column[p], names["pte_handle"], when=guest))
                elif name == "pte_gfn" and taus is not None:
                    cells.append(Cell(column[p], tuple(map(tuple, taus)),
                                      key=at.pte_handle[p], when=guest))
                elif name == "contents":
                    cells.append(Cell(column[p], names["contents"], Contents.SECRET_BASE))
                else:
                    cells.append(Cell(column[p]))
            fields.append(tuple(cells))
        s2, maps, requires = [], [], []
        for v in range(guests):
            tau = () if taus is None else tuple(taus[v])
            s2.append(tuple(
                Leaf(Cell(leaf.gfn, tau), Cell(leaf.span), Cell(leaf.size), Cell(leaf.state),
                     Cell(leaf.prot), Cell(leaf.pfn, tuple(pi), when=((leaf.state, NE, POISON),)))
                for leaf in at.s2[v]))
            maps.append(tuple(Mapping(Cell(m.gfn, tau), Cell(m.nr), Cell(m.pfn, tuple(pi)))
                              for m in at.maps[v]))
            for leaf in at.s2[v]:
                requires += [(leaf.span, EQ, 1), (leaf.size, EQ, 1)]
                if self.gfn_symmetry:
                    requires.append((leaf.gfn, LT, gfns))
            for m in at.maps[v]:
                requires.append((m.nr, EQ, 1))
                if self.gfn_symmetry:
                    requires.append((m.gfn, LT, gfns))
        order = range(guests)
        state = State(*fields, life=tuple(Cell(at.life[sinv[w]]) for w in order),
                      s2=tuple(s2[sinv[w]] for w in order),
                      refs=tuple(Cell(at.refs[sinv[w]]) for w in order),
                      mc=tuple(Cell(at.mc[sinv[w]]) for w in order),
                      maps=tuple(maps[sinv[w]] for w in order))
        field = State._fields.index
        return Image(state, sorted=tuple((field(f), w) for f in ("s2", "maps") for w in order),
                     requires=tuple(requires))

    def orbit_size(self, state: State) -> int:
        """How many distinct states the group maps this one to (1 for irregular states)."""
        if self.trivial or not self.regular(state):
            return 1
        return len({self.image(state, *element) for element in self._group()})
