"""The hypervisor's memcache and the hyp panic (hyp-main.c `pkvm_refill_memcache`, mem_protect.c
`WARN_ON(kvm_pgtable_stage2_map(...))`; docs/contract.md, "The memcache"): the model and the
reference alike, the readings' agreement, and the mutant that drops the refill check."""

from __future__ import annotations

from errno import EINVAL, ENOMEM, EPERM

import pytest

from model.explorer import explore
from model.profiles.pkvm.states import Config, initial_state
from model.profiles.pkvm.transitions import HYP_PANIC
from model.references.pkvm import Hypervisor
from model.references.pkvm.memcache import HypPanic
from tests.pkvm.helpers import PKVM, follow, mutant
from tests.pkvm.test_symbolic_agreement import agree

CONFIG = Config(ram=2, guests=(True, False), gfns=2, memcache=2)

# (call, errno) in order, from the initial state.
RUN = [
    ("vcpu_load", (0,), 0),  # the maps act for a loaded vCPU
    ("vcpu_load", (1,), 0),
    ("host_donate_guest", (0, 0, 0), -ENOMEM),  # empty memcache: refused before anything
    ("host_share_guest", (0, 0, 1, 1, 6), -ENOMEM),
    ("host_share_guest", (0, 0, 1, 0, 6), -EINVAL),  # the VM checks come first
    ("host_topup_memcache", (0,), 0),
    ("host_topup_memcache", (1,), 0),
    ("host_share_guest", (0, 0, 1, 1, 15), -EINVAL),  # a later check: the page stays
    ("host_donate_guest", (0, 0, 0), 0),
    ("host_donate_guest", (1, 1, 0), -ENOMEM),  # its page went to the map
    ("host_share_guest", (1, 0, 1, 1, 6), 0),
    ("host_share_guest", (1, 1, 1, 1, 6), -ENOMEM),
    ("host_topup_memcache", (1,), 0),
    ("host_share_guest", (1, 0, 1, 1, 6), -EPERM),
    ("vcpu_put", (1,), 0),
    ("start_teardown_vm", (1,), 0),
    ("host_topup_memcache", (1,), -EINVAL),  # dying
    ("host_unshare_guest", (0, 1, 1), 0),
    ("finalize_teardown_vm", (1,), 0),  # the memcache goes back to the host
]


def test_model_and_reference_follow_the_kernel_call_by_call():
    assert follow(CONFIG, RUN).mc == (0, 0)


def test_the_reference_memcache_is_a_linked_list_of_pool_pages():
    hv = Hypervisor(2, 1, memcaches=True)
    vm = hv.create_vm(False)
    for _ in range(3):
        assert hv.host_topup_memcache(vm) == 0
    mc = hv.vm_table[vm].memcache
    assert hv.vm_memcache_pages(vm) == mc.nr_pages == 3
    assert hv.hyp_pool.pages[mc.head][0] != 0  # linked through the first word
    mc.nr_pages = 4  # the count no longer matches the list
    with pytest.raises(ValueError):
        hv.vm_memcache_pages(vm)


def test_off_the_memcache_never_runs_short_and_explores_as_before():
    off = Config(ram=1, guests=(True, False), gfns=1)
    result = explore(PKVM, off)
    assert result.violations == [] and all(state.mc == (0, 0) for state in result.states)
    on = explore(PKVM, Config(ram=1, guests=(True, False), gfns=1, memcache=1))
    assert on.violations == [] and all(v for k, v in on.sometimes.items()
                                       if k != "host_shares_twice")  # records are off
    assert len(on.states) > len(result.states)


def test_a_map_short_of_memcache_is_a_hyp_panic_after_the_first_write():
    broken = mutant("share_guest_skips_memcache_check")
    config = broken.adjust(Config(ram=1, guests=(False,), gfns=1))
    state = initial_state(config)._replace(refs=(1,))
    outcome = broken.step(config, state, broken.call("host_share_guest", (0, 0, 1, 0, 6)))
    assert outcome.errno == HYP_PANIC
    assert outcome.state.count[0] == 1 and outcome.state.s2 == ((),)  # written, then the panic
    prop = next(p for p in PKVM.always if p.name == "no_hyp_panic")
    pre, post = PKVM.view(config, state), PKVM.view(config, outcome.state)
    assert not prop.step("host_share_guest", outcome.errno, pre, post)
    result = explore(broken, config)
    found = {v.property: v for v in result.violations}
    assert found["no_hyp_panic"].length == 2  # the vCPU load, then the share


def test_the_reference_panics_where_the_model_does():
    hv = Hypervisor(1, 1, memcaches=True)
    vm = hv.create_vm(False)
    assert hv.vcpu_load(vm) == 0
    from model.references.pkvm import mem_protect

    refill = mem_protect.pkvm_refill_memcache
    mem_protect.pkvm_refill_memcache = lambda pkvm, mc: 0  # the mutant's handler
    try:
        with pytest.raises(HypPanic):
            hv.host_share_guest(0, 0, 1, vm, 6)
    finally:
        mem_protect.pkvm_refill_memcache = refill
    assert hv.hyp_page(0).host_share_guest_count == 1  # what was written before stays


@pytest.mark.parametrize("name, args", [
    ("host_topup_memcache", (1,)), ("host_share_guest", (0, 0, 1, 1, 6)),
    ("host_donate_guest", (0, 0, 0)), ("finalize_teardown_vm", (1,)),
])
@pytest.mark.parametrize("mc", [(0, 0), (1, 1)])
def test_symbolic_reading_agrees_with_concrete(name, args, mc):
    state = initial_state(CONFIG)._replace(mc=mc, refs=(1, 1))
    if name == "finalize_teardown_vm":
        state = state._replace(refs=(1, 0))
        state = PKVM.step(CONFIG, state, PKVM.call("start_teardown_vm", (1,))).state
    agree(CONFIG, state, PKVM.call(name, args))


def test_cli_refuses_a_negative_memcache(capsys):
    from model.cli import main

    assert main(["explore", "--memcache", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkvm-model: error: ") and "--memcache" in err and err.count("\n") == 1


def test_the_prover_proves_no_panic_and_refutes_the_mutant_with_a_counterexample():
    """As `prove --mutant` does it: z3's answer, else the fallback's reachable run (z3's answer
    depends on what the test process asked z3 before)."""
    from model.commands.refute import refute
    from model.prover import Obligation, discharge

    ob = Obligation("no_hyp_panic", "host_share_guest")
    assert discharge(PKVM, ob).status == "proved"
    broken = mutant("share_guest_skips_memcache_check")
    result = discharge(broken, ob)
    if result.status != "violated":
        result = refute(broken, result)
    assert result.status == "violated"
    cex = result.counterexample
    assert cex["call"].startswith("host_share_guest") and cex["errno"] == HYP_PANIC
