"""What the pKVM tests share: the profile, its mutants, and a protocol with one body swapped."""

from __future__ import annotations

from dataclasses import replace

from model.extensions import mutate
from model.profiles.pkvm import PROFILE as PKVM


def seeded(name: str, body):
    """The pKVM profile with one transition's body replaced (a hand-seeded bug)."""
    return PKVM.with_changes(transitions={**PKVM.transitions,
                                          name: replace(PKVM.transitions[name], body=body)})


def mutant(name: str | None):
    """The profile under one catalog mutant (the model itself for None)."""
    return PKVM if name is None else mutate(PKVM, name)
