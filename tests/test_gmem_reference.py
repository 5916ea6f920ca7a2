"""Tests of the guest_memfd reference (model/references/gmem) against /work/shared's
GUEST_MEMFD.md as corrected by the kernel (docs/gmem-reference.md): check order and errnos
call by call, then random walks that keep the reference's own invariants."""

import ast
import pathlib
from errno import EBADF, EEXIST, EFAULT, EFBIG, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from model.references.gmem import (
    FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE,
    GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_ARM64_VM, KVM_EXIT_MEMORY_FAULT,
    KVM_EXIT_MMIO, KVM_FILTER_PRIVATE, KVM_MEM_GUEST_MEMFD, KVM_MEM_READONLY,
    KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_X86_DEFAULT_VM,
    KVM_X86_SNP_VM, KVM_X86_SW_PROTECTED_VM, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, GmemUsageError,
    Kvm, KvmExit, PageView, Process,
)

P = PAGE_SIZE
PUNCH = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
KEEP = FALLOC_FL_KEEP_SIZE
MMAP, SHARED = GUEST_MEMFD_FLAG_MMAP, GUEST_MEMFD_FLAG_INIT_SHARED
PRIVATE = KVM_MEMORY_ATTRIBUTE_PRIVATE
GMEM = KVM_MEM_GUEST_MEMFD
USER = 0x10000000
ROOT = pathlib.Path(__file__).resolve().parents[1]


def rejects(vm, err, call, *args):
    """The call fails with -err and changes nothing."""
    before = vm.snapshot()
    assert getattr(vm, call)(*args) == -err
    assert vm.snapshot() == before


def gmem_vm(vm_type=KVM_X86_SW_PROTECTED_VM, flags=0, npages=4, gfn=16):
    """A VM with one guest_memfd of npages bound at gfn through slot 1."""
    vm = Kvm(vm_type)
    fd = vm.create_guest_memfd(npages * P, flags)
    assert vm.set_user_memory_region2(1, GMEM, gfn * P, npages * P, USER, fd, 0) == 0
    return vm, fd


# -- independence ------------------------------------------------------------------------

def test_gmem_reference_imports_only_the_standard_library():
    for path in sorted((ROOT / "model/references/gmem").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 1 or node.module.split(".")[0] in (
                    "errno", "typing"), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in ("errno", "typing"), path.name


# -- VM creation ---------------------------------------------------------------------------

def test_unknown_vm_types_raise_one_line_errors():
    for vm_type in (7, KVM_X86_SNP_VM, -1):
        with pytest.raises(GmemUsageError) as err:
            Kvm(vm_type)
        assert "\n" not in str(err.value) and str(vm_type) in str(err.value)
    with pytest.raises(GmemUsageError):
        Kvm("x86")


# -- KVM_CREATE_GUEST_MEMFD ----------------------------------------------------------------

def test_create_checks_flags_then_size():
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    rejects(vm, EINVAL, "create_guest_memfd", P, SHARED)          # INIT_SHARED: private mem
    rejects(vm, EINVAL, "create_guest_memfd", P + 1, 0)
    rejects(vm, EINVAL, "create_guest_memfd", -P, 0)
    fd = vm.create_guest_memfd(P, MMAP)
    assert fd >= 3 and vm.files()[vm.file_of_fd(fd)] == (P, MMAP, 1, False, KVM_FILTER_PRIVATE)
    assert vm.vm_refs() == 2                                      # the file holds the VM
    assert vm.pages(vm.file_of_fd(fd)) == {}
    vm.close(vm.vm_fd)
    assert vm.create_guest_memfd(P, 0) == -EBADF


# -- KVM_SET_USER_MEMORY_REGION2 -------------------------------------------------------------

def test_region_check_order():
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    fd = vm.create_guest_memfd(4 * P, 0)
    rejects(vm, EINVAL, "set_user_memory_region2", 40000, 0, 0, P, USER)     # id >= USER_MEM_SLOTS
    rejects(vm, EINVAL, "set_user_memory_region2", 1, GMEM | KVM_MEM_READONLY, 0, P, USER, fd, 0)
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 0, P + 1, USER)
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 1, P, USER)
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 0, P, USER + 1)
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 0, P, 1 << 47)     # not access_ok
    rejects(vm, EINVAL, "set_user_memory_region2", 1, GMEM, 0, P, USER, 99, 1)   # before EBADF
    rejects(vm, EINVAL, "set_user_memory_region2", 1 << 16, 0, 0, P, USER)  # no SMM space
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 0, 0, 0)           # delete: no slot
    assert vm.set_user_memory_region2(1, 0, 0, 2 * P, USER) == 0
    rejects(vm, EEXIST, "set_user_memory_region2", 2, GMEM, P, P, USER, 99, 0)   # before EBADF
    rejects(vm, EBADF, "set_user_memory_region2", 2, GMEM, 4 * P, P, USER, 99, 0)
    rejects(vm, EINVAL, "set_user_memory_region2", 2, GMEM, 4 * P, P, USER, fd, 4 * P)
    rejects(vm, EINVAL, "set_user_memory_region2", 2, GMEM, 4 * P, P, USER, fd, -P)
    rejects(vm, EINVAL, "set_user_memory_region2", 2, GMEM, 4 * P, P, USER, vm.vm_fd, 0)
    rejects(vm, EINVAL, "set_user_memory_region2", 2, GMEM, 1 << 52, P, USER, fd, 0)  # > max gfn
    assert vm.bindings(vm.file_of_fd(fd)) == ()


