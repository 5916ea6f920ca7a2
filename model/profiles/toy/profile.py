"""The toy profile: a lender and a borrower of a few pages (the machinery's own test protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model.profile import Mutant, NoSymmetry, Profile
from model.profiles.toy.protocol import ALWAYS, GRAPH, PAGE, SOMETIMES, TOY, Config, initial_state
from model.profiles.toy.readings import Concrete
from model.profiles.toy.support import PageSymmetry, ToyPresenter, ToyProof, ToyReference


def reclaim_ignores_pins(ext):
    """reclaim takes a pinned page back"""
    ext.drop_check("reclaim", "pin_count")


def reclaim_no_scrub(ext):
    """reclaim returns a page without scrubbing the borrower's data"""
    ext.drop_write("reclaim", "data")


MUTANTS = {m.name: m for m in (
    Mutant("reclaim_ignores_pins", reclaim_ignores_pins.__doc__, "reclaim", reclaim_ignores_pins),
    Mutant("reclaim_no_scrub", reclaim_no_scrub.__doc__, "reclaim", reclaim_no_scrub))}


@dataclass(frozen=True)
class ToyProfile(Profile):
    presenter = ToyPresenter()
    prover = ToyProof()
    reference = ToyReference()
    scenarios = Path(__file__).parent / "scenarios"

    def default_config(self) -> Config:
        return Config()

    def add_arguments(self, group) -> None:
        group.add_argument("--pages", type=int, default=2, metavar="N", help="pages (default 2)")
        group.add_argument("--max-pins", type=int, default=2, metavar="P",
                           help="exploration bound on pins per page (default 2)")

    def config_from_args(self, args) -> Config:
        config = self.adjust(Config(pages=args.pages, max_pins=args.max_pins))
        config.validate()
        return config

    def config_text(self, config: Config) -> str:
        return f"{config.pages} pages, at most {config.max_pins} pins each"

    def initial_state(self, config: Config):
        return initial_state(config)

    def view(self, config: Config, state) -> Concrete:
        return Concrete(config, state, self.transitions)

    def domain(self, config: Config, kind: str):
        return {PAGE: range(config.pages + config.extra)}[kind]

    def symmetry(self, config: Config, enabled: bool = True):
        return PageSymmetry(config) if enabled and config.pages > 1 else NoSymmetry()


PROFILE = ToyProfile(
    name="toy", doc="a lender and a borrower of a few pages (the machinery's test protocol)",
    transitions=dict(TOY.transitions), always=ALWAYS, sometimes=SOMETIMES, graph=GRAPH,
    mutants=MUTANTS)
