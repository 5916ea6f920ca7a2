"""What the pKVM tests share: the profile, its mutants, a protocol with one body swapped, and a
run of calls followed by model and reference side by side."""

from __future__ import annotations

from dataclasses import replace

from model.extensions import mutate
from model.profiles.pkvm import PROFILE as PKVM
from model.profiles.pkvm.abstraction import abstract, invoke, reference_for
from model.profiles.pkvm.states import Config, initial_state


def seeded(name: str, body):
    """The pKVM profile with one transition's body replaced (a hand-seeded bug)."""
    return PKVM.with_changes(transitions={**PKVM.transitions,
                                          name: replace(PKVM.transitions[name], body=body)})


def mutant(name: str | None):
    """The profile under one catalog mutant (the model itself for None)."""
    return PKVM if name is None else mutate(PKVM, name)


def follow(config, run):
    """Each (name, args, errno) of `run` on the model and on the reference: both answer the
    kernel's errno, a failing call changes nothing, and the reference's state abstracts to the
    model's after every call. The model's last state."""
    state = initial_state(config)
    hv = reference_for(config)
    for name, args, errno in run:
        call = PKVM.call(name, args)
        outcome = PKVM.step(config, state, call)
        assert outcome.errno == errno, call
        assert invoke(hv, call) == errno, call
        if errno:
            assert outcome.state == state, call
        state = outcome.state
        assert abstract(hv, config) == state, call
    return state


def loaded(config):
    """(model state, reference) at the start with one vCPU of every guest loaded: the
    guest-map hypercalls act for a loaded vCPU, and a guest runs only on one."""
    hv = reference_for(config)
    for vm in range(len(config.guests)):
        assert hv.vcpu_load(vm) == 0
    return initial_state(config)._replace(refs=(1,) * len(config.guests)), hv


def run_mutant(name: str, run):
    """The mutant's calls (name, args) from the initial state of its own default machine:
    (protocol, config, the last call's outcome)."""
    protocol = mutant(name)
    config = protocol.adjust(Config())
    state, outcome = initial_state(config), None
    for call in run:
        outcome = protocol.step(config, state, protocol.call(*call))
        state = outcome.state
    return protocol, config, outcome
