"""How pKVM states are shown: one presenter behind traces, conformance diffs, prover
counterexamples, scenario `expect` lines and diagrams, all in the kernel's vocabulary."""

from __future__ import annotations

import re

from model.syntax import read_number
from model.profiles.pkvm.states import (
    PAGE_FIELDS, BLOCK_PAGES, IPA_PAGES, PA_PAGES, POISON, PROT_R, PROT_W, PROT_X, U16_MAX, U32_MAX, Config,
    Annotation, Contents, Leaf, Life, Owner, PageState, PteKind, State, find_mapping, guest_view, views,
)
from model.states import enum_name

ABBREV = {PageState.OWNED: "O", PageState.SHARED_OWNED: "SO", PageState.SHARED_BORROWED: "SB",
          PageState.NOPAGE: "-", PageState.POISON: "X"}


# -- one page's cells, from its raw field values (a state's, or a z3 model's) -----------------

def describe_contents(value: int) -> str:
    """What a page holds; a protected guest's private data names the guest."""
    if value >= Contents.SECRET_BASE:
        return f"SECRET(vm{value - Contents.SECRET_BASE})"
    return enum_name(Contents, value)


def pte_text(raw: dict) -> str:
    """The host stage-2 entry of a page (fields `pte_*` of `raw`) in kernel vocabulary."""
    kind = raw["pte_kind"]
    if kind != PteKind.ANNOTATED:
        return {PteKind.ZERO: "0", PteKind.VALID: "identity"}.get(kind, str(kind))
    text = f"{enum_name(Annotation, raw['pte_type'])}:{enum_name(Owner, raw['pte_owner'])}"
    if raw["pte_owner"] == Owner.GUEST:
        text += f"(vm{raw['pte_handle']},gfn{raw['pte_gfn']})"
    return text


def page_cells(raw: dict) -> dict:
    """host, hyp and FF-A views and the page's metadata, from its raw field values."""
    return {"host": enum_name(PageState, raw["host"]), "hyp": enum_name(PageState, raw["hyp"]),
            "ffa": enum_name(PageState, raw["ffa"]), "pte": pte_text(raw),
            "pins": int(raw["pins"]), "count": int(raw["count"]),
            "hyp_mapped": bool(raw["hyp_mapped"]), "contents": describe_contents(raw["contents"]),
            "hyp_shared_pfns": int(raw["shared"])}


def entry_cells(state: int, life: int, pfn: int, size: int, prot: int) -> dict:
    """One guest stage-2 entry and its VM's lifecycle."""
    cells = {"state": enum_name(PageState, state), "life": enum_name(Life, life)}
    if state in (PageState.OWNED, PageState.SHARED_OWNED, PageState.SHARED_BORROWED):
        cells.update(pfn=pfn, size=size, prot=_prot(prot))
    return cells


def raw_page(state: State, pfn: int) -> dict:
    return {f: getattr(state, f)[pfn] for f in PAGE_FIELDS}


def describe_pte(state: State, pfn: int) -> str:
    return pte_text(raw_page(state, pfn))


# -- traces and counterexamples ---------------------------------------------------------------

PROT_NAMES = ((4, "r"), (2, "w"), (1, "x"))


# -- plain data ---------------------------------------------------------------------------------

def _prot(prot: int) -> str:
    return "".join(ch if prot & bit else "-" for bit, ch in PROT_NAMES)


def page_snapshot(config: Config, state: State, pfn: int) -> dict:
    """Every entity's view of one page, and the metadata the kernel keeps for it."""
    cells = page_cells(raw_page(state, pfn))
    out = {name: PageState(v).name for name, v in views(config, state, pfn).items()}
    out.update({k: v for k, v in cells.items() if k not in out})
    return out


def vm_snapshot(config: Config, state: State, vm: int) -> dict:
    leaves = []
    for leaf in state.s2[vm]:
        if leaf.state == POISON:
            leaves.append(f"gfn{leaf.gfn}: POISON")
        else:
            span = "" if leaf.span == 1 else f"+{leaf.span}"
            leaves.append(f"gfn{leaf.gfn}{span} -> pfn{leaf.pfn} "
                          f"{PageState(leaf.state).name} {_prot(leaf.prot)}"
                          + ("" if leaf.size == 1 else f" (leaf of {leaf.size})"))
    out = {"kind": "protected" if config.guests[vm] else "non-protected",
           "life": Life(state.life[vm]).name, "refs": state.refs[vm], "s2": leaves}
    if config.memcache:
        out["memcache"] = state.mc[vm]
    if config.host_records:
        out["pkvm_mappings"] = [_mapping_text(m) for m in state.maps[vm]]
    return out


