"""Extensions: a proposed protocol change (or a seeded bug) as a Python file, without editing
the tool.

An extension file defines `extend(ext)`; `ext` is an `Extension` of the selected profile and
offers the same definitions API the built-in profiles use, plus edits by name:

    def extend(ext):
        @ext.override("host_share_ffa")          # replace a transition's body
        def host_share_ffa(s, pfn, nr): ...
        @ext.transition("host", "ffa")           # add a transition
        def host_lend_ffa(s, pfn): ...
        ext.remove("hole_punch")                 # remove one
        ext.drop_check("host_unshare_hyp", "pin_count")   # a labelled check, by name
        ext.drop_write("hyp_donate_host", "hyp_mapped")   # a field (or write operation)
        ext.always(my_invariant)                 # add, replace or remove properties
        ext.config(count_max=1)                  # change every configuration
        ext.field("pin", "index", initial=0, values=(0, 1))   # a new state field
        ext.redefine("attr", lambda s, g: ...)   # a read, for every transition and property

`ext.original(name)` is a transition's body before the extension's change (an override can
call it). The built-in mutants are extensions of this kind (`Profile.mutants`). Any mistake
in a file is one `ExtensionError` naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import inspect
import runpy
from pathlib import Path
from typing import Callable

from model.profile import Profile
from model.properties import Property, always, always_step
from model.staging import StagingError, check_profile
from model.states import StateField
from model.transitions import Protocol, Transition, _params


class ExtensionError(Exception):
    """An extension that cannot be applied: said in one line."""


class EditedView:
    """A view that forwards everything to the real one except the extension's edits: checks
    dropped by label, writes dropped by field (`set`, `set_range`) or by write operation (a
    profile's own, such as pKVM's `unmap_leaf`), attributes replaced (a callable replacement is
    called with the real view first)."""

    def __init__(self, view, drop_checks=frozenset(), drop_fields=frozenset(),
                 drop_ops=frozenset(), replace=None):
        self._view = view
        self._drop_checks = drop_checks
        self._drop_fields = drop_fields
        for name in drop_ops:
            setattr(self, name, lambda *args, **kwargs: None)
        for name, value in (replace or {}).items():
            setattr(self, name, (lambda *a, _f=value: _f(view, *a)) if callable(value) else value)

    def __getattr__(self, name):
        return getattr(self._view, name)

    def require(self, ok, errno, label=None):
        if label in self._drop_checks:
            return 0
        return self._view.require(ok, errno, label)

    def each_page(self, lo, n, errno_of, label=None):
        if label in self._drop_checks:
            return 0
        return self._view.each_page(lo, n, errno_of, label)

    def set(self, field, p, value):
        if field not in self._drop_fields:
            self._view.set(field, p, value)

    def set_range(self, field, lo, n, value_of):
        if field not in self._drop_fields:
            self._view.set_range(field, lo, n, value_of)


class Extension:
    """The edits one extension makes to a profile; `apply()` gives the new profile."""

    def __init__(self, profile: Profile, name: str):
        self.profile, self.name = profile, name
        self._protocol = Protocol(profile.transitions)
        self._always = {p.name: p for p in profile.always}
        self._sometimes = {p.name: p for p in profile.sometimes}
        self._config = dict(profile.config_changes)
        self._fields = list(profile.state_fields)
        self._reads = list(profile.reads)

    # -- transitions --------------------------------------------------------------------------
    def _known(self, name: str) -> Transition:
        if name not in self._protocol.transitions:
            raise ExtensionError(f"unknown transition {name!r} (the {self.profile.name} profile "
                                 f"has: {', '.join(self._protocol.transitions)})")
        return self._protocol.transitions[name]

    def original(self, name: str) -> Callable:
        """The transition's body as it is before the edits that follow."""
        return self._known(name).body

    def transition(self, initiator: str, completer: str, discipline: Callable | None = None,
                   bound: Callable | None = None):
        """Add a transition, exactly as a profile defines one."""
        def register(body):
            if body.__name__ in self._protocol.transitions:
                raise ExtensionError(f"transition {body.__name__!r} exists already: use "
                                     "ext.override to change it")
            _check_body(body)
            return self._protocol.transition(initiator, completer, discipline, bound)(body)
        return register

    def override(self, name: str, *, discipline: Callable | None = ..., bound: Callable | None = ...):
        """Replace a transition's body (its parameters may change); discipline and bound stay
        unless given."""
        old = self._known(name)

        def register(body):
            _check_body(body)
            changes = {"body": body, "params": _params(body),
                       "doc": (body.__doc__ or old.doc).strip()}
            if discipline is not ...:
                changes["discipline"] = discipline
            if bound is not ...:
                changes["bound"] = bound
            self._protocol.transitions[name] = dataclasses.replace(old, **changes)
            return body
        return register

    def remove(self, name: str) -> None:
        self._known(name)
        del self._protocol.transitions[name]

    def edit(self, name: str, *, drop_checks=(), drop_writes=(), replace=None) -> None:
        """Run a transition's body through an `EditedView` (see there); `drop_writes` names
        state fields or write operations."""
        old = self._known(name)
        fields = set(self._state_fields())
        body, checks = old.body, frozenset(drop_checks)
        drop_fields = frozenset(w for w in drop_writes if w in fields)
        drop_ops = frozenset(w for w in drop_writes if w not in fields)
        for op in drop_ops:
            if not callable(getattr(type(self.profile.view(self._default(), None)), op, None)):
                raise ExtensionError(f"{name}: {op!r} is neither a state field nor a write "
                                     f"operation of the {self.profile.name} profile")

        def edited(s, *args):
            yield from body(EditedView(s, checks, drop_fields, drop_ops, replace), *args)

        self._protocol.transitions[name] = dataclasses.replace(old, body=edited)

    def drop_check(self, name: str, *labels: str) -> None:
        """The transition no longer makes the checks with these labels."""
        self.edit(name, drop_checks=labels)

    def drop_write(self, name: str, *writes: str) -> None:
        """The transition no longer writes these fields (or makes these write operations)."""
        self.edit(name, drop_writes=writes)

    def _default(self):
        return self.profile.default_config()

    def _state_fields(self) -> tuple[str, ...]:
        """The fields of the profile's state (with the ones this extension adds), plus any
        per-index field names it declares."""
        return tuple(type(self.profile.initial_state(self._default()))._fields) + tuple(
            getattr(self.profile, "write_fields", ())) + tuple(
            f.name for f in self._fields[len(self.profile.state_fields):])

    # -- state ----------------------------------------------------------------------------------
    def field(self, name: str, kind: str, *, initial: int = 0, values: tuple = (0, 1),
              show: dict | None = None) -> None:
        """Add a state field: one integer per key of `kind` (one of the profile's
        `field_kinds`), `initial` everywhere at the start, always within `values` = (low,
        high) (a state invariant the prover proves and uses), shown through `show` (value ->
        text). Transitions and properties read it with `s.read(name, key)` and write it with
        `s.set` / `s.set_where`, like the profile's own fields."""
        kinds = self.profile.field_kinds
        if not kinds:
            raise ExtensionError(f"the {self.profile.name} profile's state has a fixed shape: "
                                 "an extension cannot add a field to it")
        if kind not in kinds:
            raise ExtensionError(f"field {name!r}: unknown kind {kind!r} (the "
                                 f"{self.profile.name} profile has: {', '.join(kinds)})")
        if not name.isidentifier() or name.startswith("_") or name in self._state_fields() \
                or hasattr(type(self.profile.view(self._default(), None)), name):
            raise ExtensionError(f"field {name!r}: not a new identifier of the state and its "
                                 "vocabulary")
        low, high = values if isinstance(values, tuple) and len(values) == 2 else (None, None)
        if not all(isinstance(v, int) for v in (low, high, initial)) or not \
                low <= initial <= high:
            raise ExtensionError(f"field {name!r}: values must be (low, high) integers around "
                                 f"the initial value, got {values!r} and {initial!r}")
        if show is not None and not isinstance(show, dict):
            raise ExtensionError(f"field {name!r}: show must be a dict of value -> text")
        self._fields.append(StateField(name, kind, initial, low, high,
                                       tuple(sorted((show or {}).items()))))

    def redefine(self, name: str, fn: Callable) -> None:
        """Answer the read `s.name(*args)` with `fn(s, *args)` in every view of every reading:
        transitions, properties, the profile's own vocabulary and the prover's strengthening
        (a proposal that changes what a word means, e.g. where an attribute is kept)."""
        if not self.profile.field_kinds:
            raise ExtensionError(f"the {self.profile.name} profile does not let extensions "
                                 "redefine its reads")
        if not callable(getattr(type(self.profile.view(self._default(), None)), name, None)):
            raise ExtensionError(f"redefine {name!r}: not a read of the {self.profile.name} "
                                 "profile's vocabulary")
        if not callable(fn):
            raise ExtensionError(f"redefine {name!r}: {type(fn).__name__} is not a function")
        self._reads.append((name, fn))

    # -- properties ---------------------------------------------------------------------------
    def always(self, fn: Callable) -> Callable:
        """Add (or replace, by name) a state invariant `fn(s)`; decorator-friendly."""
        self._always[fn.__name__] = _predicate(self, always(fn), 1)
        return fn

    def always_step(self, fn: Callable) -> Callable:
        """Add (or replace) a step invariant `fn(call, errno, pre, post)`."""
        self._always[fn.__name__] = _predicate(self, always_step(fn), 4)
        return fn

    def sometimes(self, name: str, doc: str, state: Callable | None = None,
                  step: Callable | None = None) -> None:
        """Add (or replace) something that must be reachable."""
        prop = Property(name, "sometimes", doc, state=state, step=step)
        self._sometimes[name] = _predicate(self, prop, 1 if state is not None else 4)

    def remove_property(self, name: str) -> None:
        for table in (self._always, self._sometimes):
            if name in table:
                del table[name]
                return
        raise ExtensionError(f"unknown property {name!r}")

    # -- configuration ------------------------------------------------------------------------
    def config(self, **changes) -> None:
        """Set configuration fields on every machine the profile is run on."""
        fields = {f.name for f in dataclasses.fields(self.profile.default_config())}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ExtensionError(f"unknown configuration field {unknown[0]!r} (fields: "
                                 f"{', '.join(sorted(fields))})")
        self._config.update(changes)

    def apply(self) -> Profile:
        return self.profile.with_changes(
            transitions=dict(self._protocol.transitions), always=tuple(self._always.values()),
            sometimes=tuple(self._sometimes.values()),
            config_changes=tuple(sorted(self._config.items())),
            state_fields=tuple(self._fields), reads=tuple(self._reads),
            extensions=self.profile.extensions + (self.name,))


