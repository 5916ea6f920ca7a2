"""What the machinery asks of the toy profile beyond its protocol: symmetry (pages are
interchangeable), presentation, the prover's hooks and the conformance adapter."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

import z3

from model.profile import Unrepresentable
from model.profiles.toy.protocol import Config, Data, Owner, State
from model.profiles.toy.readings import Machine, Symbolic, SymbolicState, SymbolicStep, initial
from model.references.toy import Lender
from model.renaming import Cell, Image
from model.states import enum_name
from model.symbolic import ProofHooks, evaluate
from model.syntax import read_number


class PageSymmetry:
    """Every permutation of the pages: the representative sorts the pages' (owner, pins, data)."""

    trivial = False

    def __init__(self, config: Config):
        self.n = config.pages
        self.order = math.factorial(self.n)

    def canonical(self, state: State) -> State:
        return State(*map(tuple, zip(*sorted(zip(*state))))) if self.n > 1 else state

    def image(self, state: State, perm: tuple) -> State:
        return State(*[tuple(column[perm[q]] for q in range(self.n)) for column in state])

    def elements(self) -> list[tuple]:
        """Every page permutation but the identity, as `image`'s arguments."""
        return [(perm,) for perm in itertools.permutations(range(self.n))][1:]

    def renaming(self, at: State, perm: tuple) -> Image:
        """`image` on the cells of one shape (`at`: each integer the number of its cell)."""
        return Image(State(*[tuple(Cell(column[perm[q]]) for q in range(self.n))
                             for column in at]))

    def generators(self) -> list:
        return [(tuple(range(i)) + (i + 1, i) + tuple(range(i + 2, self.n)),)
                for i in range(self.n - 1)]

    def orbit_size(self, state: State) -> int:
        counts = Counter(zip(*state)).values()
        return math.factorial(self.n) // math.prod(math.factorial(c) for c in counts)

    def describe(self) -> dict:
        return {"pages": self.n > 1, "group_order": self.order}


# -- presentation ----------------------------------------------------------------------------

def _page_cells(state: State, p: int) -> dict:
    return {"owner": Owner(state.owner[p]).name, "pins": state.pins[p],
            "data": Data(state.data[p]).name}


class ToyPresenter:
    view_names = ("page",)
    diagram_defaults = {"pages": 1}

    @staticmethod
    def involved(config: Config, trace: list) -> list[int]:
        return list(range(config.pages))

    @staticmethod
    def snapshot(config: Config, state: State, pages: list[int]) -> dict:
        return {f"page{p}": _page_cells(state, p) for p in pages}

    @staticmethod
    def diff(config: Config, a: State, b: State) -> list[tuple]:
        out = []
        for p in range(config.pages):
            ca, cb = _page_cells(a, p), _page_cells(b, p)
            out += [(f"page {p}", k, str(ca[k]), str(cb[k])) for k in ca if ca[k] != cb[k]]
        return out

    @staticmethod
    def state_label(config: Config, state: State) -> str:
        return "\n".join(f"p{p} {Owner(o).name[0]} pins{n} {Data(d).name}"
                         for p, (o, n, d) in enumerate(zip(*state)))

    @staticmethod
    def machine_text(config: Config) -> str:
        return f"pages={config.pages}"

    @staticmethod
    def parse_machine(fields: list[str]) -> tuple[Config, bool]:
        opts = dict(item.partition("=")[::2] for item in fields)
        if set(opts) != {"pages"} or not re.fullmatch(r"\d+", opts["pages"]):
            raise ValueError("the toy machine line is `machine pages=N`")
        config = Config(pages=int(opts["pages"]), max_pins=16)
        config.validate()
        return config, True

    @staticmethod
    def parse_expect(text: str, config: Config) -> tuple[tuple, tuple]:
        head, sep, body = text.partition(":")
        words = head.split()
        if not sep or len(words) != 2 or words[0] != "page" or not words[1].isdigit():
            raise ValueError("expect subject must be `page P`")
        checks = tuple(item.partition("=")[::2] for item in body.split())
        if not checks or any(k not in ("owner", "pins", "data") for k, _ in checks):
            raise ValueError("page checks are owner=, pins=, data=")
        return ("page", int(words[1])), checks

    @staticmethod
    def check_expectation(state: State, subject: tuple, checks: tuple) -> list:
        cells = _page_cells(state, subject[1])
        return [(k, v, str(cells[k])) for k, v in checks if str(cells[k]) != v]

    @staticmethod
    def read_value(text: str, kind: str, consts: dict) -> int:
        return read_number(text, consts)

    @staticmethod
    def constants(config: Config) -> dict:
        return {"PAGES": config.pages}

    @staticmethod
    def view_title(view: str, config: Config) -> str:
        return "the life of page 0"

    @staticmethod
    def view_key(view: str, config: Config, state: State) -> tuple:
        return tuple(_page_cells(state, 0).values())

    @staticmethod
    def view_label(view: str, config: Config, key: tuple) -> str:
        return "\n".join(str(x) for x in key)


