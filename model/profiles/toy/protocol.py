"""The toy protocol: a lender lends pages to a borrower, who pins and writes them; the lender
takes a page back only unpinned, and scrubs it. Small on purpose: the machinery's own tests run
every command on it, so that nothing of pKVM can hide in the machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from errno import EBUSY, EINVAL, EPERM
from typing import NamedTuple

from model.properties import GraphProperty, Property, always, always_step, check_then_commit
from model.transitions import Protocol


class Owner(IntEnum):
    LENDER = 0
    BORROWER = 1


class Data(IntEnum):
    CLEAN = 0
    SECRET = 1  # the borrower's data


LENDER, BORROWER = Owner
CLEAN, SECRET = Data


class State(NamedTuple):
    owner: tuple  # Owner per page
    pins: tuple  # the borrower's pins per page
    data: tuple  # Data per page


@dataclass(frozen=True)
class Config:
    pages: int = 2
    max_pins: int = 2  # exploration bound on pins (the protocol's counter is unbounded)
    extra: int = 1  # indices past the last page that calls are tried on

    def validate(self) -> None:
        if not 1 <= self.pages <= 64:
            raise ValueError(f"pages must be 1..64, got {self.pages}")
        if not 0 <= self.max_pins <= 16:
            raise ValueError(f"max_pins must be 0..16, got {self.max_pins}")
        if self.extra < 0:
            raise ValueError("extra cannot be negative")


def initial_state(config: Config) -> State:
    n = config.pages
    return State((LENDER,) * n, (0,) * n, (CLEAN,) * n)


TOY = Protocol()
PAGE = "page"


def check_page(s, page):
    yield s.require(s.is_page(page), EINVAL, "page_range")


@TOY.transition("lender", "borrower")
def lend(s, page):
    """The lender gives a page to the borrower."""
    yield from check_page(s, page)
    yield s.require(s.owner(page) == LENDER, EPERM, "owner")
    s.set("owner", page, BORROWER)


def _pin_limit(s, page):
    return s.pins(page) < s.config.max_pins


@TOY.transition("borrower", "borrower", bound=_pin_limit)
def pin(s, page):
    """The borrower pins a page it holds."""
    yield from check_page(s, page)
    yield s.require(s.owner(page) == BORROWER, EPERM, "owner")
    s.set("pins", page, s.pins(page) + 1)


@TOY.transition("borrower", "borrower")
def unpin(s, page):
    """The borrower drops a pin."""
    yield from check_page(s, page)
    yield s.require(s.owner(page) == BORROWER, EPERM, "owner")
    yield s.require(s.pins(page) > 0, EINVAL, "pin_count")
    s.set("pins", page, s.pins(page) - 1)


@TOY.transition("borrower", "borrower")
def write(s, page):
    """The borrower writes its data into a page it holds."""
    yield from check_page(s, page)
    yield s.require(s.owner(page) == BORROWER, EPERM, "owner")
    s.set("data", page, SECRET)


@TOY.transition("lender", "borrower")
def reclaim(s, page):
    """The lender takes an unpinned page back and scrubs it."""
    yield from check_page(s, page)
    yield s.require(s.owner(page) == BORROWER, EPERM, "owner")
    yield s.require(s.pins(page) == 0, EBUSY, "pin_count")
    s.set("owner", page, LENDER)
    s.set("data", page, CLEAN)


# -- properties --------------------------------------------------------------------------------

def type_ok(s):
    """Every page has an owner, a natural pin count and known data."""
    return s.forall_pages(lambda p: s.And(
        s.Or(s.owner(p) == LENDER, s.owner(p) == BORROWER), s.pins(p) >= 0,
        s.Or(s.data(p) == CLEAN, s.data(p) == SECRET)))


def pinned_is_borrowed(s):
    """Only a page the borrower holds is pinned."""
    return s.forall_pages(lambda p: s.Implies(s.pins(p) > 0, s.owner(p) == BORROWER))


def scrubbed(s):
    """The borrower's data sits only in pages the borrower holds."""
    return s.forall_pages(lambda p: s.Implies(s.data(p) == SECRET, s.owner(p) == BORROWER))


ALWAYS = (always(type_ok), always(pinned_is_borrowed), always(scrubbed),
          always_step(check_then_commit))
SOMETIMES = (
    Property("page_pinned", "sometimes", "a page can be pinned",
             state=lambda s: s.exists_page(lambda p: s.pins(p) > 0)),
    Property("page_secret", "sometimes", "a page can hold the borrower's data",
             state=lambda s: s.exists_page(lambda p: s.data(p) == SECRET)),
)


def _all_home(config, state) -> bool:
    return all(o == LENDER for o in state.owner)


GRAPH = (
    GraphProperty("graph_all_returned", "return",
                  "from every reachable state the lender can get every page back", _all_home),
    GraphProperty("graph_no_dead_end", "progress", "every reachable state has a successor",
                  lambda config, state: False),
)
