"""Conformance: the model held against the reference hypervisor, three ways.

1. **Edge by edge, alongside the explorer.** `EdgeChecker` is an `on_edge` hook for
   `model.explorer.explore`. It keeps one reference machine per explored state (the parent's
   reference, cloned, with the BFS edge replayed on it), replays every tried call on a clone of the
   source state's reference and compares: the errno; for a failing call, that the reference did
   not change a single bit (`Hypervisor.identical`, i.e. `snapshot()` equality); for a successful
   call, that the abstraction of the new reference state (`model.abstraction.abstract`) equals the
   model's target. `explore_conformance()` runs the unreduced exploration (symmetry off: every
   concrete state has its own reference) with the checker.
2. **Long random walks.** `walk()` runs hypothesis' `RuleBasedStateMachine` with the model and
   the reference side by side on larger machines (16+ pages, 4+ VMs, 2 MiB blocks on a 1024-page
   machine), hundreds of calls per walk, and shrinks any disagreement to its shortest sequence.
3. **Scenario files.** `parse_scenario()` / `run_scenario()`: hand-written call sequences with
   their expected results (format in docs/conformance.md), run on both sides.

A disagreement names the call, both errnos and a diff of the two states in kernel vocabulary,
per page and per entity, differing cells only. Nothing here prints.

Host discipline. The model's host never finalizes a VM whose stage-2 still maps pages (a
host-side guard, docs/contract.md). The kernel, like the reference, accepts such a call, so a
model that drops the guard still agrees with the reference answer for answer. What conformance can
say is that the model's host made a call the disciplined host never makes: with `discipline=True`
(the config the user asked for), `EdgeChecker` reads the VM's stage-2 on the *reference* before a
`finalize_teardown_vm` and reports a "discipline" disagreement when it still maps pages.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from model.abstraction import Unrepresentable, abstract, invoke, reference_for
from model.reference import Hypervisor
from model.reference import pte as rpte
from model.states import (
    BLOCK_PAGES, IPA_PAGES, PA_PAGES, POISON, PROT_R, PROT_W, PROT_X, U16_MAX,
    U32_MAX, Config, Leaf, Life, PageState, State, describe_contents,
    describe_pte, guest_view, initial_state,
)
from model.transitions import (
    ERRNO_NAMES, TRANSITIONS, Call, Outcome, Transition, calls, errno_name, step,
)

ERRNO_CODES = {name: code for code, name in ERRNO_NAMES.items()}


def errno_text(errno: int | None) -> str:
    """`ok`, `-EPERM`, ... (or `-` when a side did not answer)."""
    return "-" if errno is None else errno_name(errno)


def call_text(call: Call) -> str:
    params = TRANSITIONS[call.name].params if call.name in TRANSITIONS else ()
    if len(params) != len(call.args):
        return f"{call.name}{call.args}"
    return f"{call.name}({', '.join(f'{p}={a}' for p, a in zip(params, call.args))})"


# -- disagreements and their diffs ----------------------------------------------------------------

class Cell(NamedTuple):
    """One differing cell: where (page 3, vm1 gfn 0, vm1), what (host, hyp, host stage-2, ...)."""

    where: str
    what: str
    model: str
    reference: str


@dataclass
class Disagreement:
    """The model and the reference answered one call differently."""

    kind: str  # errno | state | changed-on-failure | unrepresentable | discipline | expectation
    call: Call | None
    model_errno: int | None
    reference_errno: int | None
    cells: list = field(default_factory=list)
    trace: list = field(default_factory=list)  # calls leading to the call's source state
    note: str = ""
    where: str = ""  # scenario file:line, walk number, ...

    def headline(self) -> str:
        call = call_text(self.call) if self.call is not None else "(no call)"
        head = f"{call}: model {errno_text(self.model_errno)}, reference {errno_text(self.reference_errno)}"
        if self.where:
            head = f"{self.where}: {head}"
        return f"{head} [{self.kind}]"

    def text(self) -> str:
        """The disagreement as readable lines: headline, trace, note, one line per cell."""
        lines = [self.headline()]
        if self.trace:
            shown = self.trace[-8:]
            skipped = f"{len(self.trace) - len(shown)} earlier, then " if len(self.trace) > len(shown) else ""
            lines.append(f"  after {len(self.trace)} call(s): {skipped}"
                         + "; ".join(call_text(c) for c in shown))
        else:
            lines.append("  from the initial state")
        if self.note:
            lines.append(f"  {self.note}")
        if self.cells:
            w1 = max(len(c.where) for c in self.cells)
            w2 = max(len(c.what) for c in self.cells)
            w3 = max([len("model")] + [len(c.model) for c in self.cells])
            lines.append(f"  {'':{w1}}  {'':{w2}}  {'model':{w3}}  reference")
            lines.extend(f"  {c.where:{w1}}  {c.what:{w2}}  {c.model:{w3}}  {c.reference}" for c in self.cells)
        return "\n".join(lines)

    def signature(self) -> tuple:
        """What kind of disagreement this is, ignoring where and after what: (kind, call name,
        both errnos, the differing fields)."""
        return (self.kind, self.call.name if self.call else None, self.model_errno,
                self.reference_errno, tuple(sorted({c.what for c in self.cells})))

    def to_data(self) -> dict:
        return {
            "kind": self.kind, "where": self.where,
            "call": call_text(self.call) if self.call is not None else None,
            "model": errno_text(self.model_errno), "reference": errno_text(self.reference_errno),
            "trace": [call_text(c) for c in self.trace], "note": self.note,
            "cells": [c._asdict() for c in self.cells],
        }


_FIELD_WORDS = {
    "host": "host", "hyp": "hyp", "ffa": "ffa", "pins": "hyp_page.refcount",
    "count": "host_share_guest_count", "hyp_mapped": "hyp stage-1", "contents": "contents",
}
_PTE_FIELDS = ("pte_kind", "pte_type", "pte_owner", "pte_handle", "pte_gfn")


def _page_value(state: State, f: str, pfn: int) -> str:
    value = getattr(state, f)[pfn]
    if f in ("host", "hyp", "ffa"):
        return _state_name(value)
    if f == "hyp_mapped":
        return "mapped" if value else "unmapped"
    if f == "contents":
        return describe_contents(value)
    return str(value)


def _state_name(value) -> str:
    try:
        return PageState(value).name
    except ValueError:
        return f"?{value}"


def _prot_text(prot: int) -> str:
    return "".join(c if prot & bit else "-" for c, bit in (("R", PROT_R), ("W", PROT_W), ("X", PROT_X)))


def describe_leaf(leaf: Leaf | None) -> str:
    if leaf is None:
        return "none"
    if leaf.state == POISON:
        return "POISON"
    size = "page" if leaf.size == 1 else f"block of {leaf.size}"
    span = f", {leaf.span} left" if leaf.span != leaf.size else ""
    return f"{_state_name(leaf.state)} -> pfn {leaf.pfn} {_prot_text(leaf.prot)} ({size}{span})"


def diff_states(config: Config, model: State, reference: State) -> list[Cell]:
    """Every differing cell of two states: per page (each entity's view and the page's metadata and
    entries), then per VM (lifecycle, and each stage-2 leaf by gfn)."""
    cells = []
    pages = max(len(model.host), len(reference.host))
    guests = max(len(model.life), len(reference.life))
    for pfn in range(pages):
        where = f"page {pfn}"
        for f in ("host", "hyp", "ffa", "pins", "count"):
            a, b = _page_value(model, f, pfn), _page_value(reference, f, pfn)
            if a != b:
                cells.append(Cell(where, _FIELD_WORDS[f], a, b))
        for vm in range(guests):
            a = _state_name(guest_view(model, vm, pfn)) if vm < len(model.s2) else "-"
            b = _state_name(guest_view(reference, vm, pfn)) if vm < len(reference.s2) else "-"
            if a != b:
                cells.append(Cell(where, f"vm{vm}", a, b))
        if any(getattr(model, f)[pfn] != getattr(reference, f)[pfn] for f in _PTE_FIELDS):
            cells.append(Cell(where, "host stage-2", describe_pte(model, pfn), describe_pte(reference, pfn)))
        for f in ("hyp_mapped", "contents"):
            a, b = _page_value(model, f, pfn), _page_value(reference, f, pfn)
            if a != b:
                cells.append(Cell(where, _FIELD_WORDS[f], a, b))
    for vm in range(guests):
        where = f"vm{vm}"
        la = model.life[vm] if vm < len(model.life) else None
        lb = reference.life[vm] if vm < len(reference.life) else None
        if la != lb:
            cells.append(Cell(where, "life", Life(la).name if la is not None else "-",
                              Life(lb).name if lb is not None else "-"))
        a = {leaf.gfn: leaf for leaf in (model.s2[vm] if vm < len(model.s2) else ())}
        b = {leaf.gfn: leaf for leaf in (reference.s2[vm] if vm < len(reference.s2) else ())}
        for gfn in sorted(set(a) | set(b)):
            if a.get(gfn) != b.get(gfn):
                cells.append(Cell(f"{where} gfn {gfn}", "stage-2", describe_leaf(a.get(gfn)),
                                  describe_leaf(b.get(gfn))))
    return cells


# -- host discipline, read on the reference ---------------------------------------------------------

def _valid_leaves(hv: Hypervisor, vm: int) -> list:
    if not 0 <= vm < hv.nr_vms():
        return []
    return [leaf for leaf in hv.guest_leaves(vm) if rpte.kvm_pte_valid(leaf.pte)]


def discipline_breach(hv: Hypervisor, call: Call) -> Disagreement | None:
    """A call the disciplined host never makes, judged on the reference: finalize_teardown_vm of
    a VM whose stage-2 still maps pages (docs/contract.md, "Host discipline"). The reference's
    answer (made on a clone) goes in the disagreement: it is what the kernel would do."""
    if call.name != "finalize_teardown_vm":
        return None
    vm = call.args[0]
    held = _valid_leaves(hv, vm)
    if not held:
        return None
    cells = [Cell(f"vm{vm} gfn {leaf.gfn}", "stage-2", "(host finalizes anyway)",
                  f"{_state_name(rpte.pkvm_getstate(leaf.pte))} -> pfn "
                  f"{rpte.kvm_pte_to_phys(leaf.pte) >> rpte.PAGE_SHIFT}") for leaf in held]
    try:
        answer = invoke(hv.clone(), call)
    except Exception:  # noqa: BLE001 - the answer is only informative here
        answer = None
    return Disagreement("discipline", call, None, answer, cells,
                        note=f"the model's host finalizes vm{vm} while its stage-2 still maps "
                             f"{len(held)} page(s): the host discipline forbids it (pages stranded)")


# -- one call on both sides --------------------------------------------------------------------------

def compare_call(config: Config, state: State, outcome: Outcome, hv: Hypervisor, call: Call,
                 pristine: Hypervisor | None = None) -> tuple[Disagreement | None, int]:
    """Make `call` on `hv` (in a state abstracting to `state`) and compare with the model's outcome.

    `pristine` is an untouched copy of `hv` for the bit-for-bit check of a failing call (a clone is
    taken when it is None). Returns (disagreement or None, the reference's errno); `hv` is left in
    the reference's new state."""
    before = pristine if pristine is not None else hv.clone()
    model_errno = outcome.errno
    try:
        ref_errno = invoke(hv, call)
    except Exception as err:  # noqa: BLE001 - a crash of the reference is a finding, not an abort
        return Disagreement("reference-error", call, model_errno, None,
                            note=f"the reference raised {err!r}"), -1
    if ref_errno:
        if not hv.identical(before):
            return _changed_on_failure(config, call, model_errno, ref_errno, before, hv), ref_errno
        if ref_errno != model_errno or (outcome.state is not state and outcome.state != state):
            return Disagreement("errno" if ref_errno != model_errno else "state", call, model_errno,
                                ref_errno, diff_states(config, outcome.state, state)), ref_errno
        return None, ref_errno
    try:
        new = abstract(hv)
    except Unrepresentable as err:
        return Disagreement("unrepresentable", call, model_errno, ref_errno,
                            note=f"the reference reached a state no model state describes: {err}"), 0
    if model_errno != 0 or new != outcome.state:
        return Disagreement("errno" if model_errno else "state", call, model_errno, ref_errno,
                            diff_states(config, outcome.state, new)), 0
    return None, 0


def _changed_on_failure(config, call, model_errno, ref_errno, before, after) -> Disagreement:
    try:
        cells = diff_states(config, abstract(before), abstract(after))
        note = "the reference refused the call but changed its state"
        if not cells:
            note += " (page-table pool or entries outside the abstraction)"
    except Unrepresentable as err:
        cells, note = [], f"the reference refused the call but changed its state: {err}"
    return Disagreement("changed-on-failure", call, model_errno, ref_errno,
                        [c._replace(model=f"before: {c.model}", reference=f"after: {c.reference}")
                         for c in cells], note=note)


# -- 1. edge by edge, alongside the explorer -----------------------------------------------------

class _Stop(Exception):
    """Raised from the edge hook to end an exploration once enough disagreements were found."""


class EdgeChecker:
    """`on_edge(src, call, outcome)` for the explorer: replays every tried call on the reference.

    One reference per explored state, taken from its BFS parent's reference with the BFS edge
    replayed (the first edge that reaches the state). A source state is used once by a BFS, so its
    reference is dropped after its calls (memory stays at about one BFS frontier). References are
    cloned copy-on-write, so a failing call costs one reference call and one bit-for-bit compare;
    the abstraction is computed once per successful call."""

    def __init__(self, config: Config, *, discipline: bool | None = None, limit: int | None = None):
        self.config = config
        self.discipline = config.host_discipline if discipline is None else discipline
        self.limit = limit
        self.disagreements: list[Disagreement] = []
        self.checked = self.failing = self.skipped = 0
        s0 = initial_state(config)
        root = reference_for(config)
        self._refs: dict[State, Hypervisor] = {}
        self._seen: set = {s0}  # states given a reference
        self._diverged: set = set()  # states the model reached only through disagreeing edges
        self._parent: dict[State, tuple] = {s0: None}
        self._src = None
        self._pristine: Hypervisor | None = None
        self._work: Hypervisor | None = None
        try:
            start = abstract(root, config)
        except Unrepresentable as err:
            self._record(Disagreement("unrepresentable", None, None, None,
                                      note=f"the fresh reference: {err}"), s0)
            return
        if start != s0:
            self._record(Disagreement("state", None, None, None, diff_states(config, s0, start),
                                      note="the fresh reference is not the model's initial state"), s0)
            return
        self._refs[s0] = root

    def trace(self, state: State) -> list[Call]:
        """The calls of the BFS tree from the initial state to a state with a reference."""
        out = []
        link = self._parent.get(state)
        while link is not None:
            state, call = link
            out.append(call)
            link = self._parent.get(state)
        out.reverse()
        return out

    def _record(self, d: Disagreement, src: State) -> None:
        d.trace = self.trace(src)
        self.disagreements.append(d)
        if self.limit is not None and len(self.disagreements) >= self.limit:
            raise _Stop()

    def __call__(self, src: State, call: Call, outcome: Outcome) -> None:
        if src is not self._src:
            self._src = src
            self._pristine = self._refs.pop(src, None)
            self._work = None
        pristine = self._pristine
        if pristine is None:
            if src not in self._diverged:
                raise RuntimeError(
                    "EdgeChecker: an edge from a state no checked edge reached; conformance needs "
                    "the unreduced exploration, explore(config, symmetry=False, on_edge=checker)")
            self.skipped += 1  # the source was reached only through disagreeing edges
            if outcome.errno == 0 and outcome.state not in self._seen:
                self._diverged.add(outcome.state)
            return
        self.checked += 1
        if self.discipline and call.name == "finalize_teardown_vm":
            breach = discipline_breach(pristine, call)
            if breach is not None:
                breach.model_errno = outcome.errno
                if outcome.errno == 0 and outcome.state not in self._seen:
                    self._diverged.add(outcome.state)
                self._record(breach, src)
                return
        work = self._work if self._work is not None else pristine.clone()
        d, ref_errno = compare_call(self.config, src, outcome, work, call, pristine)
        if ref_errno:
            self.failing += 1
        self._work = work if ref_errno and d is None else None
        if d is not None:
            if outcome.errno == 0 and outcome.state not in self._seen:
                self._diverged.add(outcome.state)
            self._record(d, src)
            return
        target = outcome.state
        if not ref_errno and target not in self._seen:
            self._seen.add(target)
            self._refs[target] = work
            self._parent[target] = (src, call)


@dataclass
class ExplorationReport:
    config: Config
    states: int
    edges_checked: int
    failing_calls: int
    skipped: int
    complete: bool
    seconds: float
    disagreements: list

    def to_data(self) -> dict:
        return {"pages": self.config.ram, "guests": list(self.config.guests), "states": self.states,
                "edges_checked": self.edges_checked, "failing_calls": self.failing_calls,
                "skipped": self.skipped, "complete": self.complete,
                "seconds": round(self.seconds, 3),
                "disagreements": [d.to_data() for d in self.disagreements]}


def explore_conformance(config: Config, *, transitions: dict[str, Transition] = TRANSITIONS,
                        discipline: bool | None = None, limit: int | None = 20,
                        max_states: int | None = None, progress: Callable | None = None
                        ) -> ExplorationReport:
    """Explore `config` under `transitions` (symmetry off) and replay every tried call on the
    reference. `discipline` is the host discipline of the config the user asked for (a mutant may
    have dropped it from `config`). Stops after `limit` disagreements."""
    from model.explorer import explore  # the explorer drives; conformance only hooks in

    start = time.perf_counter()
    checker = EdgeChecker(config, discipline=discipline, limit=limit)
    states, complete = 0, True
    if not checker.disagreements:
        try:
            result = explore(config, transitions=transitions, symmetry=False, properties=[],
                             on_edge=checker, graph_checks=False, max_states=max_states,
                             progress=progress)
            states, complete = len(result.states), result.complete
        except _Stop:
            complete = False
        except Exception as err:  # noqa: BLE001 - the model side crashed: report where
            complete = False
            src = checker._src if checker._src is not None else initial_state(config)
            crashing = None
            for call in calls(config):
                try:
                    step(config, src, call, transitions)
                except Exception:  # noqa: BLE001
                    crashing = call
                    break
            checker.disagreements.append(Disagreement(
                "model-error", crashing, None, None, trace=checker.trace(src),
                note=f"the model raised {err!r} (the explorer stopped)"))
    states = states or len(checker._seen)  # stopped early: the states reached so far
    return ExplorationReport(config, states, checker.checked, checker.failing, checker.skipped,
                             complete, time.perf_counter() - start, checker.disagreements)


# -- 2. long random walks ------------------------------------------------------------------------------

def unbounded(transitions: dict[str, Transition]) -> dict[str, Transition]:
    """The protocol without its exploration bounds (the pin limit): walks and scenarios are not
    bounded explorations, they may pin up to the refcount's width. Host disciplines stay."""
    return {name: replace(t, bound=None) if t.bound else t for name, t in transitions.items()}


SMALL_WALK = Config(ram=16, mmio=2, guests=(True, False, True, False, True), gfns=16,
                    nrs=(1, 2, BLOCK_PAGES), max_pins=U16_MAX)
BLOCK_WALK = Config(ram=1024, mmio=2, guests=(True, False, False, True), gfns=1024,
                    nrs=(1, 2, BLOCK_PAGES), max_pins=U16_MAX)
NARROW_WALK = Config(ram=16, mmio=1, guests=(False, False, True, False), gfns=16,
                     nrs=(1, 2), pin_max=3, count_max=2, max_pins=3)
WALK_CONFIGS = (SMALL_WALK, BLOCK_WALK, NARROW_WALK)


def _walk_values(config: Config) -> dict:
    """Argument values a walk draws from, repeats weighting the ones that can succeed."""
    ram, pages = config.ram, config.pages
    low = list(range(min(ram, 6))) * 3
    pfns = low + [ram - 1, ram - 1, ram, pages, PA_PAGES - 1, PA_PAGES, 2**64 - 1]
    gfns = list(range(4)) * 3 + [5, 7, IPA_PAGES - 1, IPA_PAGES]
    if ram >= 2 * BLOCK_PAGES:
        pfns += [BLOCK_PAGES] * 4 + [BLOCK_PAGES + 1, BLOCK_PAGES + 3, 2 * BLOCK_PAGES - 1]
        gfns += [BLOCK_PAGES] * 4 + [BLOCK_PAGES + 1, 2 * BLOCK_PAGES, 2 * BLOCK_PAGES + 5,
                                     IPA_PAGES - BLOCK_PAGES]
    guests = len(config.guests)
    return {
        "pfn": pfns, "gfn": gfns,
        "nr": [1] * 6 + [2, 3, 0, BLOCK_PAGES, BLOCK_PAGES, PA_PAGES],
        "vm": list(range(guests)) * 3 + [guests, 2**64 - 1],
        "prot": [PROT_R | PROT_W] * 3 + [PROT_R, PROT_R | PROT_W | PROT_X, PROT_W, 0, 8, 15],
    }


# Random arguments: start_teardown_vm is left to the targeted calls (late in a walk), so that
# most of a walk happens while the VMs run.
_WALK_WEIGHTS = {"start_teardown_vm": 0, "finalize_teardown_vm": 1, "reclaim_dying_guest_page": 2}


def call_strategy(config: Config, transitions: dict[str, Transition] = TRANSITIONS):
    """A hypothesis strategy of calls with arguments drawn from fixed, boundary-heavy value sets
    (mostly rejections)."""
    from hypothesis import strategies as st

    values = {kind: pick(v) for kind, v in _walk_values(config).items()}
    names = [name for name in transitions for _ in range(_WALK_WEIGHTS.get(name, 3))]

    def args_of(name):
        return st.tuples(*[values[p] for p in transitions[name].params]).map(
            lambda args: Call(name, args))

    return pick(names).flatmap(args_of)


def pick(values: list):
    """A nearly uniform choice (hypothesis' sampled_from draws the first value far more often)."""
    from hypothesis import strategies as st

    return st.integers(0, 0xFFFF).map(lambda i: values[i % len(values)])


def targeted_calls(config: Config, state: State, late: bool) -> list[Call]:
    """Calls likely to succeed in `state`, read off the model state: every mapped guest entry,
    every page the hyp or FF-A holds, and shares and donations of host pages to free gfns.
    `late`: start tearing VMs down too."""
    out = []
    prot = PROT_R | PROT_W
    guests = range(len(config.guests))
    running = [vm for vm in guests if state.life[vm] == Life.RUNNING]
    focus = [p for p in range(min(config.ram, 8))]
    if config.ram >= 2 * BLOCK_PAGES:
        focus += [BLOCK_PAGES, BLOCK_PAGES + 1, 2 * BLOCK_PAGES - 1]
    for vm in guests:
        used = set()
        for leaf in state.s2[vm]:
            g = leaf.gfn
            used.update(range(g, g + leaf.span))
            out += [Call("guest_share_host", (vm, g)), Call("guest_unshare_host", (vm, g)),
                    Call("guest_write", (vm, g)), Call("hole_punch", (vm, g)),
                    Call("reclaim_dying_guest_page", (vm, g)),
                    Call("host_unshare_guest", (g, leaf.size, vm))]
            if leaf.state != POISON:
                out.append(Call("host_force_reclaim_page_guest", (leaf.pfn,)))
        if vm in running:
            free = next(g for g in range(len(used) + 1) if g not in used)
            for p in focus:
                if state.host[p] in (PageState.OWNED, PageState.SHARED_OWNED):
                    kind = "host_donate_guest" if config.guests[vm] else "host_share_guest"
                    args = (p, free, vm) if config.guests[vm] else (p, free, 1, vm, prot)
                    out.append(Call(kind, args))
            if not config.guests[vm] and config.ram >= 2 * BLOCK_PAGES:
                base = BLOCK_PAGES * (1 + len([1 for leaf in state.s2[vm] if leaf.size > 1]))
                out.append(Call("host_share_guest", (BLOCK_PAGES, base, BLOCK_PAGES, vm, prot)))
        elif state.life[vm] == Life.DYING and not any(leaf.state != POISON for leaf in state.s2[vm]):
            out.append(Call("finalize_teardown_vm", (vm,)))
    for p in focus:
        if state.hyp[p] == PageState.SHARED_BORROWED:
            out += [Call("hyp_pin_shared_mem", (p,)), Call("hyp_unpin_shared_mem", (p,)),
                    Call("host_unshare_hyp", (p,))]
        elif state.hyp[p] == PageState.OWNED:
            out.append(Call("hyp_donate_host", (p, 1)))
        if state.ffa[p] == PageState.SHARED_BORROWED:
            out.append(Call("host_unshare_ffa", (p, 1)))
        if state.host[p] == PageState.OWNED:
            out += [Call("host_share_hyp", (p,)), Call("host_share_ffa", (p, 1)),
                    Call("host_donate_hyp", (p, 1))]
        out.append(Call("host_write", (p,)))
    if late:
        out += [Call("start_teardown_vm", (vm,)) for vm in running]
    return [c for c in out if c.name in TRANSITIONS]


def side_by_side(config: Config, transitions: dict[str, Transition], disciplined: bool,
                 state: State, hv: Hypervisor, call: Call) -> tuple[Outcome | None, Disagreement | None]:
    """One call on the model (in `state`) and on `hv` (changed in place): the model's outcome
    (None: the host never makes the call) and the disagreement, if any."""
    try:
        outcome = step(config, state, call, transitions)
    except Exception as err:  # noqa: BLE001 - a model crash is a finding
        try:
            answer = invoke(hv.clone(), call)
        except Exception:  # noqa: BLE001
            answer = None
        return None, Disagreement("model-error", call, None, answer, note=f"the model raised {err!r}")
    if outcome is None:
        return None, None
    if disciplined:
        breach = discipline_breach(hv, call)
        if breach is not None:
            breach.model_errno = outcome.errno
            return outcome, breach
    d, _ = compare_call(config, state, outcome, hv, call)
    return outcome, d


def replay(config: Config, calls: list[Call], transitions: dict[str, Transition] = TRANSITIONS,
           discipline: bool | None = None) -> Disagreement | None:
    """The first disagreement of a call sequence run from the initial state, if any (calls the
    host never makes are skipped); its trace is the calls before it."""
    disciplined = config.host_discipline if discipline is None else discipline
    transitions = unbounded(transitions)
    state, hv, done = initial_state(config), reference_for(config), []
    for call in calls:
        outcome, d = side_by_side(config, transitions, disciplined, state, hv, call)
        if d is not None:
            d.trace = done
            return d
        if outcome is not None:
            done.append(call)
            state = outcome.state
    return None


def minimize(config: Config, d: Disagreement, transitions: dict[str, Transition] = TRANSITIONS,
             discipline: bool | None = None) -> Disagreement:
    """A shortest-found sequence still showing the same kind of disagreement on the same call:
    chunks of the trace, then single calls, are dropped while the disagreement survives (the
    result is 1-minimal: dropping any one call loses it)."""
    seq = list(d.trace) + [d.call]
    want = (d.kind, d.call.name)
    best = d
    chunk = max(1, len(seq) // 2)
    while True:
        i = 0
        while i < len(seq) - 1:  # the disagreeing call itself stays last
            candidate = seq[:i] + seq[i + chunk:]
            if len(candidate) < 1 or candidate[-1] != seq[-1]:
                i += chunk
                continue
            found = replay(config, candidate, transitions, discipline)
            if found is not None and (found.kind, found.call.name) == want:
                seq, best = list(found.trace) + [found.call], found
            else:
                i += chunk
        if chunk == 1:
            return best
        chunk //= 2


class WalkDisagreement(AssertionError):
    """Raised inside a walk; carries the disagreement with the (shrunk) sequence as its trace."""

    def __init__(self, disagreement: Disagreement):
        super().__init__(disagreement.text())
        self.disagreement = disagreement


def walk_machine(config: Config, transitions: dict[str, Transition] = TRANSITIONS,
                 discipline: bool | None = None, counter: list | None = None, late_after: int = 150):
    """A RuleBasedStateMachine class: the model and the reference, side by side, on one machine.

    Rules: a call with random arguments, and (twice as likely) a call picked among those likely
    to succeed in the current state; VMs start being torn down after `late_after` calls."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    disciplined = config.host_discipline if discipline is None else discipline
    tally = counter if counter is not None else [0]
    transitions = unbounded(transitions)

    class ConformanceWalk(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.state = initial_state(config)
            self.hv = reference_for(config)
            self.calls: list[Call] = []

        @rule(call=call_strategy(config, transitions))
        def random_call(self, call):
            self.make(call)

        @rule(data=st.data())
        def targeted_call(self, data):
            candidates = targeted_calls(config, self.state, late=len(self.calls) > late_after)
            if candidates:
                self.make(data.draw(pick(candidates), label="call"))

        @rule(data=st.data())
        def another_targeted_call(self, data):  # two targeted rules: twice the random rule's weight
            self.targeted_call(data)

        def make(self, call):
            outcome, d = side_by_side(config, transitions, disciplined, self.state, self.hv, call)
            if d is not None:
                d.trace = list(self.calls)
                raise WalkDisagreement(d)
            if outcome is not None:
                tally[0] += 1
                self.calls.append(call)
                self.state = outcome.state

    return ConformanceWalk


@dataclass
class WalkReport:
    walks: int
    calls: int
    seconds: float
    disagreements: list
    configs: list

    def to_data(self) -> dict:
        return {"walks": self.walks, "calls": self.calls, "seconds": round(self.seconds, 3),
                "machines": self.configs,
                "disagreements": [d.to_data() for d in self.disagreements]}


def walk(configs: Iterable[Config] = WALK_CONFIGS, *, walks: int = 30, steps: int = 300,
         transitions: dict[str, Transition] = TRANSITIONS, discipline: bool | None = None,
         seed: int | None = None, shrink_seconds: float = 20, stop_at_first: bool = False
         ) -> WalkReport:
    """`walks` random walks of `steps` calls, spread over the configs. A disagreement ends the
    walks of that machine (of all machines with `stop_at_first`); hypothesis shrinks it (for at
    most `shrink_seconds`: long walks replay slowly), then `minimize` drops every call it can."""
    from hypothesis import HealthCheck, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.internal.conjecture import engine
    from hypothesis.reporting import with_reporter
    from hypothesis.stateful import get_state_machine_test

    configs = list(configs)
    start = time.perf_counter()
    counter = [0]
    found = []
    for index, config in enumerate(configs):
        share = walks // len(configs) + (1 if index < walks % len(configs) else 0)
        if share == 0:
            continue
        machine = walk_machine(config, transitions, discipline, counter, late_after=steps // 2)
        run = get_state_machine_test(
            machine, _min_steps=steps,
            settings=settings(max_examples=share, stateful_step_count=steps, deadline=None,
                              database=None, derandomize=seed is None, print_blob=False,
                              suppress_health_check=list(HealthCheck)))
        if seed is not None:
            run = hypothesis_seed(seed + index)(run)
        cap = getattr(engine, "MAX_SHRINKING_SECONDS", None)
        try:
            engine.MAX_SHRINKING_SECONDS = shrink_seconds
            with with_reporter(lambda _text: None):
                run()
        except WalkDisagreement as err:
            d = minimize(config, err.disagreement, transitions, discipline)
            d.where = f"walk on {_machine_text(config)}"
            found.append(d)
            if stop_at_first:
                break
        finally:
            if cap is not None:
                engine.MAX_SHRINKING_SECONDS = cap
    return WalkReport(walks, counter[0], time.perf_counter() - start, found,
                      [_machine_text(c) for c in configs])


def _machine_text(config: Config) -> str:
    kinds = ",".join("protected" if p else "np" for p in config.guests)
    extra = ""
    if config.pin_max != U16_MAX:
        extra += f" pin_max={config.pin_max}"
    if config.count_max != U32_MAX:
        extra += f" count_max={config.count_max}"
    return f"ram={config.ram} mmio={config.mmio} guests={kinds}{extra}"


# -- 3. scenario files -------------------------------------------------------------------------------

class ScenarioError(ValueError):
    """A malformed scenario file: the message names the file and the line."""


class CallLine(NamedTuple):
    line: int
    call: Call
    expected: int  # 0 or a negative errno


class ExpectLine(NamedTuple):
    line: int
    subject: tuple  # ("page", pfn) | ("vm", vm) | ("entry", vm, gfn)
    checks: tuple  # (key, expected text) pairs
    text: str


@dataclass
class Scenario:
    path: str
    config: Config
    steps: list  # CallLine | ExpectLine, in file order
    discipline: bool = True

    @property
    def lines(self) -> int:
        return len(self.steps)


_CONSTANTS = {"PA_PAGES": PA_PAGES, "IPA_PAGES": IPA_PAGES, "BLOCK": BLOCK_PAGES,
              "BLOCK_PAGES": BLOCK_PAGES, "U16_MAX": U16_MAX, "U32_MAX": U32_MAX,
              "U64_MAX": 2**64 - 1}
_TERM = re.compile(r"\s*([+-]?)\s*(0x[0-9a-fA-F_]+|\d[\d_]*|[A-Za-z_][A-Za-z_0-9]*)\s*")
_PAGE_KEYS = ("host", "hyp", "ffa", "pins", "count", "pte", "hyp_stage1", "contents")
_STATE_NAMES = {s.name for s in PageState}


def _value(text: str, kind: str, consts: dict) -> int:
    """An argument: integers (decimal, 0x), constants, + and -; prot also as letters (RW, RWX)."""
    if kind == "prot" and re.fullmatch(r"[RWX]+", text):
        return sum({"R": PROT_R, "W": PROT_W, "X": PROT_X}[c] for c in set(text))
    pos, total = 0, 0
    if not text:
        raise ValueError("empty value")
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or (pos and not m.group(1)):
            raise ValueError(f"cannot read {text!r}")
        token = m.group(2)
        if token[0].isdigit():
            n = int(token.replace("_", ""), 0)
        elif token in consts:
            n = consts[token]
        else:
            raise ValueError(f"unknown name {token!r} in {text!r}")
        total += -n if m.group(1) == "-" else n
        pos = m.end()
    return total


def _errno_value(text: str) -> int:
    if text in ("ok", "0"):
        return 0
    name = text.lstrip("-")
    if text.startswith("-") and ("-" + name) in {f"-{n}" for n in ERRNO_CODES}:
        return ERRNO_CODES[name]
    raise ValueError(f"expected result {text!r} is neither `ok` nor `-ERRNO`")


def _machine(fields: list[str]) -> tuple[Config, bool]:
    opts = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"machine option {item!r} is not key=value")
        if key in opts:
            raise ValueError(f"machine option {key} given twice")
        opts[key] = value
    unknown = set(opts) - {"ram", "mmio", "guests", "pin_max", "count_max", "discipline"}
    if unknown:
        raise ValueError(f"unknown machine option(s) {', '.join(sorted(unknown))}")
    if "ram" not in opts:
        raise ValueError("machine needs ram=N")
    kinds = {"protected": True, "np": False}
    guests = tuple(kinds[g] if g in kinds else _bad_guest(g)
                   for g in opts.get("guests", "").split(",") if g)
    ints = {}
    for key in ("ram", "mmio", "pin_max", "count_max"):
        if key in opts:
            if not re.fullmatch(r"\d+", opts[key]):
                raise ValueError(f"machine option {key}={opts[key]!r} is not a number")
            ints[key] = int(opts[key])
    discipline = {"on": True, "off": False}.get(opts.get("discipline", "on"))
    if discipline is None:
        raise ValueError("discipline must be on or off")
    pin_max = ints.get("pin_max", U16_MAX)
    config = Config(ram=ints["ram"], mmio=ints.get("mmio", 0), guests=guests, pin_max=pin_max,
                    max_pins=pin_max, count_max=ints.get("count_max", U32_MAX),
                    host_discipline=discipline)
    config.validate()
    return config, discipline


def _bad_guest(text):
    raise ValueError(f"guest kind {text!r} is neither protected nor np")


def _expect(text: str, config: Config) -> tuple[tuple, tuple]:
    head, sep, body = text.partition(":")
    if not sep:
        raise ValueError("expect needs `expect <subject>: <checks>`")
    words = head.split()
    pairs = []
    for item in body.split():
        key, eq, value = item.partition("=")
        pairs.append((key, value) if eq else (None, item))
    if len(words) == 2 and words[0] == "page":
        pfn = _value(words[1], "pfn", _CONSTANTS)
        if not 0 <= pfn < config.pages:
            raise ValueError(f"page {pfn} is not a RAM or MMIO page of the machine")
        guests = {f"vm{v}" for v in range(len(config.guests))}
        for key, value in pairs:
            if key is None or (key not in _PAGE_KEYS and key not in guests):
                raise ValueError(f"page check {key or value!r}: use key=value with key in "
                                 f"{', '.join(_PAGE_KEYS)} or vmN")
        pairs = [(k, str(_value(v, k, _CONSTANTS)) if k in ("pins", "count") else v) for k, v in pairs]
        return ("page", pfn), tuple(pairs)
    vm = _vm_word(words[0], config) if words else None
    if len(words) == 1 and vm is not None:
        for key, value in pairs:
            if key != "life" or value not in Life.__members__:
                raise ValueError("vm check must be life=RUNNING|DYING|TORN_DOWN")
        return ("vm", vm), tuple(pairs)
    if len(words) == 3 and vm is not None and words[1] == "gfn":
        gfn = _value(words[2], "gfn", _CONSTANTS)
        if not pairs or pairs[0][0] is not None or (
                pairs[0][1] not in _STATE_NAMES and pairs[0][1] != "none"):
            raise ValueError("entry check starts with a page state (OWNED, ..., POISON) or none")
        for key, value in pairs[1:]:
            if key not in ("pfn", "prot", "size"):
                raise ValueError(f"entry check {key or value!r}: use pfn=, prot=, size=")
        pairs = [(k, str(_value(v, k, _CONSTANTS)) if k in ("pfn", "size") else v) for k, v in pairs]
        return ("entry", vm, gfn), tuple(pairs)
    raise ValueError("expect subject must be `page P`, `vmN` or `vmN gfn G`")


def _vm_word(word: str, config: Config) -> int | None:
    m = re.fullmatch(r"vm(\d+)", word)
    if not m:
        return None
    vm = int(m.group(1))
    if vm >= len(config.guests):
        raise ValueError(f"vm{vm}: the machine has {len(config.guests)} guest(s)")
    return vm


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Read a scenario; any malformed line raises ScenarioError naming file and line."""
    config, discipline, steps = None, True, []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            words = line.split()
            if words[0] == "machine":
                if config is not None:
                    raise ValueError("a second machine line")
                config, discipline = _machine(words[1:])
                continue
            if config is None:
                raise ValueError("the first line must be `machine ram=N [mmio=M] [guests=...]`")
            if words[0] == "expect":
                subject, checks = _expect(line[len("expect"):].strip(), config)
                steps.append(ExpectLine(number, subject, checks, line))
                continue
            steps.append(_call_line(number, line, config))
        except ValueError as err:
            raise ScenarioError(f"{path}:{number}: {err}") from None
    if config is None:
        raise ScenarioError(f"{path}: no machine line")
    return Scenario(path, config, steps, discipline)


def _call_line(number: int, line: str, config: Config) -> CallLine:
    body, arrow, result = line.partition("->")
    if not arrow:
        raise ValueError("a call line is `name key=value ... -> result`")
    words = body.split()
    name = words[0]
    if name not in TRANSITIONS:
        raise ValueError(f"unknown call {name!r}")
    params = TRANSITIONS[name].params
    consts = {**_CONSTANTS, "RAM": config.ram, "MMIO": config.ram, "HOLE": config.pages}
    given = {}
    for item in words[1:]:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"argument {item!r} is not key=value")
        if key not in params:
            raise ValueError(f"{name} has no parameter {key!r} (parameters: {', '.join(params)})")
        if key in given:
            raise ValueError(f"parameter {key} given twice")
        given[key] = _value(value, key, consts)
    missing = [p for p in params if p not in given]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}")
    if any(v < 0 for v in given.values()):
        raise ValueError("arguments are unsigned")
    return CallLine(number, Call(name, tuple(given[p] for p in params)), _errno_value(result.strip()))


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    return parse_scenario(path.read_text(), str(path))