def involved(config: Config, trace: list) -> list[int]:
    """The stored pages a trace touches: named by a call, changed by a step, or mapped by a VM."""
    pages: set[int] = set()
    for st in trace:
        args = dict(zip(st.call.params, st.call.args))
        if "pfn" in args:
            lo = args["pfn"]  # a u64 range can name 2**64 pages: only the stored ones count
            pages.update(range(max(lo, 0), min(lo + args.get("nr", 1), config.pages)))
        for state in (st.pre, st.post):
            for leaves in state.s2:
                pages.update(leaf.pfn for leaf in leaves if leaf.state != POISON)
        for p in range(config.pages):
            if any(getattr(st.pre, f)[p] != getattr(st.post, f)[p] for f in State._fields[:12]):
                pages.add(p)
    pages = {p for p in pages if 0 <= p < config.pages}
    return sorted(pages) or list(range(config.ram))


def snapshot(config: Config, state: State, pages: list[int]) -> dict:
    """The state as objects with cells: each involved page, then every VM."""
    out = {f"pfn{p}": page_snapshot(config, state, p) for p in pages}
    out.update({f"vm{v}": vm_snapshot(config, state, v) for v in range(len(config.guests))})
    return out


# -- conformance diffs -------------------------------------------------------------------------

_FIELD_WORDS = {
    "host": "host", "hyp": "hyp", "ffa": "ffa", "pins": "hyp_page.refcount",
    "count": "host_share_guest_count", "hyp_mapped": "hyp stage-1", "contents": "contents",
    "shared": "host's hyp_shared_pfns",
}
_PTE_FIELDS = ("pte_kind", "pte_type", "pte_owner", "pte_handle", "pte_gfn")


def _pageread_value(state: State, f: str, pfn: int) -> str:
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


def diff_states(config: Config, model: State, reference: State) -> list[tuple]:
    """Every differing cell of two states: per page (each entity's view and the page's metadata and
    entries), then per VM (lifecycle, and each stage-2 leaf by gfn)."""
    cells = []
    pages = max(len(model.host), len(reference.host))
    guests = max(len(model.life), len(reference.life))
    for pfn in range(pages):
        where = f"page {pfn}"
        for f in ("host", "hyp", "ffa", "pins", "count"):
            a, b = _pageread_value(model, f, pfn), _pageread_value(reference, f, pfn)
            if a != b:
                cells.append((where, _FIELD_WORDS[f], a, b))
        for vm in range(guests):
            a = _state_name(guest_view(model, vm, pfn)) if vm < len(model.s2) else "-"
            b = _state_name(guest_view(reference, vm, pfn)) if vm < len(reference.s2) else "-"
            if a != b:
                cells.append((where, f"vm{vm}", a, b))
        if any(getattr(model, f)[pfn] != getattr(reference, f)[pfn] for f in _PTE_FIELDS):
            cells.append((where, "host stage-2", describe_pte(model, pfn), describe_pte(reference, pfn)))
        for f in ("hyp_mapped", "contents", "shared"):
            a, b = _pageread_value(model, f, pfn), _pageread_value(reference, f, pfn)
            if a != b:
                cells.append((where, _FIELD_WORDS[f], a, b))
    for vm in range(guests):
        where = f"vm{vm}"
        la = model.life[vm] if vm < len(model.life) else None
        lb = reference.life[vm] if vm < len(reference.life) else None
        if la != lb:
            cells.append((where, "life", Life(la).name if la is not None else "-",
                              Life(lb).name if lb is not None else "-"))
        ra = model.refs[vm] if vm < len(model.refs) else "-"
        rb = reference.refs[vm] if vm < len(reference.refs) else "-"
        if ra != rb:
            cells.append((where, "loaded vCPUs (refcount)", str(ra), str(rb)))
        ma = model.mc[vm] if vm < len(model.mc) else "-"
        mb = reference.mc[vm] if vm < len(reference.mc) else "-"
        if ma != mb:
            cells.append((where, "memcache pages", str(ma), str(mb)))
        ma = model.maps[vm] if vm < len(model.maps) else ()
        mb = reference.maps[vm] if vm < len(reference.maps) else ()
        if ma != mb:
            cells.append((where, "host's pkvm_mappings", _mappings_text(ma), _mappings_text(mb)))
        a = {leaf.gfn: leaf for leaf in (model.s2[vm] if vm < len(model.s2) else ())}
        b = {leaf.gfn: leaf for leaf in (reference.s2[vm] if vm < len(reference.s2) else ())}
        for gfn in sorted(set(a) | set(b)):
            if a.get(gfn) != b.get(gfn):
                cells.append((f"{where} gfn {gfn}", "stage-2", describe_leaf(a.get(gfn)),
                                  describe_leaf(b.get(gfn))))
    return cells