# -- the prover's hooks ----------------------------------------------------------------------

class ToyProof(ProofHooks):
    strengthening = ()
    universe = "pages"
    Machine, State, Reading, Step = Machine, SymbolicState, Symbolic, SymbolicStep
    initial = staticmethod(initial)

    @staticmethod
    def pools(q, named=()) -> dict:
        pages = [q.args[0]] + [ws[0] for ws in q.witnesses.values()]
        return {"page": pages}

    @staticmethod
    def concretize(q, model, profile):
        """The pages the query names, renumbered into a small machine, checked concretely."""
        pre = Symbolic(q.m, q.pre)
        pages = sorted({evaluate(model, p) for p in q.pools["page"]}
                       & set(range(evaluate(model, q.m.pages))))
        if not pages:
            return None
        config = Config(pages=len(pages), max_pins=16)
        state = State(*[tuple(evaluate(model, pre.page(f, p)) for p in pages)
                        for f in State._fields])
        arg = evaluate(model, q.args[0])
        call = profile.call(q.t.name, (pages.index(arg) if arg in pages else len(pages),))
        view = profile.view(config, state)
        if not all(p.state(view) for p in profile.always if p.state):
            return None
        outcome = profile.step(config, state, call)
        if outcome is None:
            return None
        post = profile.view(config, outcome.state)
        ok = q.prop.state(post) if q.prop.state else q.prop.step(call.name, outcome.errno, view, post)
        if ok:
            return None
        return ToyProof.concrete_counterexample(profile, config, state, call, outcome, q.prop,
                                                list(range(config.pages)))

    @staticmethod
    def counterexample(q, model) -> dict:
        pre, post = Symbolic(q.m, q.pre), Symbolic(q.m, q.post)
        cells = {}
        for p in sorted({evaluate(model, t) for t in q.pools["page"]})[:6]:
            def read(view, p=p):
                return {f: enum_name(e, evaluate(model, view.page(f, z3.IntVal(p)))) if e else
                        evaluate(model, view.page(f, z3.IntVal(p)))
                        for f, e in (("owner", Owner), ("pins", None), ("data", Data))}
            a, b = read(pre), read(post)
            cells[f"page{p}"] = {"pre": a, "post": b, "changed": [k for k in a if a[k] != b[k]]}
        return {"call": f"{q.t.name}(page={evaluate(model, q.args[0])})",
                "errno": evaluate(model, q.step.errno),
                "machine": {"pages": evaluate(model, q.m.pages)}, "concrete": False,
                "cells": cells}

    @staticmethod
    def machine_of(model, m: Machine) -> dict:
        return {"pages": evaluate(model, m.pages)}

    @staticmethod
    def fix_machine(m: Machine, config: Config) -> list:
        return [m.pages == config.pages]

    @staticmethod
    def range_pages(config: Config) -> range:
        return range(config.pages + 1)

    @staticmethod
    def bmc_checks(profile) -> list:
        props = profile.properties
        return [(props[name], Config(pages=1), 3) for name in ("page_pinned", "page_secret")
                if name in props]


# -- the conformance adapter -----------------------------------------------------------------

class ToyReference:
    name = "the reference lender (model/references/toy)"
    walk_configs = (Config(pages=4, max_pins=16), Config(pages=9, max_pins=16))
    walk_weights: dict = {}

    @staticmethod
    def fresh(config: Config) -> Lender:
        return Lender(config.pages)

    @staticmethod
    def invoke(ref: Lender, call) -> int:
        return getattr(ref, call.name)(*call.args)

    @staticmethod
    def abstract(ref: Lender, config: Config | None = None) -> State:
        owner, pins, data = [], [], []
        for borrowed, pin_count, dirty in ref.snapshot():
            if dirty and not borrowed:
                raise Unrepresentable("a dirty page back with the lender")
            owner.append(Owner.BORROWER if borrowed else Owner.LENDER)
            pins.append(pin_count)
            data.append(Data.SECRET if dirty else Data.CLEAN)
        return State(tuple(owner), tuple(pins), tuple(data))

    @staticmethod
    def clone(ref: Lender) -> Lender:
        return ref.clone()

    @staticmethod
    def identical(a: Lender, b: Lender) -> bool:
        return a.snapshot() == b.snapshot()

    @staticmethod
    def breach(ref, call):
        return None

    @staticmethod
    def walk_values(config: Config) -> dict:
        return {"page": list(range(config.pages)) * 3 + [config.pages, 2**64 - 1]}

    @staticmethod
    def targeted_calls(transitions: dict, config: Config, state: State, late: bool) -> list:
        return [transitions[name].call(p) for p in range(config.pages)
                for name in ("reclaim", "unpin") if name in transitions]