def test_bind_sets_gmem_only_iff_mmap_and_holds_no_reference():
    for flags in (0, MMAP):
        vm, fd = gmem_vm(flags=flags)
        ino = vm.file_of_fd(fd)
        assert vm.slots()[(0, 1)].gmem_only == bool(flags & MMAP)
        assert vm.files()[ino].refs == 1
        assert vm.bindings(ino) == ((0, 4, (0, 1)),)
        # one file may back two slots, never on the same indices
        assert vm.set_user_memory_region2(2, GMEM, 64 * P, 2 * P, USER, fd, 2 * P) == -EINVAL
        vm2 = Kvm(KVM_X86_SW_PROTECTED_VM)
        fd2 = vm2.create_guest_memfd(4 * P, flags)
        assert vm2.set_user_memory_region2(1, GMEM, 0, 2 * P, USER, fd2, 0) == 0
        assert vm2.set_user_memory_region2(2, GMEM, 64 * P, 2 * P, USER, fd2, 2 * P) == 0


def test_gmem_slot_is_immutable_but_plain_slot_moves():
    vm, fd = gmem_vm()
    rejects(vm, EINVAL, "set_user_memory_region2", 1, GMEM, 16 * P, 4 * P, USER, fd, 0)
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 16 * P, 4 * P, USER)
    assert vm.set_user_memory_region2(2, 0, 0, P, USER) == 0
    assert vm.set_user_memory_region2(2, 0, 0, P, USER) == 0          # identical: nothing
    assert vm.guest_write(0, 5) == 0
    assert vm.set_user_memory_region2(2, 0, 8 * P, P, USER) == 0      # move: zap old gfns
    assert 0 not in vm.leaves() and vm.guest_read(8 * P) == 5


def test_delete_zaps_both_kinds_unbinds_and_keeps_pages_and_attributes():
    vm, fd = gmem_vm()
    ino = vm.file_of_fd(fd)
    assert vm.set_memory_attributes(16 * P, P, PRIVATE) == 0
    assert vm.guest_write(16 * P, 7) == 0 and vm.guest_write(17 * P, 8) == 0
    assert {leaf.kind for leaf in vm.leaves().values()} == {"private", "shared"}
    assert vm.set_user_memory_region2(1, GMEM, 16 * P, 0, 0, -1, 0) == 0
    assert vm.leaves() == {} and vm.bindings(ino) == () and vm.slots() == {}
    assert vm.attributes() == {16: PRIVATE}
    assert vm.page(ino, 0) == PageView("uptodate", 7)
    assert vm.guest_read(17 * P) == KvmExit(KVM_EXIT_MMIO, 0, 17 * P, 8, 0)
    assert vm.set_user_memory_region2(3, GMEM, 32 * P, P, USER, fd, 0) == 0
    assert vm.set_memory_attributes(32 * P, P, PRIVATE) == 0
    assert vm.guest_read(32 * P) == 7                                 # the old content


