"""The hypervisor's memcache: pages the host gives a VM for its stage-2 page tables.

Shaped like `struct kvm_hyp_memcache` and `push_hyp_memcache()` / `pop_hyp_memcache()`
(arch/arm64/include/asm/kvm_host.h), `pkvm_refill_memcache()` (nvhe/hyp-main.c) and the
host's `topup_hyp_memcache()` (kvm/mmu.c). The pages are a list linked through their first
word, `head` the address of the newest; they live in the hyp pool's address space, like every
table page here. The kernel keeps one memcache per vCPU; here one per VM (vCPUs are not named).
"""

from errno import ENOMEM

# Pages one guest stage-2 map may take (docs/contract.md: one per map, the model's abstraction
# of the tables a map can need).
MAP_PAGES = 1


class HypPanic(Exception):
    """hyp_panic(): a failure after a call's first write (a WARN_ON or BUG at EL2). It never
    returns to the host; what was written before it stays."""


class KvmHypMemcache:
    """struct kvm_hyp_memcache: the head of a list of free pages, and how many it holds."""

    __slots__ = ("head", "nr_pages")

    def __init__(self, head=0, nr_pages=0):
        self.head = head
        self.nr_pages = nr_pages

    def clone(self):
        return KvmHypMemcache(self.head, self.nr_pages)


def push_hyp_memcache(pool, mc, phys):
    """Link page phys in front of the list: its first word holds the old head."""
    pool.writable(phys)[0] = mc.head
    mc.head = phys
    mc.nr_pages += 1


def pop_hyp_memcache(pool, mc):
    """Unlink the newest page (the caller checks nr_pages first)."""
    phys = mc.head
    mc.head = pool.pages[phys][0]
    mc.nr_pages -= 1
    return phys


def topup_hyp_memcache(pool, mc):
    """The host adds one page (the hypervisor admits it with __pkvm_host_donate_hyp at the
    next refill; the pages are not among the modelled RAM pages)."""
    push_hyp_memcache(pool, mc, pool.hyp_alloc_page())


def pkvm_refill_memcache(pkvm, mc):
    """Before a hypercall that maps into a guest stage-2: the memcache must hold what the map
    may take, else -ENOMEM, before anything is written."""
    return -ENOMEM if pkvm.memcaches and mc.nr_pages < MAP_PAGES else 0


def stage2_map_memcache(pkvm, mc):
    """The map's table pages come out of the memcache, after the call's first write: they go
    to the pool the map allocates from. Short of them, the kernel's WARN_ON(map) panics."""
    if not pkvm.memcaches:
        return
    pool = pkvm.hyp_pool
    if mc.nr_pages < MAP_PAGES:
        raise HypPanic("kvm_pgtable_stage2_map: memcache empty")
    for _ in range(MAP_PAGES):
        pool.hyp_put_page(pop_hyp_memcache(pool, mc))


def reclaim_memcache(pool, mc):
    """At teardown every page left in the memcache goes back to the host."""
    while mc.nr_pages:
        pool.hyp_put_page(pop_hyp_memcache(pool, mc))
