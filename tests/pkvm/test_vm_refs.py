"""VM references: vCPU load and put, the VM's refcount, and teardown refusing a referenced VM
(Linux 7.1 `__pkvm_start_teardown_vm`, `pkvm_load_hyp_vcpu`, `pkvm_put_hyp_vcpu`; docs/contract.md,
"VM references"): the model and the reference alike, and the mutant that drops the test."""

from __future__ import annotations

from errno import EBUSY, EINVAL, ENOENT

import pytest

from model.profiles.pkvm.states import Config, Life, initial_state
from tests.pkvm.helpers import PKVM, follow, mutant

CONFIG = Config(ram=2, guests=(True, False), gfns=1, vcpus=2)

# (call, errno) in order, from the initial state.
RUN = [
    ("vcpu_put", (0,), -EINVAL),  # nothing loaded
    ("vcpu_load", (0,), 0),
    ("vcpu_load", (0,), 0),
    ("vcpu_load", (0,), -EBUSY),  # both vCPUs loaded
    ("start_teardown_vm", (0,), -EINVAL),  # referenced: get_pkvm_unref_hyp_vm_locked() NULL
    ("vcpu_put", (0,), 0),
    ("start_teardown_vm", (0,), -EINVAL),  # still one reference
    ("vcpu_put", (0,), 0),
    ("start_teardown_vm", (0,), 0),
    ("vcpu_load", (0,), -EINVAL),  # dying
    ("vcpu_put", (0,), -EINVAL),
    ("finalize_teardown_vm", (0,), 0),
    ("vcpu_load", (0,), -ENOENT),  # torn down
    ("vcpu_load", (7,), -ENOENT),  # no such VM
    ("start_teardown_vm", (7,), -EINVAL),
    ("vcpu_load", (1,), 0),
]


def test_model_and_reference_follow_the_kernel_call_by_call():
    state = follow(CONFIG, RUN)
    assert state.refs == (0, 1) and state.life == (Life.TORN_DOWN, Life.RUNNING)


def test_the_refcount_invariant_holds_and_the_mutant_breaks_it():
    prop = next(p for p in PKVM.always if p.name == "vm_references")
    loaded = PKVM.step(CONFIG, initial_state(CONFIG), PKVM.call("vcpu_load", (1,))).state
    assert prop.state(PKVM.view(CONFIG, loaded))
    broken = mutant("teardown_ignores_refs")
    dying = broken.step(CONFIG, loaded, broken.call("start_teardown_vm", (1,)))
    assert dying.errno == 0
    assert not prop.state(broken.view(CONFIG, dying.state))  # a dying VM with a vCPU loaded


@pytest.mark.parametrize("vcpus", [1, 3])
def test_scenario_lines_name_the_refcount(vcpus):
    from model.profiles.pkvm.presenter import machine_text, parse_expect, parse_machine

    config = Config(ram=1, guests=(True,), vcpus=vcpus)
    text = machine_text(config)
    assert (f"vcpus={vcpus}" in text) == (vcpus != 1)
    parsed, _ = parse_machine(text.split())
    assert parsed.vcpus == vcpus
    subject, checks = parse_expect("vm0: refs=0", parsed)
    assert subject == ("vm", 0) and checks == (("refs", "0"),)