def test_arm64_prepare_order_and_undo():
    vm = Kvm(KVM_ARM64_VM)
    fd = vm.create_guest_memfd(4 * P, 0)
    ino = vm.file_of_fd(fd)
    rejects(vm, EFAULT, "set_user_memory_region2", 1, GMEM, 1 << 40, P, USER, fd, 0)  # IPA first
    rejects(vm, EINVAL, "set_user_memory_region2", 1, GMEM, 0, P, USER, fd, 0)        # no MMAP
    assert vm.bindings(ino) == ()
    rejects(vm, EBADF, "set_user_memory_region2", 1, GMEM, 0, P, USER, 99, 0)         # bind first
    rejects(vm, EINVAL, "set_user_memory_region2", 1, 0, 0, P, USER | (1 << 56))      # tagged
    # A failing MOVE has already zapped the old slot (kernel order: invalidate, then prepare).
    assert vm.set_user_memory_region2(2, 0, 0, P, USER) == 0
    assert vm.guest_read(0) == 0 and 0 in vm.leaves()
    assert vm.set_user_memory_region2(2, 0, 1 << 40, P, USER) == -EFAULT
    assert vm.leaves() == {} and vm.slots()[(0, 2)].base_gfn == 0


# -- KVM_SET_MEMORY_ATTRIBUTES ------------------------------------------------------------------

def test_attribute_checks():
    vm = Kvm(KVM_X86_DEFAULT_VM)
    rejects(vm, EINVAL, "set_memory_attributes", 0, P, PRIVATE)     # supported set is 0
    assert vm.set_memory_attributes(0, P, 0) == 0
    rejects(Kvm(KVM_ARM64_VM), EINVAL, "set_memory_attributes", 0, P, 0)   # no ioctl
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    rejects(vm, EINVAL, "set_memory_attributes", 0, P, PRIVATE, 1)
    rejects(vm, EINVAL, "set_memory_attributes", 0, P, 1 << 4)
    rejects(vm, EINVAL, "set_memory_attributes", 0, 0, PRIVATE)
    rejects(vm, EINVAL, "set_memory_attributes", (1 << 64) - P, P, PRIVATE)  # wraps
    rejects(vm, EINVAL, "set_memory_attributes", 1, P, PRIVATE)
    rejects(vm, ENOMEM, "set_memory_attributes", 0, 1 << 40, PRIVATE)       # xa_reserve fails


def test_conversion_zaps_every_leaf_in_range_and_equal_range_is_a_no_op():
    vm, fd = gmem_vm()
    assert vm.set_user_memory_region2(2, 0, 0, 2 * P, USER) == 0
    for gfn in (0, 1, 16, 17):
        assert vm.guest_read(gfn * P) == 0
    seq = vm.invalidate_seq()
    assert vm.set_memory_attributes(0, 2 * P, 0) == 0                      # equal: nothing
    assert vm.invalidate_seq() == seq and len(vm.leaves()) == 4
    assert vm.set_memory_attributes(P, 16 * P, PRIVATE) == 0               # gfns 1..16
    assert sorted(vm.leaves()) == [0, 17] and vm.invalidate_seq() == seq + 1
    assert vm.attributes() == {gfn: PRIVATE for gfn in range(1, 17)}       # slot or not
    assert vm.pages(vm.file_of_fd(fd)) == {}      # shared reads used userspace memory;
    assert vm.guest_read(16 * P) == 0             # the private fault allocates and zeroes
    assert vm.pages(vm.file_of_fd(fd)) == {0: PageView("uptodate", 0)}


