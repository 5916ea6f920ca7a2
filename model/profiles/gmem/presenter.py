"""How gmem states are shown: one snapshot per object (the VM, each file, each slot, each gfn)
behind traces, conformance diffs, counterexamples, scenario `expect` lines and the `gfn`
diagram (the life of gfn 0: shared, private, punched, re-faulted). The fields an extension adds
are cells of their object (an index field `name` as `name0`, `name1`, ... of its file)."""

from __future__ import annotations

import re

from model.profiles.gmem.states import (
    DERIVED, FLAG_NAMES, FORCE_PRIVATE, FORCE_SHARED, INIT_SHARED, LEAF_NAMES, LOFF_PAGES, MMAP,
    NO_LEAF, PAGE_NAMES, PRIVATE_ATTR, VM_STATE_NAMES, VM_TYPES, VMFD, Config, State,
)
from model.syntax import read_number


def _name(table: dict, value) -> str:
    return table.get(value, f"?{value}")


def leaf_text(state: State, g: int) -> str:
    kind = state.lkind[g]
    if kind == NO_LEAF:
        return "none"
    backing = f"f{state.lfile[g] - 1}[{state.lidx[g]}]" if state.lfile[g] else "user"
    return f"{_name(LEAF_NAMES, kind)}:{backing}"


def _extra(state: State, extra: tuple, kind: str, *key) -> dict:
    """The cells of the extension fields of one kind at one key."""
    out = {}
    for field in extra:
        if field.kind != kind or not hasattr(state, field.name):  # (a reference's state)
            continue
        value = getattr(state, field.name)
        if kind == "index":
            for i, v in enumerate(value[key[0]]):
                out[f"{field.name}{i}"] = field.text(v)
        else:
            out[field.name] = field.text(value[key[0]] if key else value)
    return out


def vm_cells(state: State, vm_type: str | None = None, extra: tuple = ()) -> dict:
    out = {"state": _name(VM_STATE_NAMES, state.vm), "files": state.nfiles,
           **_extra(state, extra, "scalar")}
    if vm_type is not None:
        out = {"type": vm_type, **out}
    return out


def file_cells(state: State, f: int, extra: tuple = ()) -> dict:
    if f >= state.nfiles:
        return {"created": "no"}
    released = state.fd[f] == 0 and state.vmas[f] == 0
    out = {"size": state.fsize[f], "flags": _name(FLAG_NAMES, state.fflags[f]),
           "fd": "open" if state.fd[f] else "closed", "vmas": state.vmas[f],
           "released": "yes" if released else "no"}
    for i in range(len(state.page[f])):
        out[f"page{i}"] = _name(PAGE_NAMES, state.page[f][i])
        out[f"bind{i}"] = f"slot{state.bind[f][i] - 1}" if state.bind[f][i] else "-"
        out[f"pte{i}"] = "yes" if state.hpte[f][i] else "no"
    return {**out, **_extra(state, extra, "file", f), **_extra(state, extra, "index", f)}


def slot_cells(state: State, x: int, extra: tuple = ()) -> dict:
    if not state.sn[x]:
        return {"kind": "none"}
    return {"kind": "gmem" if state.sgmem[x] else "user", "base": state.sbase[x],
            "npages": state.sn[x],
            "file": f"f{state.sfile[x] - 1}" if state.sfile[x] else "none",
            "pgoff": state.spgoff[x], "gmem_only": "yes" if state.sonly[x] else "no",
            **_extra(state, extra, "slot", x)}


def gfn_cells(state: State, g: int, extra: tuple = ()) -> dict:
    return {"attr": "private" if state.attr[g] == PRIVATE_ATTR else "shared",
            "slot": f"slot{state.gslot[g] - 1}" if state.gslot[g] else "none",
            "leaf": leaf_text(state, g), **_extra(state, extra, "gfn", g)}


def involved(config: Config, trace: list) -> list:
    return ["vm", *[f"file{f}" for f in range(config.files)],
            *[f"slot{x}" for x in range(config.slots)], *[f"gfn{g}" for g in range(config.gfns)]]


