"""The gmem profile: KVM guest_memfd, memslots, memory attributes and the guest fault path of
Linux 7.1, for one VM of a stated type (docs/gmem.md)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from model.profile import NoSymmetry, Profile
from model.profiles.gmem.mutants import MUTANTS
from model.profiles.gmem.presenter import GmemPresenter
from model.profiles.gmem.proof import GmemProof
from model.profiles.gmem.properties import ALWAYS, GRAPH, SOMETIMES
from model.profiles.gmem.protocol import GMEM
from model.profiles.gmem.readings import Concrete, Direct
from model.profiles.gmem.reference import GmemReference
from model.profiles.gmem.states import (
    DERIVED, FORCE_PRIVATE, FORCE_SHARED, VM_TYPES, VMFD, Config, initial_state, layout,
)
from model.profiles.gmem.symmetry import GmemSymmetry


@dataclass(frozen=True)
class GmemProfile(Profile):
    reference = GmemReference()
    scenarios = Path(__file__).parent / "scenarios"
    # Host faults need INIT_SHARED, which only VMs without private memory offer.
    witness_machines = (("--vm", "x86"),)
    # Extensions may add fields keyed like the profile's own (ext.field) and redefine reads.
    field_kinds = ("scalar", "file", "index", "slot", "gfn")

    @cached_property
    def fields(self):
        """The state's layout: the profile's fields, then the extensions'."""
        return layout(self.state_fields)

    @cached_property
    def presenter(self):
        return GmemPresenter(self.state_fields)

    @cached_property
    def prover(self):
        return GmemProof(self)

    def default_config(self) -> Config:
        return Config()

    def add_arguments(self, group) -> None:
        group.add_argument("--vm", default="sw_protected", metavar="TYPE",
                           help=f"VM type: {', '.join(VM_TYPES)} (default sw_protected)")
        for name, default, what in (("files", 1, "guest_memfd files"), ("slots", 2, "memslot ids"),
                                    ("gfns", 2, "guest frames"), ("pages", 2, "pages per file")):
            group.add_argument(f"--{name}", type=int, default=default, metavar="N",
                               help=f"{what} (default {default})")
        group.add_argument("--max-vmas", type=int, default=1, metavar="N",
                           help="exploration bound on host VMAs per file (default 1)")

    def config_from_args(self, args) -> Config:
        pages = args.pages
        config = self.adjust(Config(vm=args.vm, files=args.files, slots=args.slots,
                                    gfns=args.gfns, pages=pages,
                                    sizes=(0, pages) if isinstance(pages, int) else (0,),
                                    max_vmas=args.max_vmas))
        config.validate()
        return config

    def config_text(self, config: Config) -> str:
        return (f"{config.vm} VM, {config.files} files of {config.pages} pages, "
                f"{config.slots} slots, {config.gfns} gfns")

    def disciplined(self, config: Config) -> bool:
        return config.discipline

    def undisciplined(self, config: Config) -> Config:
        from dataclasses import replace
        return replace(config, discipline=False)

    def initial_state(self, config: Config):
        return initial_state(config, self.fields)

    def view(self, config: Config, state) -> Concrete:
        if not self.reads:  # nothing redefined: the reads done in place
            return Direct(config, state, self.transitions, self.fields)
        return self.with_reads(Concrete(config, state, self.transitions, self.fields))

    def domain(self, config: Config, kind: str):
        files = tuple(range(config.files)) + (VMFD,)
        return {
            "size": config.sizes, "flags": config.flags, "slot": range(config.slots),
            "gfn": range(config.gfns), "npages": config.spans, "file": files,
            "pgoff": range(config.pages), "index": range(config.pages + 1),
            "private": (0, 1), "kind": (DERIVED, FORCE_SHARED, FORCE_PRIVATE),
            "count": config.counts,
        }[kind]

    def symmetry(self, config: Config, enabled: bool = True):
        return GmemSymmetry(config, self.fields) if enabled and (
            config.slots > 1 or config.files > 1) else NoSymmetry()


PROFILE = GmemProfile(
    name="gmem", doc="KVM guest_memfd, memslots, memory attributes and guest faults (Linux 7.1)",
    transitions=dict(GMEM.transitions), always=ALWAYS, sometimes=SOMETIMES, graph=GRAPH,
    mutants=MUTANTS)
