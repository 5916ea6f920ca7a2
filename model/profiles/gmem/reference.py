"""The conformance adapter: `model/references/gmem` (the reference KVM) as the machinery sees it.

Calls in pages become the reference's byte-level ioctls; model file f is the f-th guest_memfd
created (its fd while open, else an fd number never used, so EBADF); slot x is memslot (0, x)
with userspace_addr USER + gfn << 12, so the host page behind gfn g is always USER_PAGE + g;
an mmap maps MMAP_PAGES pages; guest and host writes store GUEST_VALUE / HOST_VALUE. Outcomes
become the model's codes: KvmExit and Signal included, with gpa and size checked against the
call (a wrong one is a code the model never gives). This is the only module importing it.
"""

from __future__ import annotations

import copy

from model.profile import Unrepresentable
from model.profiles.gmem.states import (
    ABSENT, ALLOCATED, CLOSED, DERIVED, DESTROYED, EXIT_MMIO, FORCE_PRIVATE, FORCE_SHARED, GUEST,
    GUEST_VALUE, HOST, HOST_VALUE, MMAP_PAGES, NO_LEAF, OPEN, PRIVATE_LEAF, SHARED_LEAF, SIGBUS,
    SIGSEGV, VMFD, ZERO, Config, State, memfault_code,
)
from model.references import gmem as ref
from model.references.gmem import guest_memfd as _gmem, kvm_main as _main

_SINGLETONS = (_gmem.kvm_gmem_fops, _gmem.kvm_gmem_vm_ops, _main.kvm_vm_fops,
               _main.kvm_chardev_ops)

PAGE = ref.PAGE_SIZE
USER = 0x10000000
USER_PAGE = USER >> 12
BAD_EXIT = -(1 << 20)  # an exit whose gpa, size or flags the model cannot describe
VM_TYPE = {"x86": ref.KVM_X86_DEFAULT_VM, "sw_protected": ref.KVM_X86_SW_PROTECTED_VM,
           "arm64": ref.KVM_ARM64_VM}
CONTENT = {0: ZERO, GUEST_VALUE: GUEST, HOST_VALUE: HOST}


class Machine:
    """One reference VM with the adapter's bookkeeping: fds and VMAs per model file."""

    def __init__(self, config: Config):
        self.config = config
        self.kvm = ref.Kvm(VM_TYPE[config.vm])
        self.fds: list = []  # per model file: its fd, None once closed
        self.vmas: list = []  # per model file: the addresses of its VMAs, in mmap order

    def fd(self, f: int) -> int:
        if f == VMFD:
            return self.kvm.vm_fd
        if 0 <= f < len(self.fds) and self.fds[f] is not None:
            return self.fds[f]
        return 1000 + (f if 0 <= f < 1000 else 999)  # never an open fd: EBADF

    def ino(self, f: int) -> int:
        return sorted(self.kvm.files())[f]


def _run(m: Machine, gfn: int, result) -> int:
    if isinstance(result, ref.KvmExit):
        if result.reason == ref.KVM_EXIT_MMIO:
            return EXIT_MMIO if result.gpa == gfn * PAGE and result.size == 8 else BAD_EXIT
        if (result.reason != ref.KVM_EXIT_MEMORY_FAULT or result.gpa != gfn * PAGE
                or result.size != PAGE or result.flags & ~ref.KVM_MEMORY_EXIT_FLAG_PRIVATE):
            return BAD_EXIT
        return memfault_code(bool(result.flags), result.errno)
    return result if isinstance(result, int) and result < 0 else 0


def _host(result) -> int:
    if isinstance(result, ref.Signal):
        return SIGBUS if result.name == "SIGBUS" else SIGSEGV
    return result if result < 0 else 0


