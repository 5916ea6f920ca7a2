"""What the prover needs of the gmem profile: the symbolic machine and state, the strengthening
invariants, where to instantiate the invariants (term pools per kind: gfn, slot, file, file
index pairs, and the range-check witnesses), and readable counterexamples.

The ground tier's models are not made concrete (`concretize` answers None): a ground-tier sat
falls through to the guided tier, whose models are real counterexamples (sound either way).
"""

from __future__ import annotations

import z3

from model.profiles.gmem.properties import STRENGTHENING, field_bounds
from model.profiles.gmem.readings import Machine, Symbolic, SymbolicState, SymbolicStep, initial
from model.profiles.gmem.states import VM_NAMES, Config
from model.symbolic import ProofHooks, evaluate, unique_terms


def pools(q, named=()) -> dict:
    """The terms the query is about, and the ones they lead to (a gfn's slot, its file and index,
    a slot's file, a binding's slot), in the pre-state."""
    pre = Symbolic(q.m, q.pre)
    args = dict(zip(q.t.params, q.args))
    gfns, slots, files, fis, pages = [], [], [], [], []
    if "gfn" in args:
        gfns.append(args["gfn"])
    if "slot" in args:
        slots.append(args["slot"])
    if "file" in args:
        files.append(args["file"])
        for key in ("index", "pgoff"):
            if key in args:
                fis.append((args["file"], args[key]))
    for key, ws in q.witnesses.items():
        kind = key.rstrip("0123456789")
        {"gfn": gfns, "slot": slots, "file": files, "fi": fis}.get(kind, pages).append(
            ws if kind == "fi" else ws[0])
    for k, *_ in q.step.ranges:
        pages.append(k)
        gfns.append(k)
        if "file" in args:
            fis.append((args["file"], k))
    for g in list(gfns):
        x = pre.slot_of(g)
        slots.append(x)
        fis.append((pre.lfile(g) - 1, pre.lidx(g)))
        fis.append((pre.sfile(x) - 1, pre.index_of(g)))
    for x in list(slots):
        files.append(pre.sfile(x) - 1)
    for f, i in list(fis):
        files.append(f)
        slots.append(pre.bind(f, i) - 1)
        pages.append(i)
    pages += gfns
    return {"gfn": unique_terms(gfns), "slot": unique_terms(slots), "file": unique_terms(files),
            "fi": unique_terms(fis), "page": unique_terms(pages)}


def _machine(model, m: Machine) -> dict:
    vm = evaluate(model, m.vm_type)
    return {"vm": VM_NAMES.get(vm, vm), "slots": evaluate(model, m.slots), "gfns": evaluate(model, m.gfns),
            "files": evaluate(model, m.files)}


def counterexample(q, model) -> dict:
    pre, post = Symbolic(q.m, q.pre), Symbolic(q.m, q.post)
    cells = {}

    def gfn_cells(view, g):
        return {f: evaluate(model, getattr(view, f)(z3.IntVal(g)))
                for f in ("attr", "gslot", "lkind", "lfile", "lidx")}

    def slot_cells(view, x):
        return {f: evaluate(model, getattr(view, f)(z3.IntVal(x)))
                for f in ("sn", "sbase", "sgmem", "sfile", "spgoff", "sonly")}

    def fi_cells(view, f, i):
        extra = [n for n in q.pre.fields.names if q.pre.fields.kind[n] == "index"]
        return {k: evaluate(model, view.read(k, (z3.IntVal(f), z3.IntVal(i))))
                for k in dict.fromkeys(("page", "bind", "hpte", *extra))}

    def changes(a, b):
        return {"pre": a, "post": b, "changed": sorted(k for k in a if a[k] != b[k])}

    for g in sorted({evaluate(model, t) for t in q.pools["gfn"]})[:4]:
        cells[f"gfn{g}"] = changes(gfn_cells(pre, g), gfn_cells(post, g))
    for x in sorted({evaluate(model, t) for t in q.pools["slot"]} - {-1})[:3]:
        cells[f"slot{x}"] = changes(slot_cells(pre, x), slot_cells(post, x))
    for f, i in sorted({(evaluate(model, a), evaluate(model, b)) for a, b in q.pools["fi"]})[:4]:
        cells[f"file{f}[{i}]"] = changes(fi_cells(pre, f, i), fi_cells(post, f, i))
    args = ", ".join(f"{p}={evaluate(model, a)}" for p, a in zip(q.t.params, q.args))
    return {"call": f"{q.t.name}({args})", "errno": evaluate(model, q.step.errno),
            "machine": _machine(model, q.m), "concrete": False, "cells": cells}


# (property, machine, depth) of the bounded checks: what induction cannot show.
# On SW_PROTECTED machines (the default) host faults never succeed (no INIT_SHARED files):
# they are shown on a default x86 VM; one file backing two slots needs two slots.
_X86 = Config(vm="x86", files=1, slots=1, gfns=1, pages=1, sizes=(1,), flags=(3,))
BMC = (
    ("host_read_succeeds", _X86, 3),
    ("host_write_succeeds", _X86, 3),
    ("one_file_two_slots", Config(vm="sw_protected", files=1, slots=2, gfns=2, pages=2,
                                  flags=(0,)), 3),
)


class GmemProof(ProofHooks):
    """The hooks of one gmem profile: its state's fields (with those extensions add, whose
    bounds join the strengthening) and its redefined reads, applied to every symbolic view."""

    universe = "VM types, gfns, slots, files and file pages"
    Machine = Machine

    def __init__(self, profile):
        self.profile, self.fields = profile, profile.fields
        self.strengthening = STRENGTHENING + tuple(field_bounds(f) for f in self.fields.extra)

    def initial(self, m: Machine) -> SymbolicState:
        return initial(m, self.fields)

    def fresh_state(self, tag: str) -> SymbolicState:
        return SymbolicState.fresh(tag, self.fields)

    def reading(self, machine, state, transitions=None):
        return self.profile.with_reads(Symbolic(machine, state, transitions))

    def stepping(self, machine, pre, transitions=None):
        return self.profile.with_reads(SymbolicStep(machine, pre, transitions))

    pools = staticmethod(pools)
    counterexample = staticmethod(counterexample)

    @staticmethod
    def machine_of(model, m: Machine) -> dict:
        return _machine(model, m)

    @staticmethod
    def fix_machine(m: Machine, config: Config) -> list:
        return [m.vm_type == config.vm_type, m.slots == config.slots, m.gfns == config.gfns,
                m.files == config.files]

    @staticmethod
    def range_pages(config: Config) -> range:
        return range(max(config.gfns, config.pages) + 2)

    @staticmethod
    def bmc_checks(profile) -> list:
        props = profile.properties
        return [(props[name], config, depth) for name, config, depth in BMC if name in props]
