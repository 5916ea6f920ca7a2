"""Exploration of small machines: complete, no violation, the graph properties hold, and the
sometimes properties a machine can show are witnessed."""

from pathlib import Path

import pytest

from model.explorer import explore
from tests.gmem.helpers import GMEM, SMALL, TINY, machine
from tests.stepper_check import agreeing_stepper

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


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
    config = machine(slots=2, gfns=2, pages=1, sizes=(1,), flags=(1,))
    reduced = explore(GMEM, config)
    full = explore(GMEM, config, symmetry=False)
    assert not reduced.symmetry.get("refused")
    assert len(reduced.states) < len(full.states)
    assert reduced.sometimes == full.sometimes and not full.violations


def test_created_files_are_renamed_and_the_reduction_is_kept():
    config = machine(files=2, slots=1, gfns=2, pages=1, sizes=(0, 1))
    reduced = explore(GMEM, config)
    full = explore(GMEM, config, symmetry=False)
    assert not reduced.symmetry.get("refused") and reduced.symmetry["files"]
    assert len(reduced.states) < len(full.states)
    assert reduced.sometimes == full.sometimes and not full.violations and not reduced.violations


def test_the_direct_reads_answer_as_the_vocabulary():
    """`Direct` (the view when no read is redefined) reads in place what `Concrete` reads
    through `read` and the domain checks: the same value of every named read, in and out of
    the domains, on every state of a small machine, and the same exploration."""
    import dataclasses
    import itertools

    from model.profiles.gmem.readings import Concrete, Direct, Vocabulary
    config = SMALL
    plain = dataclasses.replace(GMEM, reads=(("attr", lambda s, g: Vocabulary.attr(s, g)),))
    fast = explore(GMEM, config, symmetry=False)
    slow = explore(plain, config, symmetry=False)
    assert list(fast.states) == list(slow.states)
    assert sorted(fast.graph.edges(data="calls")) == sorted(slow.graph.edges(data="calls"))
    assert (fast.tried, fast.edges, fast.depth) == (slow.tried, slow.edges, slow.depth)
    assert fast.sometimes == slow.sometimes and fast.witnesses == slow.witnesses
    names = ("fsize fflags fd vmas sn sbase sgmem sfile spgoff sonly attr gslot lkind lfile "
             "lidx slot_of index_of bound_file").split()
    keys = range(-1, max(config.gfns, config.slots, config.files, config.pages) + 2)
    for state in itertools.islice(fast.states, 0, None, 7):
        a = Direct(config, state, GMEM.transitions, GMEM.fields)
        b = Concrete(config, state, GMEM.transitions, GMEM.fields)
        for name in names:
            assert [getattr(a, name)(k) for k in keys] == [getattr(b, name)(k) for k in keys]
        for name in ("page", "bind", "hpte"):
            assert ([getattr(a, name)(f, i) for f in keys for i in keys]
                    == [getattr(b, name)(f, i) for f in keys for i in keys])


@pytest.mark.parametrize("extended", [False, True])
def test_the_memo_answers_as_the_step_does_element_by_element(extended):
    """The memo keys a gmem call on the elements it reads (the view keeps its writes one by
    one): on every state and call it answers what `Profile.step` does, and many of the calls
    the whole-column memo misses it answers from those elements."""
    from model.extensions import load

    profile = load(GMEM, str(EXAMPLES / "gmem_in_place_conversion.py")) if extended \
        else GMEM
    config = profile.adjust(machine(files=2, slots=2, gfns=3))
    states = explore(profile, config, symmetry=False, max_states=600).states
    stepper = agreeing_stepper(profile, config, states)
    assert stepper.element_hits > stepper.misses / 4