# -- fallocate ------------------------------------------------------------------------------

def test_fallocate_check_order():
    vm, fd = gmem_vm()
    rejects(vm, EBADF, "fallocate", 99, KEEP, 0, P)
    rejects(vm, ENODEV, "fallocate", vm.vm_fd, KEEP, 0, P)                  # not S_IFREG
    rejects(vm, EINVAL, "fallocate", fd, 0xff, 0, 0)                        # len first
    rejects(vm, EINVAL, "fallocate", fd, KEEP, -P, P)
    rejects(vm, EOPNOTSUPP, "fallocate", fd, FALLOC_FL_PUNCH_HOLE, 0, P)    # VFS
    rejects(vm, EOPNOTSUPP, "fallocate", fd, KEEP | FALLOC_FL_COLLAPSE_RANGE, 1, 1)
    rejects(vm, EOPNOTSUPP, "fallocate", fd, 0, 0, P)                       # no KEEP_SIZE
    rejects(vm, EOPNOTSUPP, "fallocate", fd, KEEP | FALLOC_FL_ZERO_RANGE, 1, 1)  # before EINVAL
    rejects(vm, EFBIG, "fallocate", fd, KEEP, 1 << 62, 1 << 62)
    rejects(vm, EINVAL, "fallocate", fd, KEEP, 1, P)
    rejects(vm, EINVAL, "fallocate", fd, KEEP, 3 * P, 2 * P)                # past the end
    assert vm.fallocate(fd, PUNCH, 64 * P, P) == 0                          # punch past the end


def test_allocate_is_not_all_or_nothing_and_is_never_observed():
    vm = Kvm(KVM_X86_DEFAULT_VM, Process(max_folios=2))
    fd = vm.create_guest_memfd(4 * P, MMAP | SHARED)
    ino = vm.file_of_fd(fd)
    assert vm.fallocate(fd, KEEP, 0, 4 * P) == -ENOMEM
    assert vm.pages(ino) == {0: PageView("allocated", None), 1: PageView("allocated", None)}
    vm.mmap(fd, 4 * P, MAP_SHARED)
    assert vm.host_read(fd, P) == 0                                         # zeroed on hand-out
    assert vm.page(ino, 1) == PageView("uptodate", 0)


def test_punch_zaps_all_leaves_without_mirrored_tdp():
    vm, fd = gmem_vm(KVM_X86_SW_PROTECTED_VM)
    assert vm.set_memory_attributes(16 * P, P, PRIVATE) == 0
    assert vm.guest_write(16 * P, 1) == 0 and vm.guest_write(17 * P, 2) == 0
    assert vm.fallocate(fd, PUNCH, 0, 2 * P) == 0
    assert vm.leaves() == {}                         # the shared (userspace) leaf goes too
    assert vm.user_read(USER + P) == 2 and vm.guest_read(17 * P) == 2
    assert vm.guest_read(16 * P) == 0                # a new, zeroed page


def test_mirrored_tdp_honours_the_file_filter():
    vm, fd = gmem_vm(KVM_X86_SW_PROTECTED_VM)
    vm.kvm.arch = vm.kvm.arch._replace(has_mirrored_tdp=True)   # as TDX would
    vm.set_memory_attributes(16 * P, P, PRIVATE)
    vm.guest_write(16 * P, 1)
    vm.guest_write(17 * P, 2)
    assert vm.fallocate(fd, PUNCH, 0, 2 * P) == 0    # file filter PRIVATE
    assert sorted(vm.leaves()) == [17]


def test_punch_removes_host_ptes():
    vm, fd = gmem_vm(KVM_X86_DEFAULT_VM, MMAP | SHARED)
    ino = vm.file_of_fd(fd)
    vm.mmap(fd, 4 * P, MAP_SHARED)
    assert vm.host_write(fd, 0, 9) == 0 and vm.guest_read(16 * P) == 9     # GMEM_ONLY
    assert vm.host_mappings() == {ino: frozenset({0})}
    assert vm.fallocate(fd, PUNCH, 0, P) == 0
    assert vm.host_mappings() == {ino: frozenset()} and vm.leaves() == {}
    assert vm.pages(ino) == {}
    assert vm.guest_read(16 * P) == 0 and vm.host_read(fd, 0) == 0


