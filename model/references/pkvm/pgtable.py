"""Multi-level page tables: 4 KiB granule, 48-bit input, levels 0..3, 512 entries.

Shaped like arch/arm64/kvm/hyp/pgtable.c. Table pages come from a HypPool,
the hypervisor's own page allocator, whose addresses form their own space:
they are never pfns of the modelled RAM. A table is a list of 512 ints.

Every descriptor store goes through write_pte(), so a test can watch the
order of stores (break-before-make). Cloned pools share table pages until
one side writes (copy-on-write in write_pte()), so clone() is cheap. Replacing a valid entry always breaks it
first: the entry is set to KVM_INVALID_PTE_TYPE_LOCKED (where the kernel would
then invalidate the TLB), and only then is the new entry made.
"""

from .pte import (
    KVM_INVALID_PTE_TYPE_LOCKED, KVM_PGTABLE_LAST_LEVEL, KVM_PTE_ADDR_MASK,
    KVM_PTE_TYPE, KVM_PTE_VALID, PAGE_SIZE, PTRS_PER_TABLE, kvm_granule_shift,
    kvm_granule_size, kvm_init_invalid_leaf, kvm_init_table_pte,
    kvm_init_valid_leaf_pte, kvm_pte_table, kvm_pte_to_phys, kvm_pte_valid,
)

KVM_PGTABLE_IA_BITS = 48
BLOCK_LEVEL = KVM_PGTABLE_LAST_LEVEL - 1
KVM_PTE_LEAF_ATTR_MASK = ~(KVM_PTE_ADDR_MASK | KVM_PTE_TYPE | KVM_PTE_VALID)


class HypPool:
    """The hyp page allocator backing page-table pages (struct hyp_pool).

    `shared` is bookkeeping, not machine state: the table pages whose list this pool
    shares with a clone, copied before the first store (see `writable`)."""

    __slots__ = ("pages", "free_list", "next_page", "shared")

    def __init__(self):
        self.pages = {}
        self.free_list = []
        self.next_page = 1
        self.shared = set()

    def writable(self, phys):
        """The table at phys, made private to this pool first if a clone shares it."""
        if phys in self.shared:
            self.pages[phys] = self.pages[phys][:]
            self.shared.discard(phys)
        return self.pages[phys]

    def hyp_alloc_page(self):
        """A zeroed table page; freed pages are reused last-in first-out."""
        if self.free_list:
            phys = self.free_list.pop()
        else:
            phys = self.next_page << 12
            self.next_page += 1
        self.pages[phys] = [0] * PTRS_PER_TABLE
        self.shared.discard(phys)
        return phys

    def hyp_put_page(self, phys):
        del self.pages[phys]
        self.shared.discard(phys)
        self.free_list.append(phys)

    def clone(self):
        """A copy sharing every table page with this pool until either side writes it."""
        new = HypPool.__new__(HypPool)
        new.pages = dict(self.pages)
        new.shared = set(self.pages)
        self.shared = set(self.pages)
        new.free_list = self.free_list[:]
        new.next_page = self.next_page
        return new

    def identical(self, other):
        """Same table pages with the same contents, same free list, same next page."""
        return (self.pages == other.pages and self.free_list == other.free_list
                and self.next_page == other.next_page)

    def snapshot(self):
        return (tuple(sorted((phys, tuple(t)) for phys, t in self.pages.items())),
                tuple(self.free_list), self.next_page)


class KvmPgtable:
    """struct kvm_pgtable: a root table in a pool."""

    __slots__ = ("pgd", "pool")

    def __init__(self, pool):
        self.pool = pool
        self.pgd = pool.hyp_alloc_page()

    def clone(self, pool):
        """The same tables in a cloned pool."""
        new = KvmPgtable.__new__(KvmPgtable)
        new.pool = pool
        new.pgd = self.pgd
        return new


def write_pte(pool, table_pa, idx, pte):
    """The single store of a descriptor (WRITE_ONCE)."""
    pool.writable(table_pa)[idx] = pte


def kvm_pgtable_idx(addr, level):
    return (addr >> kvm_granule_shift(level)) & (PTRS_PER_TABLE - 1)


def stage2_replace_pte(pgt, table_pa, idx, level, new):
    """Break-before-make: a valid entry is first set LOCKED, its old table freed, then the new one made."""
    pool = pgt.pool
    old = pool.pages[table_pa][idx]
    if kvm_pte_valid(old):
        write_pte(pool, table_pa, idx, kvm_init_invalid_leaf(KVM_INVALID_PTE_TYPE_LOCKED, 0))
        if kvm_pte_table(old, level):
            free_table(pool, kvm_pte_to_phys(old), level + 1)
    write_pte(pool, table_pa, idx, new)


def free_table(pool, table_pa, level):
    """Return a table and every table below it to the pool."""
    if level < KVM_PGTABLE_LAST_LEVEL:
        for pte in pool.pages[table_pa]:
            if kvm_pte_table(pte, level):
                free_table(pool, kvm_pte_to_phys(pte), level + 1)
    pool.hyp_put_page(table_pa)


def stage2_split_block(pgt, table_pa, idx, level):
    """Replace a valid block by a table of next-level leaves mapping the same range.

    The new table is filled while still unlinked, then installed with
    break-before-make, as kvm_pgtable_stage2_split() does.
    """
    pool = pgt.pool
    block = pool.pages[table_pa][idx]
    childp = pool.hyp_alloc_page()
    granule = kvm_granule_size(level + 1)
    phys = kvm_pte_to_phys(block)
    attr = block & KVM_PTE_LEAF_ATTR_MASK
    pool.pages[childp][:] = [kvm_init_valid_leaf_pte(phys + i * granule, attr, level + 1)
                             for i in range(PTRS_PER_TABLE)]
    stage2_replace_pte(pgt, table_pa, idx, level, kvm_init_table_pte(childp))


