"""The seam between a protocol and the machinery: a `Profile` owns everything protocol-specific.

Like stateright's `Model` or a TLA+ module, a profile gives its configuration (type, default,
command-line options), its initial state, the argument domains of its calls, its transitions
(a `Protocol`), its properties (always, sometimes, graph), its symmetry, how its states are
presented, what the prover needs of it, and optionally a reference adapter for conformance.
The explorer, the prover, bounded model checking, conformance, rendering and the command line
ask the profile and never import a protocol. A profile is a value: an extension (a proposed
change, or a seeded bug) yields a new profile with some transitions, properties or
configuration changed (`model/extensions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable

from model.properties import GraphProperty, Property, succeeds
from model.states import StateField
from model.transitions import Call, Outcome, Transition, product, run_concrete


class Unrepresentable(Exception):
    """A reference implementation is in a state no state of the profile describes."""


class NoSymmetry:
    """The trivial group: every state is its own representative."""

    trivial = True
    order = 1

    def canonical(self, state):
        return state

    def generators(self) -> list:
        return []

    def image(self, state, *generator):
        return state

    def orbit_size(self, state) -> int:
        return 1

    def describe(self) -> dict:
        return {"group_order": 1}


@dataclass(frozen=True)
class Mutant:
    """A seeded bug: an extension (`extend(ext)`) of the profile that some check must catch."""

    name: str
    doc: str
    transition: str  # the transition it changes (its obligations are the ones to refute)
    extend: Callable


@dataclass(frozen=True)
class Profile:
    """One protocol. Subclasses give the hooks; the fields are what extensions change."""

    name: str
    doc: str
    transitions: dict[str, Transition]
    always: tuple[Property, ...]
    sometimes: tuple[Property, ...]  # besides "every transition succeeds somewhere"
    graph: tuple[GraphProperty, ...] = ()
    mutants: dict[str, Mutant] = field(default_factory=dict)
    config_changes: tuple = ()  # (field, value) pairs an extension sets on every config
    extensions: tuple[str, ...] = ()  # names of the extensions applied, in order
    state_fields: tuple[StateField, ...] = ()  # fields extensions add to the state, in order
    reads: tuple = ()  # (name, fn) reads of the vocabulary extensions redefine, in order

    # -- configuration (hooks) -------------------------------------------------------------
    def default_config(self):
        raise NotImplementedError

    def add_arguments(self, group) -> None:
        """The machine options of the command line (argparse argument group)."""

    def config_from_args(self, args):
        """The configuration the options describe; bad values raise ValueError."""
        return self.default_config()

    def config_text(self, config) -> str:
        """The machine in a few words, for report titles."""
        return str(config)

    def disciplined(self, config) -> bool:
        """Whether the caller discipline (each transition's `discipline` guard) is on."""
        return True

    def undisciplined(self, config):
        """The configuration with the caller discipline off."""
        return config

    def adjust(self, config):
        """The configuration with the extensions' changes applied."""
        return replace(config, **dict(self.config_changes)) if self.config_changes else config

    # -- states (hooks) --------------------------------------------------------------------
    def initial_state(self, config):
        raise NotImplementedError

    def view(self, config, state):
        """The concrete view of one state (with `post()` giving the successor)."""
        raise NotImplementedError

    def domain(self, config, kind: str):
        """The values an exploration tries for one argument kind."""
        raise NotImplementedError

    def symmetry(self, config, enabled: bool = True):
        return NoSymmetry()

    # The kinds of key an extension's state field may have (`ext.field`); a profile that names
    # any builds its states, views (concrete and symbolic), symmetry and snapshots from
    # `state_fields` and applies `reads` to every view it makes (`with_reads`). () for a
    # profile whose state has a fixed shape: extensions can then only edit its transitions.
    field_kinds = ()

    def with_reads(self, view):
        """The view with the extensions' redefined reads: `fn(view, *args)` answers
        `view.name(*args)` for every caller, the profile's own vocabulary included."""
        for name, fn in self.reads:
            setattr(view, name, partial(fn, view))
        return view

    # Machines (as explore options) that `pkvm-model check` explores beside the default one,
    # for what the default machine cannot reach (gmem: host faults need a VM without private
    # memory); a sometimes property then counts as witnessed when any of them witnesses it.
    witness_machines = ()
    presenter = None  # how states are shown: traces, diffs, counterexamples, diagrams
    prover = None  # what the prover needs (None: the profile has no symbolic reading)
    reference = None  # the conformance adapter to a reference implementation, if any
    scenarios = None  # the folder of shipped scenario files, if any

    # -- derived, the same for every profile -----------------------------------------------
    @property
    def properties(self) -> dict[str, Property]:
        props = list(self.always) + [succeeds(n) for n in self.transitions] + list(self.sometimes)
        return {p.name: p for p in props}

    def calls(self, config) -> list[Call]:
        """Every call an exploration tries, in a fixed order (determinism)."""
        out = []
        for t in self.transitions.values():
            out.extend(t.call(*args) for args in product([self.domain(config, p)
                                                          for p in t.params]))
        return out

    def call(self, name: str, args: tuple) -> Call:
        return self.transitions[name].call(*args)

    def step(self, config, state, call: Call) -> Outcome | None:
        """The protocol's answer to one call; None when the (disciplined, bounded) caller never
        makes it."""
        view = self.view(config, state)
        errno = run_concrete(view, self.transitions[call.name], call.args,
                             self.disciplined(config))
        return None if errno is None else Outcome(errno, view.post())

    def with_changes(self, **changes) -> Profile:
        return replace(self, **changes)