def _check_body(body) -> None:
    if not inspect.isgeneratorfunction(body):
        raise ExtensionError(f"transition {body.__name__!r} must be a generator (it yields its "
                             "checks, `yield s.require(ok, errno, label)`)")


def _predicate(ext: Extension, prop: Property, arity: int) -> Property:
    """A property whose predicate really is one: callable with `arity` arguments."""
    fn = prop.state or prop.step
    if not callable(fn):
        raise ExtensionError(f"property {prop.name!r} is not a predicate (got {type(fn).__name__})")
    try:
        inspect.signature(fn).bind(*range(arity))
    except TypeError:
        what = "a state view" if arity == 1 else "(call, errno, pre, post)"
        raise ExtensionError(f"property {prop.name!r} is not a predicate of {what}") from None
    return prop


def extend(profile: Profile, name: str, edits: Callable) -> Profile:
    """The profile with one extension's edits (`edits(ext)`) applied, staging-checked."""
    ext = Extension(profile, name)
    edits(ext)
    changed = ext.apply()
    try:
        check_profile(changed)
    except StagingError as err:
        raise ExtensionError(str(err)) from None
    return changed


def load(profile: Profile, path: str) -> Profile:
    """The profile with the extension file at `path` applied; ExtensionError names the problem."""
    file = Path(path)
    if not file.is_file():
        raise ExtensionError(f"extension {path}: no such file")
    try:
        namespace = runpy.run_path(str(file))
    except SyntaxError as err:
        raise ExtensionError(f"extension {path}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - any failure of the user's file, said in one line
        raise ExtensionError(f"extension {path}: {type(err).__name__}: {err}") from None
    edits = namespace.get("extend")
    if not callable(edits):
        raise ExtensionError(f"extension {path}: defines no `extend(ext)` function")
    try:
        return extend(profile, file.stem, edits)
    except ExtensionError as err:
        raise ExtensionError(f"extension {path}: {err}") from None
    except Exception as err:  # noqa: BLE001
        raise ExtensionError(f"extension {path}: {type(err).__name__}: {err}") from None


def mutate(profile: Profile, name: str) -> Profile:
    """The profile with one of its seeded bugs."""
    if name not in profile.mutants:
        raise ExtensionError(f"unknown mutant {name!r}; one of: {', '.join(sorted(profile.mutants))}")
    return extend(profile, f"mutant:{name}", profile.mutants[name].extend)