def invoke(m: Machine, call) -> int:
    k, a = m.kvm, call.args
    name = call.name
    if name == "create_file":
        r = k.create_guest_memfd(a[0] * PAGE, a[1])
        if r >= 0:
            m.fds.append(r)
            m.vmas.append([])
            return 0
        return r
    if name == "bind_slot":
        slot, gfn, npages, f, pgoff = a
        return k.set_user_memory_region2(slot, ref.KVM_MEM_GUEST_MEMFD, gfn * PAGE, npages * PAGE,
                                         USER + gfn * PAGE, m.fd(f), pgoff * PAGE)
    if name == "add_slot":
        slot, gfn, npages = a
        return k.set_user_memory_region2(slot, 0, gfn * PAGE, npages * PAGE, USER + gfn * PAGE)
    if name == "delete_slot":
        return k.set_user_memory_region2(a[0], 0, 0, 0, 0)
    if name == "set_attributes":
        gfn, count, private = a
        return k.set_memory_attributes(gfn * PAGE, count * PAGE,
                                       ref.KVM_MEMORY_ATTRIBUTE_PRIVATE * private)
    if name in ("allocate", "punch"):
        f, index, count = a
        mode = ref.FALLOC_FL_KEEP_SIZE | (ref.FALLOC_FL_PUNCH_HOLE if name == "punch" else 0)
        return k.fallocate(m.fd(f), mode, index * PAGE, count * PAGE)
    if name == "mmap":
        r = k.mmap(m.fd(a[0]), MMAP_PAGES * PAGE, ref.MAP_SHARED)
        if r < 0:
            return r
        m.vmas[a[0]].append(r)
        return 0
    if name == "munmap":
        f = a[0]
        vmas = m.vmas[f] if 0 <= f < len(m.vmas) else []
        return k.munmap(vmas.pop(0) if vmas else 0x1000)
    if name in ("host_read", "host_write"):
        f, index = a
        if name == "host_read":
            return _host(k.host_read(m.fd(f), index * PAGE))
        return _host(k.host_write(m.fd(f), index * PAGE, HOST_VALUE))
    if name in ("guest_read", "guest_write"):
        gfn, kind = a
        private = {DERIVED: None, FORCE_SHARED: False, FORCE_PRIVATE: True}[kind]
        if name == "guest_read":
            return _run(m, gfn, k.guest_read(gfn * PAGE, private))
        return _run(m, gfn, k.guest_write(gfn * PAGE, GUEST_VALUE, private))
    if name == "pre_fault":
        return k.pre_fault_memory(a[0] * PAGE, PAGE)
    if name == "close_file":
        r = k.close(m.fd(a[0]))
        if r == 0:
            m.fds[a[0]] = None
        return r
    if name == "close_vm":
        return k.close(k.vm_fd)
    raise ValueError(f"unknown call {name}")


def abstract(m: Machine, config: Config | None = None) -> State:
    """The model state the reference is in; Unrepresentable past the machine's bounds."""
    config = config or m.config
    k = m.kvm
    files = k.files()
    inos = sorted(files)
    if len(inos) > config.files:
        raise Unrepresentable(f"{len(inos)} guest_memfds, the machine has {config.files}")
    ino_index = {ino: f for f, ino in enumerate(inos)}
    vm = DESTROYED if k.destroyed else OPEN if k._vm_fd_ok() else CLOSED
    nf, P, S, G = len(inos), config.pages, config.slots, config.gfns
    fsize, fflags, fd, vmas = [0] * config.files, [0] * config.files, [0] * config.files, \
        [0] * config.files
    page = [[ABSENT] * P for _ in range(config.files)]
    bind = [[0] * P for _ in range(config.files)]
    hpte = [[0] * P for _ in range(config.files)]
    maps = k.host_mappings()
    live = 0
    for f, ino in enumerate(inos):
        view = files[ino]
        if view.size % PAGE or view.size // PAGE > P:
            raise Unrepresentable(f"file {f} of {view.size} bytes")
        fsize[f], fflags[f] = view.size // PAGE, view.flags
        fd[f] = 1 if k.file_of_fd(m.fds[f]) == ino and m.fds[f] is not None else 0
        vmas[f] = len(m.vmas[f])
        if view.refs != fd[f] + vmas[f] or view.released != (view.refs == 0):
            raise Unrepresentable(f"file {f}: {view.refs} references, released {view.released}")
        live += not view.released
        for i, pv in k.pages(ino).items():
            if i >= P:
                raise Unrepresentable(f"file {f} has a page at index {i}")
            if pv.state == "allocated":
                page[f][i] = ALLOCATED
            elif pv.content not in CONTENT:
                raise Unrepresentable(f"file {f} index {i} holds {pv.content!r}")
            else:
                page[f][i] = CONTENT[pv.content]
        for b in k.bindings(ino):
            for i in range(b.start, b.end):
                bind[f][i] = b.slot[1] + 1
        for i in maps.get(ino, ()):
            hpte[f][i] = 1
    if k.vm_refs() != (vm == OPEN) + live:
        raise Unrepresentable(f"the VM has {k.vm_refs()} references")
    sn, sbase, sgmem, sfile, spgoff, sonly = ([0] * S for _ in range(6))
    gslot = [0] * G
    for (as_id, x), sv in k.slots().items():
        if as_id != 0 or x >= S:
            raise Unrepresentable(f"slot ({as_id}, {x})")
        if sv.userspace_addr != USER + sv.base_gfn * PAGE or sv.base_gfn + sv.npages > G:
            raise Unrepresentable(f"slot {x} at gfn {sv.base_gfn}")
        sn[x], sbase[x] = sv.npages, sv.base_gfn
        sgmem[x] = 1 if sv.flags & ref.KVM_MEM_GUEST_MEMFD else 0
        sfile[x] = ino_index[sv.file] + 1 if sv.file is not None else 0
        spgoff[x] = sv.pgoff if sgmem[x] else 0
        sonly[x] = 1 if sv.gmem_only else 0
        for g in range(sv.base_gfn, sv.base_gfn + sv.npages):
            gslot[g] = x + 1
    attr = [0] * G
    for g, value in k.attributes().items():
        if g >= G or value != ref.KVM_MEMORY_ATTRIBUTE_PRIVATE:
            raise Unrepresentable(f"gfn {g} has attributes {value}")
        attr[g] = 1
    lkind, lfile, lidx = [0] * G, [0] * G, [0] * G
    for g, leaf in k.leaves().items():
        if g >= G or not leaf.writable:
            raise Unrepresentable(f"a leaf at gfn {g}")
        lkind[g] = PRIVATE_LEAF if leaf.kind == "private" else SHARED_LEAF
        if leaf.backing[0] == "gmem":
            lfile[g], lidx[g] = ino_index[leaf.backing[1]] + 1, leaf.backing[2]
        elif leaf.backing != ("user", USER_PAGE + g):
            raise Unrepresentable(f"gfn {g} maps {leaf.backing}")
    t = tuple
    return State(vm, nf, t(fsize), t(fflags), t(fd), t(vmas), t(map(t, page)), t(map(t, bind)),
                 t(map(t, hpte)), t(sn), t(sbase), t(sgmem), t(sfile), t(spgoff), t(sonly),
                 t(attr), t(gslot), t(lkind), t(lfile), t(lidx))


