"""What conformance reports: a disagreement between a profile's model and its reference,
with the call, both answers, the calls before it and the differing cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from model.transitions import Call, errno_name


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
    #            | reference-error | model-error
    call: Call | None
    model_errno: int | None
    reference_errno: int | None
    cells: list = field(default_factory=list)
    trace: list = field(default_factory=list)  # calls leading to the call's source state
    note: str = ""
    where: str = ""  # scenario file:line, walk number, ...

    def headline(self) -> str:
        call = str(self.call) if self.call is not None else "(no call)"
        head = f"{call}: model {errno_name(self.model_errno)}, reference {errno_name(self.reference_errno)}"
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
                         + "; ".join(str(c) for c in shown))
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
            "call": str(self.call) if self.call is not None else None,
            "model": errno_name(self.model_errno), "reference": errno_name(self.reference_errno),
            "trace": [str(c) for c in self.trace], "note": self.note,
            "cells": [c._asdict() for c in self.cells],
        }
