"""No-map memory (MEMBLOCK_NOMAP) and nr_pages == 0, as Linux 7.1 checks them
(docs/contract.md, "nr_pages == 0" and "No-map memory"): the model and the reference alike."""

from __future__ import annotations

from errno import EINVAL, EPERM

import pytest

from model.profiles.pkvm.abstraction import abstract, invoke, reference_for
from model.profiles.pkvm.states import Config, Region, initial_state
from tests.pkvm.helpers import PKVM, loaded, mutant

# RAM 0..3, MMIO 4, no-map 5..6, hole 7.
CONFIG = Config(ram=4, mmio=1, nomap=2, guests=(True, False), gfns=2, nrs=(0, 1, 2))
NOMAP = CONFIG.ram + CONFIG.mmio


def test_the_machine_has_four_regions():
    assert [CONFIG.region(p) for p in range(8)] == [Region.RAM] * 4 + [Region.MMIO] + \
        [Region.NOMAP] * 2 + [Region.HOLE]
    hv = reference_for(CONFIG)
    assert [hv.region(p).name for p in range(8)] == [CONFIG.region(p).name for p in range(8)]


CASES = [
    # (call, args, errno, label of the failing check)
    ("host_share_hyp", (NOMAP,), -EPERM, "range_nomap"),
    ("host_share_hyp", (NOMAP + 1,), -EPERM, "range_nomap"),
    ("host_donate_hyp", (NOMAP, 2), -EPERM, "range_nomap"),
    ("host_donate_hyp", (NOMAP + 1, 2), -EINVAL, "range_region"),  # no-map into the hole
    ("host_share_ffa", (NOMAP, 1), -EPERM, "range_nomap"),
    ("host_donate_guest", (NOMAP, 0, 0), -EPERM, "range_nomap"),
    ("host_share_guest", (NOMAP, 0, 1, 1, 6), -EPERM, "range_nomap"),
    ("host_write", (NOMAP,), -EPERM, "range_nomap"),
    ("host_share_hyp", (CONFIG.ram,), -EPERM, "range_memory"),  # MMIO
    # nr 0: passes pfn_range_is_valid(); end - 1 is the page before pfn.
    ("host_share_ffa", (0, 0), -EINVAL, "range_region"),  # end - 1 wraps
    ("host_share_ffa", (CONFIG.ram, 0), -EINVAL, "range_region"),  # first MMIO pfn
    ("host_share_ffa", (NOMAP, 0), -EINVAL, "range_region"),  # first no-map pfn
    ("host_share_ffa", (NOMAP + 1, 0), -EPERM, "range_nomap"),
    ("host_donate_hyp", (CONFIG.pages, 0), -EINVAL, "range_region"),  # first hole pfn
    ("host_donate_hyp", (CONFIG.pages + 1, 0), -EPERM, "range_memory"),
    ("host_share_ffa", (2, 0), 0, None),  # inside RAM: success, and nothing changes
    ("host_unshare_ffa", (3, 0), 0, None),
    ("host_donate_hyp", (1, 0), 0, None),
    ("hyp_donate_host", (1, 0), 0, None),
    ("host_share_guest", (1, 0, 0, 1, 6), -EINVAL, "leaf_size"),
    ("host_unshare_guest", (0, 0, 1), -EINVAL, "leaf_size"),
]


@pytest.mark.parametrize("name, args, errno, label", CASES)
def test_model_and_reference_agree_on_nomap_and_empty_ranges(name, args, errno, label):
    state, hv = loaded(CONFIG)
    call = PKVM.call(name, args)
    outcome = PKVM.step(CONFIG, state, call)
    assert outcome.errno == errno
    assert outcome.state == state  # refused, or a range of no pages: nothing changes
    assert invoke(hv, call) == errno
    assert abstract(hv, CONFIG) == state


@pytest.mark.parametrize("name, args, errno, label", [c for c in CASES if c[3] == "range_nomap"])
def test_the_nomap_check_is_the_one_that_refuses(name, args, errno, label):
    """Dropping `range_nomap` lets the call past it: a no-map page is otherwise like RAM."""
    from model.extensions import extend

    changed = extend(PKVM, f"drop_{label}", lambda ext: ext.drop_check(name, label))
    outcome = changed.step(CONFIG, loaded(CONFIG)[0], changed.call(name, args))
    assert outcome.errno != errno


def test_the_nomap_mutant_touches_a_nomap_page():
    """share_hyp_allows_nomap: host_share_hyp of a no-map page succeeds, and range_hygiene
    (no call touches a page that is not allowed RAM) says so."""
    protocol = mutant("share_hyp_allows_nomap")
    state = initial_state(CONFIG)
    outcome = protocol.step(CONFIG, state, protocol.call("host_share_hyp", (NOMAP,)))
    assert outcome.errno == 0
    hygiene = next(p for p in protocol.always if p.name == "range_hygiene")
    assert hygiene.state(protocol.view(CONFIG, state))
    assert not hygiene.state(protocol.view(CONFIG, outcome.state))
    # on MMIO the mutant still refuses: only the no-map test is gone
    assert protocol.step(CONFIG, state, protocol.call("host_share_hyp", (CONFIG.ram,))).errno == -EPERM