def snapshot(config: Config, state: State, objects: list | None = None, extra: tuple = ()) -> dict:
    out = {"vm": vm_cells(state, config.vm, extra)}
    out.update({f"file{f}": file_cells(state, f, extra) for f in range(len(state.fsize))})
    out.update({f"slot{x}": slot_cells(state, x, extra) for x in range(len(state.sn))})
    out.update({f"gfn{g}": gfn_cells(state, g, extra) for g in range(len(state.attr))})
    if objects is not None:
        out = {k: v for k, v in out.items() if k in objects}
    return out


def diff(config: Config, a: State, b: State, extra: tuple = ()) -> list[tuple]:
    sa, sb = snapshot(config, a, extra=extra), snapshot(config, b, extra=extra)
    cells = []
    for name in dict.fromkeys([*sa, *sb]):
        ca, cb = sa.get(name, {}), sb.get(name, {})
        for key in dict.fromkeys([*ca, *cb]):
            va, vb = str(ca.get(key, "-")), str(cb.get(key, "-"))
            if va != vb:
                cells.append((name, key, va, vb))
    return cells


def state_label(config: Config, state: State) -> str:
    lines = [f"vm {_name(VM_STATE_NAMES, state.vm)}"]
    for f in range(state.nfiles):
        c = file_cells(state, f)
        pages = " ".join(f"{c[f'page{i}'][0]}{'*' if state.hpte[f][i] else ''}"
                         for i in range(len(state.page[f])))
        lines.append(f"f{f} {c['flags']} {c['fd']} v{c['vmas']} [{pages}]")
    for x in range(len(state.sn)):
        if state.sn[x]:
            c = slot_cells(state, x)
            lines.append(f"s{x} {c['kind']} {c['base']}+{c['npages']} {c['file']}@{c['pgoff']}")
    for g in range(len(state.attr)):
        if state.attr[g] or state.lkind[g]:
            lines.append(f"g{g} {gfn_cells(state, g)['attr'][0]} {leaf_text(state, g)}")
    return "\n".join(lines)


# -- scenario files --------------------------------------------------------------------------

def machine_text(config: Config) -> str:
    return (f"vm={config.vm} files={config.files} slots={config.slots} gfns={config.gfns} "
            f"pages={config.pages}")


MACHINE_KEYS = ("vm", "files", "slots", "gfns", "pages", "discipline")


def parse_machine(fields: list[str]) -> tuple[Config, bool]:
    opts = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"machine option {item!r} is not key=value")
        if key not in MACHINE_KEYS:
            raise ValueError(f"unknown machine option {key!r} (options: {', '.join(MACHINE_KEYS)})")
        if key in opts:
            raise ValueError(f"machine option {key} given twice")
        opts[key] = value
    if opts.get("vm", "sw_protected") not in VM_TYPES:
        raise ValueError(f"unknown VM type {opts['vm']!r}; one of: {', '.join(VM_TYPES)}")
    ints = {}
    for key in ("files", "slots", "gfns", "pages"):
        if key in opts:
            if not re.fullmatch(r"\d+", opts[key]):
                raise ValueError(f"machine option {key}={opts[key]!r} is not a number")
            ints[key] = int(opts[key])
    discipline = {"on": True, "off": False}.get(opts.get("discipline", "on"))
    if discipline is None:
        raise ValueError("discipline must be on or off")
    config = Config(vm=opts.get("vm", "sw_protected"), **ints, max_vmas=8, discipline=discipline)
    config = Config(**{**config.__dict__, "sizes": (0, config.pages)})
    config.validate()
    return config, discipline


