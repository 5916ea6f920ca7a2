"""What a state and a configuration are, for every protocol.

A profile's state is an immutable NamedTuple of hashable fields (tuples per page, per VM, per
gfn, ...), so the explorer can hash millions of them, memoise a call on the fields it reads and
share equal fields between states. Its configuration is a frozen dataclass: the static machine
plus the argument domains a bounded exploration tries, with `validate()` naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol as _Protocol


class Config(_Protocol):
    def validate(self) -> None:
        """Raise ValueError, naming the problem, when the configuration describes no machine."""


def enum_name(enum: type[IntEnum], value) -> str:
    """The member's name, or the raw value when it names no member (a corrupted cell)."""
    try:
        return enum(value).name
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class StateField:
    """A state field an extension adds (`ext.field`): its name, the profile's kind of key it is
    indexed by (`profile.field_kinds`, e.g. gmem's "index" or "scalar"), its initial value and
    the integer range [low, high] its values stay in (the prover's bound: each reading holds it
    as an integer of that range), and how a report shows a value (`show`, None: the number)."""

    name: str
    kind: str
    initial: int = 0
    low: int = 0
    high: int = 1
    show: tuple = ()  # (value, text) pairs

    def text(self, value) -> str:
        return dict(self.show).get(value, str(value))