def _mapping_text(m) -> str:
    """One of the host's records: `gfn3 -> pfn1`, a block `gfn0+512 -> pfn0`."""
    return f"gfn{m.gfn}" + ("" if m.nr == 1 else f"+{m.nr}") + f" -> pfn{m.pfn}"


def _mappings_text(maps: tuple) -> str:
    return ", ".join(map(_mapping_text, maps)) or "none"


# -- diagrams ----------------------------------------------------------------------------------

def page_views(config: Config, state: State, pfn: int = 0) -> tuple:
    """(host, hyp, ffa, vm0, vm1, ...) views of one page, as PageState names."""
    return tuple(PageState(v).name for v in views(config, state, pfn).values())


def entities(config: Config) -> list[str]:
    return ["host", "hyp", "ffa"] + [f"vm{v}" for v in range(len(config.guests))]


def page_label(config: Config, key: tuple) -> str:
    """Who holds the page and how, one entity per line (entities with NOPAGE left out)."""
    lines = [f"{name} {view}" for name, view in zip(entities(config), key) if view != "NOPAGE"]
    return "\n".join(lines) or "nobody"


def state_label(config: Config, state: State) -> str:
    """A compact one-state label: per RAM page the views (O, SO, SB, -) of host/hyp/ffa/vms,
    non-default metadata; per VM its lifecycle when not running."""
    parts = []
    for p in range(config.ram):
        v = "/".join(ABBREV[PageState(x)] for x in views(config, state, p).values())
        extra = []
        if state.pins[p]:
            extra.append(f"pin{state.pins[p]}")
        if state.count[p]:
            extra.append(f"cnt{state.count[p]}")
        if state.pte_kind[p] == PteKind.VALID:
            extra.append("id")
        if state.contents[p]:
            extra.append(describe_contents(state.contents[p]))
        parts.append(f"p{p} {v}" + (" " + " ".join(extra) if extra else ""))
    for vm, life in enumerate(state.life):
        refs, mc = state.refs[vm], state.mc[vm]
        if life != Life.RUNNING or refs or mc:
            parts.append(f"vm{vm} {Life(life).name}" + (f" refs{refs}" if refs else "")
                         + (f" mc{mc}" if mc else ""))
    return "\n".join(parts)



# -- scenario files ----------------------------------------------------------------------------

def machine_text(config: Config) -> str:
    kinds = ",".join("protected" if p else "np" for p in config.guests)
    extra = ""
    if config.pin_max != U16_MAX:
        extra += f" pin_max={config.pin_max}"
    if config.count_max != U32_MAX:
        extra += f" count_max={config.count_max}"
    if not config.host_discipline:
        extra += " discipline=off"
    if config.vcpus != 1:
        extra += f" vcpus={config.vcpus}"
    if config.memcache:
        extra += f" memcache={config.memcache}"
    if config.host_records:
        extra += " records=on"
    nomap = f" nomap={config.nomap}" if config.nomap else ""
    return f"ram={config.ram} mmio={config.mmio}{nomap} guests={kinds}{extra}"


U64_MAX = 2**64 - 1  # hypercall arguments are u64 registers