def _page_check(state: State, pfn: int, key: str) -> str:
    if key in ("host", "hyp", "ffa"):
        return _state_name(getattr(state, key)[pfn])
    if key in ("pins", "count"):
        return str(getattr(state, key)[pfn])
    if key == "pte":
        return describe_pte(state, pfn)
    if key == "hyp_stage1":
        return "mapped" if state.hyp_mapped[pfn] else "unmapped"
    if key == "contents":
        return describe_contents(state.contents[pfn])
    return _state_name(guest_view(state, int(key[2:]), pfn))


def _entry_checks(state: State, vm: int, gfn: int, checks: tuple) -> list[tuple[str, str, str]]:
    leaf = next((leaf for leaf in state.s2[vm] if leaf.gfn <= gfn < leaf.gfn + leaf.span), None)
    out = []
    got_state = "none" if leaf is None else _state_name(leaf.state)
    out.append(("state", checks[0][1], got_state))
    for key, want in checks[1:]:
        if leaf is None:
            got = "-"
        elif key == "pfn":
            got = str(leaf.pfn + gfn - leaf.gfn if leaf.state != POISON else 0)
        elif key == "prot":
            got = _prot_text(leaf.prot)
            want = _prot_text(_value(want, "prot", _CONSTANTS))
        else:
            got = str(leaf.size)
        out.append((key, want, got))
    return out


