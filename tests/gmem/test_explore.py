"""Exploration of small machines: complete, no violation, the graph properties hold, and the
sometimes properties a machine can show are witnessed."""

import pytest

from model.explorer import explore
from tests.gmem.helpers import GMEM, SMALL, TINY


@pytest.mark.parametrize("vm", sorted(TINY))
def test_tiny_machines_hold(vm):
    result = explore(GMEM, TINY[vm])
    assert result.complete and not result.violations
    assert result.graph_checks == {"checked": True, "graph_can_destroy": 0, "graph_no_dead_end": 0}


def test_small_machine_witnesses_the_private_life_of_a_gfn():
    result = explore(GMEM, SMALL)
    assert result.complete and not result.violations
    missing = {k for k, v in result.sometimes.items() if not v}
    # SW_PROTECTED VMs cannot have INIT_SHARED files, so the host never faults a page in
    # (kvm_arch_supports_gmem_init_shared() is !has_private_mem); one file backing two slots
    # needs two slots
    assert missing == {"host_read_succeeds", "host_write_succeeds", "one_file_two_slots"}


def test_host_faults_on_a_default_vm():
    from model.profiles.gmem.properties import HOST_WRITE_SEEN
    result = explore(GMEM, TINY["x86"], properties=[*GMEM.properties.values(), HOST_WRITE_SEEN])
    assert result.sometimes["host_write_succeeds"] and result.sometimes["host_read_succeeds"]
    assert result.sometimes["host_write_seen"]  # a host write seen through a GMEM_ONLY slot


def test_symmetry_is_checked_and_kept():
    from tests.gmem.helpers import machine
    config = machine(slots=2, gfns=2, pages=1, sizes=(1,), flags=(1,))
    reduced = explore(GMEM, config)
    full = explore(GMEM, config, symmetry=False)
    assert not reduced.symmetry.get("refused")
    assert len(reduced.states) < len(full.states)
    assert reduced.sometimes == full.sometimes and not full.violations


def test_created_files_are_renamed_and_the_reduction_is_kept():
    from tests.gmem.helpers import machine
    config = machine(files=2, slots=1, gfns=2, pages=1, sizes=(0, 1))
    reduced = explore(GMEM, config)
    full = explore(GMEM, config, symmetry=False)
    assert not reduced.symmetry.get("refused") and reduced.symmetry["files"]
    assert len(reduced.states) < len(full.states)
    assert reduced.sometimes == full.sometimes and not full.violations and not reduced.violations