def read_value(text: str, kind: str, consts: dict) -> int:
    """An argument: a number (`model/syntax.py`); prot also as letters (RW, RWX)."""
    if kind == "prot" and re.fullmatch(r"[RWX]+", text):
        return sum({"R": PROT_R, "W": PROT_W, "X": PROT_X}[c] for c in set(text))
    value = read_number(text, consts)
    if value > U64_MAX:  # (a negative one is refused with every argument: unsigned)
        raise ValueError(f"{kind} {text} is past U64_MAX: arguments are u64")
    return value


CONSTANTS = {"PA_PAGES": PA_PAGES, "IPA_PAGES": IPA_PAGES, "BLOCK": BLOCK_PAGES,
              "BLOCK_PAGES": BLOCK_PAGES, "U16_MAX": U16_MAX, "U32_MAX": U32_MAX,
              "U64_MAX": U64_MAX}
_PAGE_KEYS = ("host", "hyp", "ffa", "pins", "count", "pte", "hyp_stage1", "contents", "shared")
_STATE_NAMES = {s.name for s in PageState}


def parse_machine(fields: list[str]) -> tuple[Config, bool]:
    opts = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"machine option {item!r} is not key=value")
        if key in opts:
            raise ValueError(f"machine option {key} given twice")
        opts[key] = value
    unknown = set(opts) - {"ram", "mmio", "nomap", "guests", "pin_max", "count_max", "discipline",
                           "vcpus", "memcache", "records"}
    if unknown:
        raise ValueError(f"unknown machine option(s) {', '.join(sorted(unknown))}")
    if "ram" not in opts:
        raise ValueError("machine needs ram=N")
    kinds = {"protected": True, "np": False}
    guests = tuple(kinds[g] if g in kinds else _bad_guest(g)
                   for g in opts.get("guests", "").split(",") if g)
    ints = {}
    for key in ("ram", "mmio", "nomap", "pin_max", "count_max", "vcpus", "memcache"):
        if key in opts:
            if not re.fullmatch(r"\d+", opts[key]):
                raise ValueError(f"machine option {key}={opts[key]!r} is not a number")
            ints[key] = int(opts[key])
    discipline = {"on": True, "off": False}.get(opts.get("discipline", "on"))
    if discipline is None:
        raise ValueError("discipline must be on or off")
    records = {"on": True, "off": False}.get(opts.get("records", "off"))
    if records is None:
        raise ValueError("records must be on or off")
    pin_max = ints.get("pin_max", U16_MAX)
    config = Config(ram=ints["ram"], mmio=ints.get("mmio", 0), nomap=ints.get("nomap", 0),
                    guests=guests, pin_max=pin_max, vcpus=ints.get("vcpus", 1),
                    memcache=ints.get("memcache", 0),
                    max_pins=pin_max, count_max=ints.get("count_max", U32_MAX),
                    host_discipline=discipline, host_records=records)
    config.validate()
    return config, discipline


def _bad_guest(text):
    raise ValueError(f"guest kind {text!r} is neither protected nor np")


def parse_expect(text: str, config: Config) -> tuple[tuple, tuple]:
    head, sep, body = text.partition(":")
    if not sep:
        raise ValueError("expect needs `expect <subject>: <checks>`")
    words = head.split()
    pairs = []
    for item in body.split():
        key, eq, value = item.partition("=")
        pairs.append((key, value) if eq else (None, item))
    if len(words) == 2 and words[0] == "page":
        pfn = read_value(words[1], "pfn", CONSTANTS)
        if not 0 <= pfn < config.pages:
            raise ValueError(f"page {pfn} is not a RAM, MMIO or no-map page of the machine")
        guests = {f"vm{v}" for v in range(len(config.guests))}
        for key, value in pairs:
            if key is None or (key not in _PAGE_KEYS and key not in guests):
                raise ValueError(f"page check {key or value!r}: use key=value with key in "
                                 f"{', '.join(_PAGE_KEYS)} or vmN")
        pairs = [(k, str(read_value(v, k, CONSTANTS)) if k in ("pins", "count", "shared") else v)
                 for k, v in pairs]
        return ("page", pfn), tuple(pairs)
    vm = _vm_word(words[0], config) if words else None
    if len(words) == 1 and vm is not None:
        for key, value in pairs:
            if not (key == "life" and value in Life.__members__
                    or key in ("refs", "memcache") and re.fullmatch(r"\d+", value)):
                raise ValueError("vm check must be life=RUNNING|DYING|TORN_DOWN, refs=N or "
                                 "memcache=N")
        return ("vm", vm), tuple(pairs)
    if len(words) == 3 and vm is not None and words[1] == "gfn":
        gfn = read_value(words[2], "gfn", CONSTANTS)
        if not pairs or pairs[0][0] is not None or (
                pairs[0][1] not in _STATE_NAMES and pairs[0][1] != "none"):
            raise ValueError("entry check starts with a page state (OWNED, ..., POISON) or none")
        for key, value in pairs[1:]:
            if key not in ("pfn", "prot", "size", "mapping"):
                raise ValueError(f"entry check {key or value!r}: use pfn=, prot=, size=, "
                                 "mapping=PFN|none")
        pairs = [(k, str(read_value(v, "pfn" if k == "mapping" else k, CONSTANTS))
                  if k in ("pfn", "size") or k == "mapping" and v != "none" else v)
                 for k, v in pairs]
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