def parse_expect(text: str, config: Config) -> tuple[tuple, tuple]:
    head, sep, body = text.partition(":")
    if not sep:
        raise ValueError("expect needs `expect <subject>: key=value ...`")
    words = head.split()
    checks = []
    for item in body.split():
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"expect check {item!r} is not key=value")
        checks.append((key, value))
    if not checks:
        raise ValueError("expect needs at least one key=value check")
    limits = {"file": config.files, "slot": config.slots, "gfn": config.gfns}
    if words == ["vm"]:
        subject = ("vm",)
        keys = ("state", "files")
    elif len(words) == 2 and words[0] in limits and words[1].isdigit():
        n = int(words[1])
        if n >= limits[words[0]]:
            raise ValueError(f"{words[0]} {n}: the machine has {limits[words[0]]}")
        subject = (words[0], n)
        keys = {"file": ("created", "size", "flags", "fd", "vmas", "released",
                         *[f"{k}{i}" for i in range(config.pages) for k in ("page", "bind", "pte")]),
                "slot": ("kind", "base", "npages", "file", "pgoff", "gmem_only"),
                "gfn": ("attr", "slot", "leaf")}[words[0]]
    else:
        raise ValueError("expect subject must be `vm`, `file F`, `slot S` or `gfn G`")
    for key, _ in checks:
        if key not in keys:
            raise ValueError(f"{' '.join(words)} has no cell {key!r} (cells: {', '.join(keys)})")
    return subject, tuple(checks)


def check_expectation(state: State, subject: tuple, checks: tuple) -> list[tuple[str, str, str]]:
    kind = subject[0]
    if kind == "vm":
        cells = vm_cells(state)
    elif kind == "file":
        cells = file_cells(state, subject[1])
    elif kind == "slot":
        cells = slot_cells(state, subject[1])
    else:
        cells = gfn_cells(state, subject[1])
    out = []
    for key, want in checks:
        got = str(cells.get(key, "-"))
        if got != want:
            out.append((key, want, got))
    return out


CONSTANTS = {"VMFD": VMFD, "MMAP": MMAP, "INIT_SHARED": INIT_SHARED, "DERIVED": DERIVED,
             "SHARED": FORCE_SHARED, "PRIVATE": FORCE_PRIVATE, "LOFF_PAGES": LOFF_PAGES}


def read_value(text: str, kind: str, consts: dict) -> int:
    """A number or a named constant (`model/syntax.py`); flags also as MMAP|INIT_SHARED."""
    return read_number(text.replace("|", "+") if kind == "flags" else text, consts)


class GmemPresenter:
    """The presenter of one gmem profile: its extensions' fields are cells too."""

    def __init__(self, fields: tuple = ()):
        self.extra = fields

    def snapshot(self, config: Config, state: State, objects: list | None = None) -> dict:
        return snapshot(config, state, objects, self.extra)

    def diff(self, config: Config, a: State, b: State) -> list[tuple]:
        return diff(config, a, b, self.extra)

    involved = staticmethod(involved)
    state_label = staticmethod(state_label)
    machine_text = staticmethod(machine_text)
    parse_machine = staticmethod(parse_machine)
    parse_expect = staticmethod(parse_expect)
    check_expectation = staticmethod(check_expectation)
    read_value = staticmethod(read_value)

    @staticmethod
    def constants(config: Config) -> dict:
        return {**CONSTANTS, "FILES": config.files, "SLOTS": config.slots, "GFNS": config.gfns,
                "PAGES": config.pages}

    # `pkvm-model diagram --profile gmem --view gfn`: the life of gfn 0.
    view_names = ("gfn",)
    diagram_defaults = {"files": 1, "slots": 1, "gfns": 1, "pages": 1}

    @staticmethod
    def view_title(view: str, config: Config) -> str:
        return (f"the life of gfn 0 ({config.vm} VM): its attribute, its leaf, the guest_memfd "
                "page at its index")

    @staticmethod
    def view_key(view: str, config: Config, state: State) -> tuple:
        x = state.gslot[0] - 1
        page = "-"
        if x >= 0 and state.sfile[x]:
            f, i = state.sfile[x] - 1, state.spgoff[x]
            page = _name(PAGE_NAMES, state.page[f][i])
        slot = "none" if x < 0 else ("gmem" if state.sgmem[x] else "user") + \
            ("" if x < 0 or not state.sgmem[x] or state.sfile[x] else " file-less")
        return (gfn_cells(state, 0)["attr"], leaf_text(state, 0), page, slot)

    @staticmethod
    def view_label(view: str, config: Config, key: tuple) -> str:
        attr, leaf, page, slot = key
        return f"{attr}\nleaf {leaf}\npage {page}\nslot {slot}"

