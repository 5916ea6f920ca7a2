"""The host kernel's own record of what it mapped into each guest (arch/arm64/kvm/pkvm.c:
pkvm_mappings) on the model and the reference, the property that it agrees with the guests'
stage-2, and the first merged orderings (record whatever the hypercall said) as mutants."""

from __future__ import annotations

from dataclasses import replace
from errno import EAGAIN, EFAULT, EINVAL, ENOENT, EPERM

import pytest

from model.cli import main
from model.explorer.search import explore
from model.profiles.pkvm.properties import host_records
from model.profiles.pkvm.states import Config, Mapping, initial_state
from tests.pkvm.helpers import PKVM, follow, mutant, run_mutant

RECORDS = Config(guests=(True, False), host_records=True)
NP, PROT = 1, 0
RW = 6
LOADED = [("vcpu_load", (PROT,), 0), ("vcpu_load", (NP,), 0)]  # the maps act for a loaded vCPU


def test_a_record_only_once_the_hypercall_succeeded_and_gone_only_once_it_was_undone():
    state = follow(RECORDS, LOADED + [
        ("host_share_guest", (0, 0, 2, NP, RW), -EINVAL),  # nr 2: refused, nothing recorded
        ("host_share_guest", (0, 0, 1, NP, RW), 0),
        ("host_share_guest", (1, 0, 1, NP, RW), -EAGAIN),  # recorded already: no hypercall
        ("host_unshare_guest", (0, 2, NP), -EINVAL),  # refused: the record stays
        ("host_donate_guest", (1, 1, PROT), 0)])
    assert state.maps == ((Mapping(1, 1, 1),), (Mapping(0, 1, 0),))
    state = follow(RECORDS, LOADED + [
        ("host_share_guest", (0, 0, 1, NP, RW), 0), ("host_unshare_guest", (0, 1, NP), 0),
        ("host_unshare_guest", (0, 1, NP), 0)])  # no record, no hypercall (-ENOENT without)
    assert state.maps == ((), ())


def test_a_forced_reclaim_keeps_the_record_and_the_next_fault_there_is_a_poison_fault():
    state = follow(RECORDS, LOADED + [
        ("host_donate_guest", (0, 0, PROT), 0), ("host_force_reclaim_page_guest", (0,), 0),
        ("host_donate_guest", (1, 0, PROT), -EFAULT),
        ("reclaim_dying_guest_page", (PROT, 0), -EINVAL),  # not dying: the record stays
        ("vcpu_put", (PROT,), 0), ("start_teardown_vm", (PROT,), 0), ("reclaim_dying_guest_page", (PROT, 0), 0)])
    assert state.maps == ((), ())


def test_teardown_frees_the_records_with_the_vm():
    state = follow(replace(RECORDS, host_discipline=False), LOADED + [
        ("host_share_guest", (0, 0, 1, NP, RW), 0), ("vcpu_put", (NP,), 0),
        ("start_teardown_vm", (NP,), 0),
        ("finalize_teardown_vm", (NP,), 0)])
    assert state.maps == ((), ())


def test_without_records_the_calls_are_the_bare_hypercalls():
    state = follow(Config(), LOADED + [("host_share_guest", (0, 0, 1, NP, RW), 0),
                              ("host_share_guest", (1, 0, 1, NP, RW), -EPERM),
                              ("host_unshare_guest", (0, 1, NP), 0),
                              ("host_unshare_guest", (0, 1, NP), -ENOENT)])
    assert state.maps == ((), ())


def test_the_property_sees_each_way_records_and_stage_2_can_disagree():
    view = lambda config, state: PKVM.view(config, state)
    mapped = follow(RECORDS, LOADED + [("host_share_guest", (0, 0, 1, NP, RW), 0)])
    assert host_records(view(RECORDS, mapped))
    assert not host_records(view(RECORDS, mapped._replace(maps=((), ()))))  # unrecorded entry
    assert not host_records(view(RECORDS, mapped._replace(maps=((), (Mapping(0, 1, 1),)))))
    stale = initial_state(RECORDS)._replace(maps=((Mapping(0, 1, 0),), ()))
    assert not host_records(view(RECORDS, stale))  # a record of nothing
    assert not host_records(view(Config(), initial_state(Config())._replace(
        maps=((Mapping(0, 1, 0),), ()))))  # records where none are modelled


@pytest.mark.parametrize("name, run", [
    ("share_guest_records_before_hypercall", [("start_teardown_vm", (NP,)),
                                              ("host_share_guest", (0, 0, 1, NP, RW))]),
    ("unshare_guest_drops_record_on_failure", [("vcpu_load", (NP,)),
                                               ("host_share_guest", (0, 0, 1, NP, RW)),
                                               ("host_unshare_guest", (0, 2, NP))])])
def test_the_first_merged_orderings_break_the_records_property(name, run):
    protocol, config, outcome = run_mutant(name, run)
    assert config.host_records
    assert outcome.errno == -EINVAL
    assert not host_records(protocol.view(config, outcome.state))
    assert host_records(PKVM.view(config, PKVM.step(config, initial_state(config), PKVM.call(
        *run[0])).state))


def test_only_the_records_catch_them():
    """Without records both mutants are the model itself: the feature is what kills them."""
    for name in ("share_guest_records_before_hypercall", "unshare_guest_drops_record_on_failure"):
        protocol = mutant(name)
        config = Config(ram=1, guests=(False,), gfns=1)
        assert explore(protocol, config).violations == []


def test_the_mutants_command_kills_them(capsys):
    for name in ("share_guest_records_before_hypercall", "unshare_guest_drops_record_on_failure"):
        assert main(["mutants", "--only", name, "-q"]) == 0
        assert "1/1 killed" in capsys.readouterr().out


def test_a_records_machine_breaks_nothing_and_records_every_kind_of_entry():
    result = explore(PKVM, Config(ram=1, guests=(True, False), gfns=1, host_records=True))
    assert result.complete and result.violations == []
    kinds = {(vm, leaf.state) for s in result.states for vm, leaves in enumerate(s.s2)
             for leaf in leaves if s.maps[vm]}
    assert {(0, 0), (0, 1), (0, 4), (1, 2)} <= kinds  # OWNED, SHARED_OWNED, POISON; borrowed