# -- mmap, host faults, release, destroy ------------------------------------------------------------

def test_mmap_checks_and_vma_reference():
    vm = Kvm(KVM_X86_DEFAULT_VM)
    fd0 = vm.create_guest_memfd(P, 0)
    fd = vm.create_guest_memfd(P, MMAP | SHARED)
    assert vm.mmap(99, P, MAP_SHARED) == -EBADF
    assert vm.mmap(fd0, P, MAP_SHARED) == -ENODEV
    assert vm.mmap(fd, P, MAP_PRIVATE) == -EINVAL
    assert vm.mmap(fd, 0, MAP_SHARED) == -EINVAL
    ino = vm.file_of_fd(fd)
    addr = vm.mmap(fd, P, MAP_SHARED)
    assert vm.files()[ino].refs == 2
    assert vm.close(fd) == 0 and not vm.files()[ino].released
    assert vm.host_read(fd, 0) == -EBADF                      # no fd names it any more
    assert vm.munmap(addr) == 0 and vm.files()[ino].released
    assert vm.close(fd) == -EBADF


def test_release_leaves_file_less_slots_and_drops_the_vm():
    vm, fd = gmem_vm(KVM_ARM64_VM, MMAP | SHARED)
    assert vm.guest_write(16 * P, 4) == 0
    assert vm.close(vm.vm_fd) == 0 and not vm.destroyed
    assert vm.guest_read(16 * P) == -EBADF                     # the vCPU went with the VM fd
    assert vm.close(fd) == 0 and vm.destroyed and vm.slots() == {}

    vm, fd = gmem_vm(KVM_ARM64_VM, MMAP | SHARED)
    assert vm.guest_write(16 * P, 4) == 0
    assert vm.close(fd) == 0
    assert vm.slots()[(0, 1)].file is None and vm.slots()[(0, 1)].gmem_only
    assert vm.guest_read(16 * P) == KvmExit(KVM_EXIT_MEMORY_FAULT, 0, 16 * P, P, EFAULT)


def test_forced_access_kinds():
    with pytest.raises(GmemUsageError):
        Kvm(KVM_X86_DEFAULT_VM).guest_read(0, private=True)
    vm, fd = gmem_vm()
    assert vm.guest_read(16 * P, private=True) == KvmExit(
        KVM_EXIT_MEMORY_FAULT, KVM_MEMORY_EXIT_FLAG_PRIVATE, 16 * P, P, EFAULT)
    vm.set_memory_attributes(16 * P, P, PRIVATE)
    assert vm.guest_read(16 * P + 8, private=False) == KvmExit(
        KVM_EXIT_MEMORY_FAULT, 0, 16 * P, P, EFAULT)
    assert vm.leaves() == {}
    # Through a present leaf no access faults, whatever its kind: no private bit in hardware.
    assert vm.guest_write(16 * P, 7) == 0 and vm.leaves() != {}
    assert vm.guest_read(16 * P, private=False) == 7


@pytest.mark.parametrize("vm_type, left", [(KVM_X86_DEFAULT_VM, 0), (KVM_X86_SW_PROTECTED_VM, 1)])
def test_deleting_a_slot_zaps_every_leaf_of_a_default_vm(vm_type, left):
    """kvm_arch_flush_shadow_memslot(): KVM_X86_QUIRK_SLOT_ZAP_ALL on an x86 default VM zaps
    the whole VM, other VM types only the slot's leaves."""
    vm = Kvm(vm_type)
    assert vm.set_user_memory_region2(1, 0, 0, P, USER) == 0
    assert vm.set_user_memory_region2(2, 0, P, P, USER + P) == 0
    assert vm.guest_read(0) == 0 and vm.guest_read(P) == 0 and len(vm.leaves()) == 2
    assert vm.set_user_memory_region2(2, 0, P, 0, USER + P) == 0
    assert len(vm.leaves()) == left


