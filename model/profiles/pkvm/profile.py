"""The pKVM profile: the page-ownership protocol of protected KVM guests on arm64 (Linux 7.1)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from model.profile import Profile
from model.profiles.pkvm.concrete import Concrete
from model.profiles.pkvm.mutants import MUTANTS
from model.profiles.pkvm.presenter import PkvmPresenter
from model.profiles.pkvm.proof import PkvmProof
from model.profiles.pkvm.properties import ALWAYS, GRAPH, SOMETIMES
from model.profiles.pkvm.reference import PkvmReference
from model.profiles.pkvm.states import U64, Config, initial_state
from model.profiles.pkvm.symmetry import Symmetry
from model.profiles.pkvm.transitions import GFN, NR, PFN, PKVM, PROT, VM


def _nrs(text: str) -> tuple[int, ...]:
    """--nrs: comma-separated u64 values."""
    try:
        nrs = tuple(int(word, 0) for word in text.split(","))
    except ValueError:
        raise ValueError(f"--nrs {text}: expected comma-separated integers") from None
    if not all(0 <= nr < U64 for nr in nrs):
        raise ValueError(f"--nrs {text}: nr_pages is a u64, 0 .. {U64 - 1}")
    return nrs


@dataclass(frozen=True)
class PkvmProfile(Profile):
    presenter = PkvmPresenter()
    prover = PkvmProof()
    reference = PkvmReference()
    scenarios = Path(__file__).parent / "scenarios"
    # The memcache and the host's records are off on the default machine; `check` witnesses
    # the memcache's topups and explores the records on small ones.
    witness_machines = (("--memcache", "1", "--pages", "1"), ("--host-records", "--pages", "1"))

    def default_config(self) -> Config:
        return Config()

    def add_arguments(self, group) -> None:
        group.add_argument("--pages", type=int, default=2, metavar="N",
                           help="RAM pages (default 2; one MMIO page, the no-map pages and one "
                                "hole follow)")
        group.add_argument("--nomap", type=int, default=1, metavar="N",
                           help="MEMBLOCK_NOMAP pages after the MMIO page: memory the host may "
                                "not give away (default 1)")
        group.add_argument("--guests", type=int, default=2, metavar="G", help="VMs (default 2)")
        group.add_argument("--protected", type=int, default=None, metavar="K",
                           help="how many of the VMs are protected, handles 0..K-1 (default 1)")
        group.add_argument("--gfns", type=int, default=2, metavar="F",
                           help="guest frame numbers tried per VM (default 2)")
        group.add_argument("--nrs", default="1,2", metavar="N,N",
                           help="nr_pages the multi-page calls try, u64 values (default 1,2; "
                                "e.g. 1,18446744073709551615 for a range that wraps)")
        group.add_argument("--memcache", type=int, default=0, metavar="N",
                           help="model each VM's memcache, topped up by the host to N pages "
                                "(default 0: not modelled, a map never runs short)")
        group.add_argument("--host-records", action="store_true",
                           help="model the host kernel's own records of what it shared with "
                                "the hypervisor (hyp_shared_pfns, kvm_share_hyp())")
        group.add_argument("--no-host-discipline", action="store_true",
                           help="let the host finalize a VM that still holds pages "
                                "(the stranding hazard)")

    def config_from_args(self, args) -> Config:
        if args.guests < 0:
            raise ValueError(f"--guests must be 0 or more, got {args.guests}")
        protected = min(1, args.guests) if args.protected is None else args.protected
        if not 0 <= protected <= args.guests:
            raise ValueError(f"--protected must be 0..{args.guests}, got {protected}")
        if args.nomap < 0:
            raise ValueError(f"--nomap must be 0 or more, got {args.nomap}")
        if args.memcache < 0:
            raise ValueError(f"--memcache must be 0 or more, got {args.memcache}")
        config = Config(ram=args.pages, gfns=args.gfns, nomap=args.nomap, memcache=args.memcache,
                        nrs=_nrs(args.nrs), host_records=args.host_records,
                        guests=(True,) * protected + (False,) * (args.guests - protected),
                        host_discipline=not args.no_host_discipline)
        config = self.adjust(config)
        if args.no_host_discipline:
            config = replace(config, host_discipline=False)
        config.validate()
        return config

    def config_text(self, config: Config) -> str:
        guests = ", ".join(f"vm{v} {'protected' if p else 'non-protected'}"
                           for v, p in enumerate(config.guests)) or "no guests"
        nomap = f", {config.nomap} no-map" if config.nomap != 1 else ""
        memcache = f", memcaches of {config.memcache}" if config.memcache else ""
        nrs = f", nr {','.join(map(str, config.nrs))}" if config.nrs != Config.nrs else ""
        records = ", host records" if config.host_records else ""
        return (f"{config.ram} RAM pages ({guests}), {config.gfns} gfns{nomap}{memcache}{nrs}"
                f"{records}")

    def disciplined(self, config: Config) -> bool:
        return config.host_discipline

    def undisciplined(self, config: Config) -> Config:
        return replace(config, host_discipline=False)

    def initial_state(self, config: Config):
        return initial_state(config)

    def view(self, config: Config, state) -> Concrete:
        return Concrete(config, state, self.transitions)

    def domain(self, config: Config, kind: str):
        return {
            PFN: range(config.pages + config.hole_pfns),
            NR: config.nrs,
            GFN: range(config.gfns),
            VM: range(len(config.guests)),
            PROT: config.prots,
        }[kind]

    def symmetry(self, config: Config, enabled: bool = True) -> Symmetry:
        return Symmetry(config, enabled)


PROFILE = PkvmProfile(
    name="pkvm",
    doc="pKVM page ownership on arm64 (Linux 7.1 mem_protect.c): host, hypervisor, FF-A, guests",
    transitions=dict(PKVM.transitions), always=tuple(ALWAYS), sometimes=tuple(SOMETIMES),
    graph=tuple(GRAPH), mutants=MUTANTS)