def walk_to(pgt, addr, level):
    """(table, index) of the entry at `level` covering addr, building the path.

    Zero entries on the way get a fresh table; a valid block on the way is split.
    """
    pool = pgt.pool
    table_pa = pgt.pgd
    for lvl in range(level):
        idx = kvm_pgtable_idx(addr, lvl)
        pte = pool.pages[table_pa][idx]
        if not kvm_pte_table(pte, lvl):
            if pte == 0:
                write_pte(pool, table_pa, idx, kvm_init_table_pte(pool.hyp_alloc_page()))
            elif kvm_pte_valid(pte):
                stage2_split_block(pgt, table_pa, idx, lvl)
            else:
                raise AssertionError("annotated entry above the last level")
        table_pa = kvm_pte_to_phys(pool.pages[table_pa][idx])
    return table_pa, kvm_pgtable_idx(addr, level)


def walk_path(pgt, addr):
    """[(table, index, level)] from the root to where a walk of addr stops."""
    pool = pgt.pool
    table_pa = pgt.pgd
    path = []
    for level in range(KVM_PGTABLE_LAST_LEVEL + 1):
        idx = kvm_pgtable_idx(addr, level)
        path.append((table_pa, idx, level))
        pte = pool.pages[table_pa][idx]
        if not kvm_pte_table(pte, level):
            break
        table_pa = kvm_pte_to_phys(pte)
    return path


def kvm_pgtable_get_leaf(pgt, addr):
    """(pte, level) where a walk of addr stops: a leaf, or an invalid entry.

    Addresses outside the 48-bit input range read as an empty level-0 entry.
    """
    if not 0 <= addr < 1 << KVM_PGTABLE_IA_BITS:
        return 0, 0
    table_pa, idx, level = walk_path(pgt, addr)[-1]
    return pgt.pool.pages[table_pa][idx], level


def kvm_pgtable_walk_leaves(pgt, addr, size):
    """Yield (addr, level, pte) for every entry a walk stops at in [addr, addr + size)."""
    end = addr + size
    while addr < end:
        pte, level = kvm_pgtable_get_leaf(pgt, addr)
        yield addr, level, pte
        granule = kvm_granule_size(level)
        addr = (addr & ~(granule - 1)) + granule


def kvm_pgtable_leaves(pgt):
    """(addr, level, pte) of every non-zero leaf, valid or annotated, in address order."""
    out = []
    if pgt.pgd:
        table_leaves(pgt.pool, pgt.pgd, 0, 0, out)
    return out


def table_leaves(pool, table_pa, level, base, out):
    """Append the leaves under one table; stops scanning once every non-zero entry was seen."""
    shift = kvm_granule_shift(level)
    table = pool.pages[table_pa]
    remaining = PTRS_PER_TABLE - table.count(0)
    idx = 0
    while remaining:
        pte = table[idx]
        if pte:
            remaining -= 1
            addr = base + (idx << shift)
            if level < KVM_PGTABLE_LAST_LEVEL and pte & 3 == 3:  # kvm_pte_table()
                table_leaves(pool, pte & KVM_PTE_ADDR_MASK, level + 1, addr, out)
            else:
                out.append((addr, level, pte))
        idx += 1


def kvm_pgtable_map(pgt, addr, size, phys, attr):
    """Install one leaf: a page (size PAGE_SIZE) or a level-2 block (size 2 MiB).

    A block installed over an existing (empty) table frees that table.
    """
    level = KVM_PGTABLE_LAST_LEVEL if size == PAGE_SIZE else BLOCK_LEVEL
    assert size == kvm_granule_size(level) and not addr % size and not phys % size
    table_pa, idx = walk_to(pgt, addr, level)
    stage2_replace_pte(pgt, table_pa, idx, level, kvm_init_valid_leaf_pte(phys, attr, level))


def kvm_pgtable_stage2_annotate(pgt, addr, size, type_, annotation):
    """Write an invalid annotated entry for each page of the range (force_pte)."""
    new = kvm_init_invalid_leaf(type_, annotation)
    for page in range(addr, addr + size, PAGE_SIZE):
        table_pa, idx = walk_to(pgt, page, KVM_PGTABLE_LAST_LEVEL)
        stage2_replace_pte(pgt, table_pa, idx, KVM_PGTABLE_LAST_LEVEL, new)


def kvm_pgtable_unmap(pgt, addr, size):
    """Clear every entry in the range; split blocks it covers only in part.

    Tables left empty are freed, as the kernel's stage-2 unmap walker does.
    """
    pool = pgt.pool
    end = addr + size
    while addr < end:
        path = walk_path(pgt, addr)
        table_pa, idx, level = path[-1]
        pte = pool.pages[table_pa][idx]
        granule = kvm_granule_size(level)
        base = addr & ~(granule - 1)
        if pte and (base != addr or base + granule > end):
            walk_to(pgt, addr, level + 1)
            continue
        if pte:
            write_pte(pool, table_pa, idx, 0)
            free_empty_tables(pgt, path)
        addr = base + granule


def free_empty_tables(pgt, path):
    """Walk back up a path freeing tables that no longer hold any entry."""
    pool = pgt.pool
    for (parent_pa, parent_idx, _), (table_pa, _, _) in zip(reversed(path[:-1]), reversed(path[1:])):
        if any(pool.pages[table_pa]):
            return
        write_pte(pool, parent_pa, parent_idx, 0)
        pool.hyp_put_page(table_pa)


def kvm_pgtable_destroy(pgt):
    """Free every table, the root included."""
    free_table(pgt.pool, pgt.pgd, 0)
    pgt.pgd = 0