WALK_CONFIGS = (Config(vm="sw_protected", files=3, slots=3, gfns=8, pages=4),
                Config(vm="x86", files=3, slots=3, gfns=8, pages=4),
                Config(vm="arm64", files=3, slots=3, gfns=8, pages=4))


class GmemReference:
    name = "the reference KVM (model/references/gmem)"
    walk_configs = WALK_CONFIGS
    walk_weights = {"close_vm": 0, "close_file": 1, "create_file": 4, "bind_slot": 5}

    @staticmethod
    def fresh(config: Config) -> Machine:
        return Machine(config)

    invoke = staticmethod(invoke)
    abstract = staticmethod(abstract)

    @staticmethod
    def clone(m: Machine) -> Machine:
        """A deep copy sharing the reference's operation tables (compared by identity)."""
        return copy.deepcopy(m, {id(x): x for x in _SINGLETONS})

    @staticmethod
    def identical(a: Machine, b: Machine) -> bool:
        return (a.kvm.snapshot() == b.kvm.snapshot() and a.fds == b.fds and a.vmas == b.vmas
                and a.kvm.invalidate_seq() == b.kvm.invalidate_seq())

    @staticmethod
    def breach(m, call):
        return None

    @staticmethod
    def walk_values(config: Config) -> dict:
        G, P, F, S = config.gfns, config.pages, config.files, config.slots
        return {
            "size": [P, P, 1, 2, 0, P + 0, 1 << 51, (1 << 52) - 1],
            "flags": [0, 1, 1, 3, 3, 2, 4, 1 << 63],
            "slot": list(range(S)) * 3,
            "gfn": list(range(G)) * 2,
            "npages": [1, 1, 2, 2, 3],
            "file": list(range(F)) * 3 + [VMFD, F],
            "pgoff": list(range(P)) * 2,
            "index": list(range(P)) * 2 + [P, MMAP_PAGES, 1 << 40],
            "count": [1, 1, 2, 0, P],
            "private": [0, 1, 1, 2],
            "kind": [0, 0, 0, 1, 2],
        }

    @staticmethod
    def targeted_calls(transitions: dict, config: Config, state: State, late: bool) -> list:
        out = []
        call = lambda name, *args: out.append(transitions[name].call(*args)) \
            if name in transitions else None
        for g in range(config.gfns):
            for kind in (0, 0, 1, 2):
                call("guest_write", g, kind)
                call("guest_read", g, kind)
            call("set_attributes", g, 1, 1 - state.attr[g])
            call("pre_fault", g)
        for f in range(state.nfiles):
            for i in range(state.fsize[f]):
                call("punch", f, i, 1)
                call("allocate", f, i, 1)
                call("host_write", f, i)
            call("mmap", f)
            for x in range(config.slots):
                if not state.sn[x]:
                    for g in range(config.gfns):
                        call("bind_slot", x, g, 1, f, g % max(1, state.fsize[f]))
        for x in range(config.slots):
            if state.sn[x]:
                call("delete_slot", x)
            else:
                call("add_slot", x, x, 1)
        if state.nfiles < config.files:
            call("create_file", config.pages, 1)
            call("create_file", config.pages, 3)
        if late:
            for f in range(state.nfiles):
                call("close_file", f)
                call("munmap", f)
            call("close_vm")
        return out
