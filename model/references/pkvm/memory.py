"""Physical memory, the hyp vmemmap (struct hyp_page) and page contents.

Shaped like arch/arm64/kvm/hyp/include/nvhe/memory.h.

struct hyp_page is packed into one 64-bit int per RAM page:

    bits 15:0    refcount                (u16: hyp pins of a shared page)
    bits 23:16   order                   (page allocator; always 0 here, not modelled)
    bits 27:24   __host_state            host state, stored as-is
    bits 31:28   __hyp_state_comp        hyp state XOR PKVM_PAGE_STATE_VMEMMAP_MASK
    bits 63:32   host_share_guest_count  (u32)

so an all-zero struct reads host OWNED, hyp NOPAGE, unpinned, unshared.
"""

from enum import IntEnum
from typing import NamedTuple, Optional

from .pte import FIELD_GET, FIELD_PREP, GENMASK

PA_PAGES = 1 << 36
IPA_PAGES = 1 << 36
BLOCK_PAGES = 512


class PkvmPageState(IntEnum):
    """enum pkvm_page_state; POISON is only ever inferred from a guest entry."""
    OWNED = 0b00
    SHARED_OWNED = 0b01
    SHARED_BORROWED = 0b10
    NOPAGE = 0b11
    POISON = 0b100


PKVM_PAGE_STATE_VMEMMAP_MASK = 0b11

HYP_PAGE_REFCOUNT = GENMASK(15, 0)
HYP_PAGE_HOST_STATE = GENMASK(27, 24)
HYP_PAGE_HYP_STATE_COMP = GENMASK(31, 28)
HYP_PAGE_HOST_SHARE_GUEST_COUNT = GENMASK(63, 32)
U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF


class Region(IntEnum):
    RAM = 0
    MMIO = 1
    HOLE = 2
    NOMAP = 3  # a memblock region flagged MEMBLOCK_NOMAP: memory, but not allowed memory


def find_mem_range(pfn, nr_ram, nr_mmio, nr_nomap=0):
    """The region of a pfn: RAM [0, ram), MMIO [ram, ram + mmio) (no memblock), a
    MEMBLOCK_NOMAP memblock [ram + mmio, ram + mmio + nomap), hole above (no memblock)."""
    if pfn < nr_ram:
        return Region.RAM
    if pfn < nr_ram + nr_mmio:
        return Region.MMIO
    if pfn < nr_ram + nr_mmio + nr_nomap:
        return Region.NOMAP
    return Region.HOLE


# PkvmPageState of each 4-bit stored value (None: not a state), looked up on every check.
_STATE_OF = tuple(PkvmPageState(v) if v in PkvmPageState._value2member_map_ else None
                  for v in range(16))


def _page_state(value):
    state = _STATE_OF[value]
    if state is None:
        raise ValueError(f"{value} is not a valid PkvmPageState")
    return state


def get_host_state(vmemmap, pfn):
    return _page_state(FIELD_GET(HYP_PAGE_HOST_STATE, vmemmap[pfn]))


def set_host_state(vmemmap, pfn, state):
    vmemmap[pfn] = (vmemmap[pfn] & ~HYP_PAGE_HOST_STATE) | FIELD_PREP(HYP_PAGE_HOST_STATE, state)


def get_hyp_state(vmemmap, pfn):
    comp = FIELD_GET(HYP_PAGE_HYP_STATE_COMP, vmemmap[pfn])
    return _page_state(comp ^ PKVM_PAGE_STATE_VMEMMAP_MASK)


def set_hyp_state(vmemmap, pfn, state):
    comp = state ^ PKVM_PAGE_STATE_VMEMMAP_MASK
    vmemmap[pfn] = (vmemmap[pfn] & ~HYP_PAGE_HYP_STATE_COMP) | FIELD_PREP(HYP_PAGE_HYP_STATE_COMP, comp)


def hyp_page_count(vmemmap, pfn):
    return FIELD_GET(HYP_PAGE_REFCOUNT, vmemmap[pfn])


def hyp_set_page_count(vmemmap, pfn, count):
    vmemmap[pfn] = (vmemmap[pfn] & ~HYP_PAGE_REFCOUNT) | FIELD_PREP(HYP_PAGE_REFCOUNT, count)


def host_share_guest_count(vmemmap, pfn):
    return FIELD_GET(HYP_PAGE_HOST_SHARE_GUEST_COUNT, vmemmap[pfn])


def set_host_share_guest_count(vmemmap, pfn, count):
    vmemmap[pfn] = ((vmemmap[pfn] & ~HYP_PAGE_HOST_SHARE_GUEST_COUNT)
                    | FIELD_PREP(HYP_PAGE_HOST_SHARE_GUEST_COUNT, count))


class HypPage(NamedTuple):
    """A decoded struct hyp_page: the raw packed value, its raw fields and the states they mean."""
    raw: int
    refcount: int
    host_state_raw: int
    hyp_state_comp: int
    host_share_guest_count: int
    host_state: PkvmPageState
    hyp_state: PkvmPageState


def hyp_page(vmemmap, pfn):
    raw = vmemmap[pfn]
    return HypPage(raw, hyp_page_count(vmemmap, pfn), FIELD_GET(HYP_PAGE_HOST_STATE, raw),
                   FIELD_GET(HYP_PAGE_HYP_STATE_COMP, raw), host_share_guest_count(vmemmap, pfn),
                   get_host_state(vmemmap, pfn), get_hyp_state(vmemmap, pfn))


# Page contents, one int per RAM page: SECRET(vm) is CONTENTS_SECRET + vm.
CONTENTS_ZERO = 0
CONTENTS_HOST = 1
CONTENTS_HYP = 2
CONTENTS_PUBLIC = 3
CONTENTS_SECRET = 4
CONTENTS_NAMES = {CONTENTS_ZERO: "ZERO", CONTENTS_HOST: "HOST", CONTENTS_HYP: "HYP",
                  CONTENTS_PUBLIC: "PUBLIC"}


class Contents(NamedTuple):
    """What a page holds: kind is ZERO, HOST, HYP, PUBLIC or SECRET; vm names the secret's guest."""
    kind: str
    vm: Optional[int] = None


def decode_contents(raw):
    if raw >= CONTENTS_SECRET:
        return Contents("SECRET", raw - CONTENTS_SECRET)
    return Contents(CONTENTS_NAMES[raw])
