"""The host kernel's own record of its hyp shares (mmu.c: hyp_shared_pfns, kvm_share_hyp()),
on the model and the reference, the property that it agrees with the hypervisor, and the
upstream ordering (record before the hypercall, not rolled back) as mutants it catches."""

from __future__ import annotations

from errno import EBUSY, ENOENT, EPERM

import pytest

from model.cli import main
from model.explorer.search import explore
from model.profiles.pkvm.properties import host_records
from model.profiles.pkvm.states import Config, initial_state
from tests.pkvm.helpers import PKVM, follow, run_mutant

RECORDS = Config(guests=(True,), host_records=True)


def test_the_hypercall_runs_for_the_first_share_and_the_last_unshare_only():
    state = follow(RECORDS, [
        ("host_share_hyp", (0,), 0), ("host_share_hyp", (0,), 0),
        ("hyp_pin_shared_mem", (0,), 0),
        ("host_unshare_hyp", (0,), 0),  # only uncounted: the pin does not matter yet
        ("host_unshare_hyp", (0,), -EBUSY),  # the last one: refused, the record stays
        ("hyp_unpin_shared_mem", (0,), 0), ("host_unshare_hyp", (0,), 0),
        ("host_unshare_hyp", (0,), -ENOENT),  # no record left
        ("host_donate_hyp", (1, 1), 0), ("host_share_hyp", (1,), -EPERM)])
    assert state.shared == (0,) * RECORDS.pages


def test_counting_shows_in_the_state():
    config = RECORDS
    state = follow(config, [("host_share_hyp", (0,), 0), ("host_share_hyp", (0,), 0)])
    assert state.shared[0] == 2 and host_records(PKVM.view(config, state))


def test_without_records_a_second_share_is_refused_and_nothing_is_recorded():
    state = follow(Config(guests=(True,)), [("host_share_hyp", (0,), 0),
                                            ("host_share_hyp", (0,), -EPERM),
                                            ("host_unshare_hyp", (0,), 0)])
    assert state.shared == (0,) * Config().pages


def test_the_property_sees_a_record_the_hypervisor_does_not_back():
    state = initial_state(RECORDS)._replace(shared=(1,) + (0,) * (RECORDS.pages - 1))
    assert not host_records(PKVM.view(RECORDS, state))


@pytest.mark.parametrize("name, run", [
    ("share_hyp_keeps_record_on_failure", [("host_donate_hyp", (0, 1)), ("host_share_hyp", (0,))]),
    ("unshare_hyp_drops_record_on_failure", [("host_share_hyp", (0,)), ("hyp_pin_shared_mem", (0,)),
                                             ("host_unshare_hyp", (0,))])])
def test_upstream_orderings_break_the_records_property(name, run):
    """Record before the hypercall, not rolled back: after the refused last call the host's
    record and the hypervisor disagree."""
    protocol, config, outcome = run_mutant(name, run)
    assert config.host_records
    assert outcome.errno in (-EPERM, -EBUSY)
    assert not host_records(protocol.view(config, outcome.state))


def test_the_mutants_command_kills_them(capsys):
    for name in ("share_hyp_keeps_record_on_failure", "unshare_hyp_drops_record_on_failure"):
        assert main(["mutants", "--only", name, "-q"]) == 0
        assert "1/1 killed" in capsys.readouterr().out


def test_host_records_flag_turns_them_on(capsys):
    assert main(["explore", "--pages", "1", "--guests", "1", "--host-records", "-q"]) == 0
    assert "host records" in capsys.readouterr().out


def test_a_records_machine_witnesses_double_shares_and_breaks_nothing():
    result = explore(PKVM, Config(ram=1, guests=(True, False), gfns=1, host_records=True))
    assert result.complete and result.violations == []
    assert result.sometimes["host_shares_twice"]
    assert max(s.shared[0] for s in result.states) == Config().max_shares