def check_expectation(state: State, exp: ExpectLine) -> list[tuple[str, str, str]]:
    """(what, expected, got) of every check of an expect line that does not hold on state."""
    kind = exp.subject[0]
    if kind == "page":
        pfn = exp.subject[1]
        results = [(k, v, _page_check(state, pfn, k)) for k, v in exp.checks]
    elif kind == "vm":
        results = [("life", v, Life(state.life[exp.subject[1]]).name) for _k, v in exp.checks]
    else:
        results = _entry_checks(state, exp.subject[1], exp.subject[2], exp.checks)
    return [(what, want, got) for what, want, got in results if want != got]


@dataclass
class ScenarioReport:
    path: str
    lines: int
    calls: int
    disagreements: list

    def to_data(self) -> dict:
        return {"path": self.path, "lines": self.lines, "calls": self.calls,
                "disagreements": [d.to_data() for d in self.disagreements]}


def run_scenario(scenario: Scenario, *, transitions: dict[str, Transition] = TRANSITIONS,
                 config: Config | None = None) -> ScenarioReport:
    """Run a scenario on the model (under `transitions`, on `config`, default the scenario's)
    and on the reference, line by line: each side must give the expected result, the two sides
    must agree on the new state, and every expect line must hold on both."""
    config = config or scenario.config
    transitions = unbounded(transitions)
    state = initial_state(config)
    hv = reference_for(config)
    found: list[Disagreement] = []
    done: list[Call] = []
    made = 0
    for item in scenario.steps:
        where = f"{scenario.path}:{item.line}"
        if isinstance(item, ExpectLine):
            cells = []
            try:
                ref_state = abstract(hv)
            except Unrepresentable as err:
                found.append(Disagreement("unrepresentable", None, None, None, where=where,
                                          note=str(err), trace=list(done)))
                break
            for side, st in (("model", state), ("reference", ref_state)):
                for what, want, got in check_expectation(st, item):
                    cells.append(Cell(side, what, f"expected {want}", f"got {got}"))
            if cells:
                found.append(Disagreement("expectation", None, None, None, cells, list(done),
                                          note=f"`{item.text}` does not hold", where=where))
            continue
        made += 1
        call = item.call
        try:
            outcome = step(config, state, call, transitions)
        except Exception as err:  # noqa: BLE001 - a model crash is a finding
            found.append(Disagreement("model-error", call, None, None, trace=list(done),
                                      where=where, note=f"the model raised {err!r}"))
            break
        if outcome is None:
            found.append(Disagreement(
                "discipline", call, None, None, trace=list(done), where=where,
                note="the model's host never makes this call here (host discipline); "
                     "declare `discipline=off` on the machine line to make it"))
            break
        if scenario.discipline and config.host_discipline is False:
            breach = discipline_breach(hv, call)
            if breach is not None:
                breach.model_errno, breach.where, breach.trace = outcome.errno, where, list(done)
                found.append(breach)
                break
        d, ref_errno = compare_call(config, state, outcome, hv, call)
        if d is not None:
            d.where, d.trace = where, list(done)
            found.append(d)
            break  # the two sides no longer describe the same machine
        if ref_errno != item.expected:
            found.append(Disagreement(
                "expectation", call, outcome.errno, ref_errno, trace=list(done), where=where,
                note=f"the scenario expects {errno_text(item.expected)}; both sides answer "
                     f"{errno_text(ref_errno)}"))
        done.append(call)
        state = outcome.state
    return ScenarioReport(scenario.path, scenario.lines, made, found)


def shipped_scenarios() -> list[Path]:
    """The scenario files shipped with the package (model/scenarios/*.scn)."""
    return sorted((Path(__file__).parent / "scenarios").glob("*.scn"))


def run_scenarios(paths: Iterable[str | Path], *, transitions: dict[str, Transition] = TRANSITIONS,
                  mutant_config: Callable | None = None) -> list[ScenarioReport]:
    """Parse every file first (a malformed one raises ScenarioError before anything runs)."""
    scenarios = [load_scenario(p) for p in paths]
    return [run_scenario(s, transitions=transitions,
                         config=mutant_config(s.config) if mutant_config else None)
            for s in scenarios]