def _page_check(state: State, pfn: int, key: str) -> str:
    if key in ("host", "hyp", "ffa"):
        return _state_name(getattr(state, key)[pfn])
    if key in ("pins", "count", "shared"):
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
        if key == "mapping":  # the host's record of gfn: the pfn it names there
            m = find_mapping(state.maps[vm], gfn)
            out.append((key, want, "none" if m is None else str(m.pfn + gfn - m.gfn)))
            continue
        if leaf is None:
            got = "-"
        elif key == "pfn":
            got = str(leaf.pfn + gfn - leaf.gfn if leaf.state != POISON else 0)
        elif key == "prot":
            got = _prot_text(leaf.prot)
            want = _prot_text(read_value(want, "prot", CONSTANTS))
        else:
            got = str(leaf.size)
        out.append((key, want, got))
    return out


def check_expectation(state: State, subject: tuple, checks: tuple) -> list[tuple[str, str, str]]:
    """(what, expected, got) of every check of an expect line that does not hold on state."""
    kind = subject[0]
    if kind == "page":
        pfn = subject[1]
        results = [(k, v, _page_check(state, pfn, k)) for k, v in checks]
    elif kind == "vm":
        vm = subject[1]
        got = {"life": Life(state.life[vm]).name, "refs": str(state.refs[vm]),
               "memcache": str(state.mc[vm])}
        results = [(k, v, got[k]) for k, v in checks]
    else:
        results = _entry_checks(state, subject[1], subject[2], checks)
    return [(what, want, got) for what, want, got in results if want != got]




class PkvmPresenter:
    """The presenter the machinery asks (see `model/profile.py`)."""

    involved = staticmethod(involved)
    snapshot = staticmethod(snapshot)
    diff = staticmethod(diff_states)
    state_label = staticmethod(state_label)
    machine_text = staticmethod(machine_text)
    parse_machine = staticmethod(parse_machine)
    parse_expect = staticmethod(parse_expect)
    check_expectation = staticmethod(check_expectation)
    read_value = staticmethod(read_value)

    @staticmethod
    def constants(config: Config) -> dict:
        """Names a scenario's call lines may use: the kernel's limits and the machine's map."""
        return {**CONSTANTS, "RAM": config.ram, "MMIO": config.ram,
                "NOMAP": config.ram + config.mmio, "HOLE": config.pages}

    # The page view of `pkvm-model diagram`: one page's views, who holds it and how, drawn on
    # the smallest machine that shows every state of it.
    view_names = ("page",)
    diagram_defaults = {"pages": 1, "gfns": 1}

    @staticmethod
    def view_title(view: str, config: Config) -> str:
        kinds = ", ".join(f"vm{v} {'protected' if p else 'non-protected'}"
                          for v, p in enumerate(config.guests))
        return f"the state machine of one page (pfn 0; {kinds})"

    @staticmethod
    def view_key(view: str, config: Config, state: State) -> tuple:
        return page_views(config, state, 0)

    @staticmethod
    def view_label(view: str, config: Config, key: tuple) -> str:
        return page_label(config, key)