def test_readonly_slot_write_is_mmio():
    vm = Kvm(KVM_X86_DEFAULT_VM)
    assert vm.set_user_memory_region2(1, KVM_MEM_READONLY, 0, P, USER) == 0
    vm.user_write(USER, 3)
    assert vm.guest_read(0) == 3
    assert vm.guest_write(8, 1) == KvmExit(KVM_EXIT_MMIO, 0, 8, 8, 0)
    assert vm.user_read(USER) == 3


# -- random walks ----------------------------------------------------------------------------------

NPAGES_MAX = 4
GFNS = 12


class GmemMachine(RuleBasedStateMachine):
    """Random calls on one VM; after each, the reference's invariants hold, and every call
    that failed changed nothing (ALLOCATE and KVM_PRE_FAULT_MEMORY excepted)."""

    @initialize(vm_type=st.sampled_from([KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM,
                                         KVM_ARM64_VM]))
    def start(self, vm_type):
        """One mappable file, mapped, bound at gfn 0 through slot 0."""
        self.vm = Kvm(vm_type)
        fd = self.vm.create_guest_memfd(NPAGES_MAX * P, self.vm.supported_guest_memfd_flags())
        assert self.vm.mmap(fd, NPAGES_MAX * P, MAP_SHARED) > 0
        assert self.vm.set_user_memory_region2(0, GMEM, 0, 2 * P, USER, fd, 0) == 0
        self.fds = [fd]

    def call(self, name, *args, partial=False):
        before = self.vm.snapshot()
        r = getattr(self.vm, name)(*args)
        if isinstance(r, int) and r < 0 and not partial:
            assert self.vm.snapshot() == before, (name, args, r)
        return r

    def fd(self, i):
        return self.fds[i % len(self.fds)] if self.fds else 99

    @rule(npages=st.integers(1, NPAGES_MAX), flags=st.sampled_from([0, MMAP, MMAP | SHARED, 4]))
    def create(self, npages, flags):
        fd = self.call("create_guest_memfd", npages * P, flags)
        if fd >= 0:
            self.fds.append(fd)

    @rule(id=st.integers(0, 3), gfn=st.integers(0, GFNS), npages=st.integers(0, NPAGES_MAX),
          i=st.integers(0, 3), pgoff=st.integers(0, 3), gmem=st.booleans())
    def region(self, id, gfn, npages, i, pgoff, gmem):
        self.call("set_user_memory_region2", id, GMEM if gmem else 0, gfn * P, npages * P,
                  USER + 64 * id * P, self.fd(i), pgoff * P)

    @rule(gfn=st.integers(0, GFNS), n=st.integers(1, 4), private=st.booleans())
    def attributes(self, gfn, n, private):
        self.call("set_memory_attributes", gfn * P, n * P, PRIVATE if private else 0)

    @rule(i=st.integers(0, 3), page=st.integers(0, 4), n=st.integers(1, 3))
    def punch(self, i, page, n):
        fd = self.fd(i)
        ino = self.vm.file_of_fd(fd)
        if self.call("fallocate", fd, PUNCH, page * P, n * P) == 0:
            doomed = set(range(page, page + n))
            assert not any(leaf.backing[:2] == ("gmem", ino) and leaf.backing[2] in doomed
                           for leaf in self.vm.leaves().values())
            assert not doomed & self.vm.host_mappings().get(ino, frozenset())
            assert not doomed & set(self.vm.pages(ino))

    @rule(i=st.integers(0, 3), page=st.integers(0, 4), n=st.integers(1, 3))
    def allocate(self, i, page, n):
        self.call("fallocate", self.fd(i), KEEP, page * P, n * P, partial=True)

    @rule(i=st.integers(0, 3), shared=st.booleans())
    def mmap(self, i, shared):
        self.call("mmap", self.fd(i), NPAGES_MAX * P, MAP_SHARED if shared else MAP_PRIVATE)

    @rule(i=st.integers(0, 3), page=st.integers(0, NPAGES_MAX), value=st.integers(1, 9),
          write=st.booleans())
    def host_access(self, i, page, value, write):
        r = self.call("host_write", self.fd(i), page * P, value) if write else \
            self.call("host_read", self.fd(i), page * P)
        assert r is not None                      # a not-uptodate page is never observed

    @rule(gfn=st.integers(0, GFNS), value=st.integers(1, 9), write=st.booleans())
    def guest_access(self, gfn, value, write):
        r = self.vm.guest_write(gfn * P, value) if write else self.vm.guest_read(gfn * P)
        assert r is not None
        if isinstance(r, KvmExit) and r.reason == KVM_EXIT_MEMORY_FAULT:
            assert gfn not in self.vm.leaves() and r.gpa == gfn * P and r.size == P

    @rule(gfn=st.integers(0, GFNS), n=st.integers(1, 3))
    def pre_fault(self, gfn, n):
        self.call("pre_fault_memory", gfn * P, n * P, partial=True)

    @rule(i=st.integers(0, 3))
    def close(self, i):
        if self.fds:
            fd = self.fds.pop(i % len(self.fds))
            assert self.call("close", fd) == 0

    @rule(n=st.integers(0, 3))
    def munmap(self, n):
        vmas = sorted(self.vm.process.vmas)
        if vmas:
            assert self.call("munmap", vmas[n % len(vmas)]) == 0

    # -- invariants ---------------------------------------------------------------------

    def inodes(self):
        return {ino: inode for ino, inode in self.vm.process.inodes.items()
                if inode.kvm is self.vm.kvm}

    @invariant()
    def host_never_maps_a_page_bound_to_a_private_gfn(self):
        attrs = self.vm.attributes()
        slots = self.vm.slots()
        for ino, indices in self.vm.host_mappings().items():
            for lo, hi, key in self.vm.bindings(ino):
                slot = slots[key]
                for index in indices & set(range(lo, hi)):
                    assert not attrs.get(slot.base_gfn + index - slot.pgoff, 0) & PRIVATE

    @invariant()
    def mappings_point_at_the_current_uptodate_folio(self):
        inodes = self.inodes()
        for spte in self.vm.kvm.stage2.values():
            if spte.folio is not None:
                assert inodes[spte.ino].i_pages.get(spte.index) is spte.folio
                assert spte.folio.uptodate
        for vma in self.vm.process.vmas.values():
            for index, folio in vma.ptes.items():
                assert vma.vm_file.private_data.i_pages.get(index) is folio and folio.uptodate

    @invariant()
    def bindings_within_live_slots(self):
        slots = self.vm.slots()
        for ino, view in self.vm.files().items():
            for lo, hi, key in self.vm.bindings(ino):
                slot = slots[key]
                assert slot.file == ino and (slot.pgoff, slot.pgoff + slot.npages) == (lo, hi)
        for key, slot in slots.items():
            if slot.file is not None:
                assert any(b.slot == key for b in self.vm.bindings(slot.file))

    @invariant()
    def leaves_agree_with_attributes_and_slots(self):
        slots = self.vm.slots().values()
        attrs = self.vm.attributes()
        for gfn, leaf in self.vm.leaves().items():
            slot = next(s for s in slots if s.base_gfn <= gfn < s.base_gfn + s.npages)
            assert (leaf.kind == "private") == bool(attrs.get(gfn, 0) & PRIVATE)
            if leaf.kind == "private":
                assert slot.file is not None
            if leaf.backing[0] == "gmem":
                assert slot.file == leaf.backing[1]
                assert leaf.backing[2] == gfn - slot.base_gfn + slot.pgoff

    @invariant()
    def vm_outlives_its_files(self):
        live = [v for v in self.vm.files().values() if not v.released]
        assert not (self.vm.destroyed and live)
        assert self.vm.vm_refs() == (0 if self.vm.destroyed else 1) + len(live)


TestGmemMachine = GmemMachine.TestCase
TestGmemMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
