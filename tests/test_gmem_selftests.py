"""The kernel's guest_memfd selftests, step by step, against model/references/gmem.

Each test names its selftest file and function (tools/testing/selftests/kvm/, Linux 7.1);
each step carries the selftest's expected result. Guest code is replayed as the sequence of
accesses it makes; the hypercall exits of private_mem_conversions_test.c become the host
calls its handler makes (fallocate, KVM_SET_MEMORY_ATTRIBUTES).
"""

from errno import EBADF, EEXIST, EFAULT, EINVAL, ENOENT

import pytest

from model.references.gmem import (
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GUEST_MEMFD_FLAG_INIT_SHARED,
    GUEST_MEMFD_FLAG_MMAP, KVM_ARM64_VM, KVM_EXIT_MEMORY_FAULT, KVM_EXIT_MMIO,
    KVM_MEM_GUEST_MEMFD, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_MEMORY_ATTRIBUTE_PRIVATE,
    KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, MAP_PRIVATE,
    MAP_SHARED, PAGE_SIZE, Kvm, Process, Signal,
)

PUNCH = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
SZ_2M = 2 << 20
SZ_4G = 4 << 30
USER = 0x10000000      # where the test's anonymous memory lives
MMAP = GUEST_MEMFD_FLAG_MMAP
SHARED = GUEST_MEMFD_FLAG_INIT_SHARED


def pages(size):
    return range(0, size, PAGE_SIZE)


# -- guest_memfd_test.c --------------------------------------------------------------------

def flag_sets(vm_type):
    """test_guest_memfd(): 0, then MMAP and MMAP|INIT_SHARED where supported."""
    supported = Kvm(vm_type).supported_guest_memfd_flags()
    sets = [0, MMAP]
    if supported & SHARED:
        sets.append(MMAP | SHARED)
    return sets


VM_TYPES = [KVM_X86_DEFAULT_VM, KVM_X86_SW_PROTECTED_VM, KVM_ARM64_VM]


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_guest_memfd_flags(vm_type):
    """guest_memfd_test.c test_guest_memfd_flags(): each of the 64 bits alone."""
    vm = Kvm(vm_type)
    valid = vm.supported_guest_memfd_flags()
    assert valid == (MMAP if vm_type == KVM_X86_SW_PROTECTED_VM else MMAP | SHARED)
    for bit in range(64):
        fd = vm.create_guest_memfd(PAGE_SIZE, 1 << bit)
        if (1 << bit) & valid:
            assert fd >= 0
            assert vm.close(fd) == 0
        else:
            assert fd == -EINVAL


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_create_guest_memfd_multiple_and_invalid_sizes(vm_type):
    """test_create_guest_memfd_multiple(), test_create_guest_memfd_invalid_sizes()."""
    vm = Kvm(vm_type)
    fd1 = vm.create_guest_memfd(PAGE_SIZE, 0)
    fd2 = vm.create_guest_memfd(2 * PAGE_SIZE, 0)
    assert fd1 >= 0 and fd2 >= 0
    ino1, ino2 = vm.file_of_fd(fd1), vm.file_of_fd(fd2)
    assert ino1 != ino2                                   # different inode numbers
    assert vm.files()[ino1].size == PAGE_SIZE             # st_size
    assert vm.files()[ino2].size == 2 * PAGE_SIZE
    for flags in flag_sets(vm_type):
        for size in (1, 2, 100, PAGE_SIZE - 1, PAGE_SIZE + 1):
            assert vm.create_guest_memfd(size, flags) == -EINVAL
    assert vm.create_guest_memfd(0, 0) == -EINVAL
    assert vm.create_guest_memfd(1 << 63, 0) == -EINVAL   # negative as loff_t


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_mmap_per_flags(vm_type):
    """__test_guest_memfd(): mmap_not_supported / mmap_cow / fault_private by flags."""
    vm = Kvm(vm_type)
    total = 4 * PAGE_SIZE
    for flags in flag_sets(vm_type):
        fd = vm.create_guest_memfd(total, flags)
        if not flags & MMAP:
            # test_mmap_not_supported()
            assert vm.mmap(fd, PAGE_SIZE, MAP_SHARED) == -19      # ENODEV
            assert vm.mmap(fd, total, MAP_SHARED) == -19
        else:
            # test_mmap_cow(): MAP_PRIVATE fails
            assert vm.mmap(fd, total, MAP_PRIVATE) == -EINVAL
            if not flags & SHARED:
                # test_fault_private(): test_fault_sigbus(fd, 0, total)
                addr = vm.mmap(fd, total, MAP_SHARED)
                assert addr > 0
                assert vm.host_write(fd, 0, 0xaa) == Signal("SIGBUS")
                assert vm.host_read(fd, 0) == Signal("SIGBUS")
                assert vm.munmap(addr) == 0
        vm.close(fd)


@pytest.mark.parametrize("vm_type", [KVM_X86_DEFAULT_VM, KVM_ARM64_VM])
def test_mmap_supported_and_fault_overflow(vm_type):
    """test_mmap_supported(), test_fault_overflow() with MMAP | INIT_SHARED."""
    vm = Kvm(vm_type)
    total = 4 * PAGE_SIZE
    fd = vm.create_guest_memfd(total, MMAP | SHARED)
    addr = vm.mmap(fd, total, MAP_SHARED)
    for off in pages(total):
        assert vm.host_write(fd, off, 0xaa) == 0          # memset(mem, val, total_size)
    assert all(vm.host_read(fd, off) == 0xaa for off in pages(total))
    assert vm.fallocate(fd, PUNCH, 0, PAGE_SIZE) == 0     # punch the first page
    assert vm.host_read(fd, 0) == 0x00
    assert all(vm.host_read(fd, off) == 0xaa for off in pages(total)[1:])
    assert vm.host_write(fd, 0, 0xaa) == 0
    assert all(vm.host_read(fd, off) == 0xaa for off in pages(total))
    assert vm.munmap(addr) == 0
    vm.close(fd)

    # test_fault_overflow(): test_fault_sigbus(fd, total, total * 4)
    fd = vm.create_guest_memfd(total, MMAP | SHARED)
    vm.mmap(fd, 4 * total, MAP_SHARED)
    results = [vm.host_write(fd, off, 0xaa) for off in pages(4 * total)]
    assert results[:4] == [0] * 4 and results[4] == Signal("SIGBUS")   # memset stops at SIGBUS
    assert vm.host_read(fd, total) == Signal("SIGBUS")
    assert all(vm.host_read(fd, off) == 0xaa for off in pages(total))


@pytest.mark.parametrize("vm_type", VM_TYPES)
def test_file_size_and_fallocate(vm_type):
    """test_file_size(), test_fallocate(), test_invalid_punch_hole() for every flag set."""
    vm = Kvm(vm_type)
    total = 4 * PAGE_SIZE
    for flags in flag_sets(vm_type):
        fd = vm.create_guest_memfd(total, flags)
        assert vm.files()[vm.file_of_fd(fd)].size == total
        assert vm.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, total) == 0
        assert vm.fallocate(fd, PUNCH, PAGE_SIZE - 1, PAGE_SIZE) != 0
        assert vm.fallocate(fd, FALLOC_FL_KEEP_SIZE, total, PAGE_SIZE) != 0
        assert vm.fallocate(fd, FALLOC_FL_KEEP_SIZE, total + PAGE_SIZE, PAGE_SIZE) != 0
        assert vm.fallocate(fd, PUNCH, total, PAGE_SIZE) == 0
        assert vm.fallocate(fd, PUNCH, total + PAGE_SIZE, PAGE_SIZE) == 0
        assert vm.fallocate(fd, PUNCH, PAGE_SIZE, PAGE_SIZE - 1) != 0
        assert vm.fallocate(fd, PUNCH, PAGE_SIZE, PAGE_SIZE) == 0
        assert vm.fallocate(fd, FALLOC_FL_KEEP_SIZE, PAGE_SIZE, PAGE_SIZE) == 0
        for offset, length in [(0, 1), (0, PAGE_SIZE - 1), (0, PAGE_SIZE + 1), (1, 1),
                               (1, PAGE_SIZE - 1), (1, PAGE_SIZE), (1, PAGE_SIZE + 1),
                               (PAGE_SIZE, 1), (PAGE_SIZE, PAGE_SIZE - 1),
                               (PAGE_SIZE, PAGE_SIZE + 1)]:
            assert vm.fallocate(fd, PUNCH, offset, length) == -EINVAL
        assert vm.files()[vm.file_of_fd(fd)].size == total     # the size never changes
        vm.close(fd)


@pytest.mark.parametrize("vm_type", [KVM_X86_DEFAULT_VM, KVM_ARM64_VM])
def test_guest_memfd_guest(vm_type):
    """test_guest_memfd_guest(): host writes 0xaa through mmap, the guest reads it through
    a GMEM_ONLY slot at 4 GiB and writes 0xff, the host sees 0xff."""
    vm = Kvm(vm_type)
    size = PAGE_SIZE
    fd = vm.create_guest_memfd(size, MMAP | SHARED)
    assert vm.set_user_memory_region2(1, KVM_MEM_GUEST_MEMFD, SZ_4G, size, 0, fd, 0) == 0
    assert vm.slots()[(0, 1)].gmem_only
    addr = vm.mmap(fd, size, MAP_SHARED)
    assert vm.host_write(fd, 0, 0xaa) == 0
    assert vm.munmap(addr) == 0
    assert vm.guest_read(SZ_4G) == 0xaa                    # guest_code(): mem[i] == 0xaa
    assert vm.guest_write(SZ_4G, 0xff) == 0
    vm.mmap(fd, size, MAP_SHARED)
    assert vm.host_read(fd, 0) == 0xff
    assert vm.close(fd) == 0


# -- set_memory_region_test.c ----------------------------------------------------------------

MEM_REGION_GPA = 0xc0000000
MEM_REGION_SIZE = 0x200000
MEM_REGION_SLOT = 10


def test_invalid_memory_region_flags():
    """set_memory_region_test.c test_invalid_memory_region_flags(), on a SW_PROTECTED VM."""
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    supported = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD
    for bit in range(32):
        if supported & (1 << bit):
            continue
        assert vm.set_user_memory_region2(0, 1 << bit, 0, MEM_REGION_SIZE, 0, 0, 0) == -EINVAL
    assert vm.set_user_memory_region2(0, KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_GUEST_MEMFD, 0,
                                      MEM_REGION_SIZE, 0, 0, 0) == -EINVAL


def test_add_private_memory_region():
    """set_memory_region_test.c test_add_private_memory_region()."""
    process = Process()
    vm = Kvm(KVM_X86_SW_PROTECTED_VM, process)

    def add(memfd, offset):
        return vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA,
                                          MEM_REGION_SIZE, 0, memfd, offset)

    assert add(vm.kvm_fd, 0) == -EINVAL                  # "KVM fd should fail"
    assert add(vm.vm_fd, 0) == -EINVAL                   # "VM's fd should fail"
    # ("Regular memfd() should fail": no regular memfd is modelled.)
    vm2 = Kvm(KVM_X86_SW_PROTECTED_VM, process)
    memfd = vm2.create_guest_memfd(MEM_REGION_SIZE, 0)
    assert add(memfd, 0) == -EINVAL                      # "Other VM's guest_memfd() should fail"
    assert vm2.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA,
                                       MEM_REGION_SIZE, 0, memfd, 0) == 0
    assert vm2.close(memfd) == 0
    assert vm2.close(vm2.vm_fd) == 0                     # kvm_vm_free(vm2)
    assert vm2.destroyed

    memfd = vm.create_guest_memfd(MEM_REGION_SIZE, 0)
    for offset in (1, 2, 512, PAGE_SIZE - 1):            # "Unaligned offset should fail"
        assert add(memfd, offset) == -EINVAL
    assert add(memfd, 0) == 0
    assert vm.close(memfd) == 0


def test_add_overlapping_private_memory_regions():
    """set_memory_region_test.c test_add_overlapping_private_memory_regions()."""
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    memfd = vm.create_guest_memfd(MEM_REGION_SIZE * 4, 0)
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA,
                                      MEM_REGION_SIZE * 2, 0, memfd, 0) == 0
    assert vm.set_user_memory_region2(MEM_REGION_SLOT + 1, KVM_MEM_GUEST_MEMFD,
                                      MEM_REGION_GPA * 2, MEM_REGION_SIZE * 2, 0, memfd,
                                      MEM_REGION_SIZE * 2) == 0
    # Delete the first memslot (fd -1 is not looked at).
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA, 0,
                                      0, -1, 0) == 0
    # Overlap the front half, then the back half of the other slot: EEXIST.
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD,
                                      MEM_REGION_GPA * 2 - MEM_REGION_SIZE, MEM_REGION_SIZE * 2,
                                      0, memfd, 0) == -EEXIST
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD,
                                      MEM_REGION_GPA * 2 + MEM_REGION_SIZE, MEM_REGION_SIZE * 2,
                                      0, memfd, 0) == -EEXIST
    # Beyond the selftest: the same GPA overlap with a closed fd is still EEXIST (checked
    # first), a free GPA with that fd is EBADF, overlapping file ranges are EINVAL.
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD,
                                      MEM_REGION_GPA * 2, MEM_REGION_SIZE, 0, 99, 0) == -EEXIST
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA,
                                      MEM_REGION_SIZE, 0, 99, 0) == -EBADF
    assert vm.set_user_memory_region2(MEM_REGION_SLOT, KVM_MEM_GUEST_MEMFD, MEM_REGION_GPA,
                                      MEM_REGION_SIZE * 2, 0, memfd,
                                      MEM_REGION_SIZE * 3) == -EINVAL


# -- x86/private_mem_conversions_test.c ----------------------------------------------------

BASE_DATA_GPA = 1 << 32
BASE_DATA_SLOT = 10
PER_CPU_DATA_SIZE = SZ_2M + PAGE_SIZE
TEST_RANGES = [(0, PAGE_SIZE), (0, SZ_2M), (PAGE_SIZE, PAGE_SIZE), (PAGE_SIZE, SZ_2M),
               (SZ_2M, PAGE_SIZE)]


class Conversions:
    """test_mem_conversions() with one vCPU and one memslot: a SW_PROTECTED VM, a gmem file
    (flags 0) of 4 MiB behind one slot, anonymous memory behind the same slot."""

    def __init__(self):
        self.vm = Kvm(KVM_X86_SW_PROTECTED_VM)
        self.memfd_size = 2 * SZ_2M
        self.memfd = self.vm.create_guest_memfd(self.memfd_size, 0)
        assert self.vm.set_user_memory_region2(BASE_DATA_SLOT, KVM_MEM_GUEST_MEMFD, BASE_DATA_GPA,
                                               self.memfd_size, USER, self.memfd, 0) == 0

    def hva(self, gpa):
        return USER + gpa - BASE_DATA_GPA

    def memset_g(self, gpa, value, size):
        for off in pages(size):
            assert self.vm.guest_write(gpa + off, value) == 0

    def memcmp_g(self, gpa, value, size):
        for off in pages(size):
            assert self.vm.guest_read(gpa + off) == value

    def map_gpa_range(self, gpa, size, shared, set_attributes, do_fallocate):
        """handle_exit_hypercall(): vm_guest_mem_fallocate() then vm_set_memory_attributes()."""
        if do_fallocate:
            mode = PUNCH if shared else FALLOC_FL_KEEP_SIZE
            assert self.vm.fallocate(self.memfd, mode, gpa - BASE_DATA_GPA, size) == 0
        if set_attributes:
            assert self.vm.set_memory_attributes(
                gpa, size, 0 if shared else KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0

    def sync(self, gpa, size, current, new=None):
        """UCALL_SYNC: the host always observes the shared data; SYNC_SHARED writes new."""
        for off in pages(size):
            assert self.vm.user_read(self.hva(gpa + off)) == current
            if new is not None:
                assert self.vm.user_write(self.hva(gpa + off), new) == 0


@pytest.mark.parametrize("do_fallocate", [False, True])
def test_explicit_conversion(do_fallocate):
    """private_mem_conversions_test.c guest_test_explicit_conversion()."""
    t = Conversions()
    base, def_p, init_p = BASE_DATA_GPA, 0xaa, 0xcc
    t.memset_g(base, def_p, PER_CPU_DATA_SIZE)            # shared by default
    t.memcmp_g(base, def_p, PER_CPU_DATA_SIZE)
    t.sync(base, PER_CPU_DATA_SIZE, def_p, init_p)
    t.memcmp_g(base, init_p, PER_CPU_DATA_SIZE)
    for offset, size in TEST_RANGES:
        gpa = base + offset
        p1, p2, p3, p4 = 0x11, 0x22, 0x33, 0x44
        t.memset_g(gpa, p1, size)
        t.map_gpa_range(gpa, size, False, True, do_fallocate)      # guest_map_private()
        if size > PAGE_SIZE:
            t.memset_g(gpa, p2, PAGE_SIZE)
        else:
            t.memset_g(gpa, p2, size)
            t.sync(gpa, size, p1)                                  # guest_sync_private()
            t.memcmp_g(gpa, p2, size)
            if gpa > base:
                t.memcmp_g(base, init_p, gpa - base)
            t.memcmp_g(gpa + size, init_p, base + PER_CPU_DATA_SIZE - (gpa + size))
            for j in pages(size):
                if (j // PAGE_SIZE) & 1:
                    t.map_gpa_range(gpa + j, PAGE_SIZE, True, True, do_fallocate)
                    t.sync(gpa + j, PAGE_SIZE, p1, p3)
                    t.memcmp_g(gpa + j, p3, PAGE_SIZE)
                else:
                    t.sync(gpa + j, PAGE_SIZE, p1)
        t.map_gpa_range(gpa, size, True, True, do_fallocate)       # back to shared
        t.memset_g(gpa, p3, size)
        t.sync(gpa, size, p3, p4)
        t.memcmp_g(gpa, p4, size)
        t.memset_g(gpa, init_p, size)
        t.map_gpa_range(base, PER_CPU_DATA_SIZE, True, True, True)  # free all private memory
    assert t.vm.pages(t.vm.file_of_fd(t.memfd)) == {}


@pytest.mark.parametrize("precise", [False, True])
def test_punch_hole(precise):
    """private_mem_conversions_test.c guest_test_punch_hole(): PUNCH_HOLE zaps and frees,
    the next private fault gets a zeroed page."""
    t = Conversions()
    base, init_p = BASE_DATA_GPA, 0xcc
    t.map_gpa_range(base, PER_CPU_DATA_SIZE, False, True, False)   # all private
    for offset, size in TEST_RANGES:
        gpa = base + offset
        t.map_gpa_range(base, PER_CPU_DATA_SIZE, True, False, True)   # guest_punch_hole(all)
        if precise:
            t.memset_g(gpa, init_p, size)
            t.memcmp_g(gpa, init_p, size)
        else:
            t.memset_g(base, init_p, PER_CPU_DATA_SIZE)
            t.memcmp_g(base, init_p, PER_CPU_DATA_SIZE)
        t.map_gpa_range(gpa, size, True, False, True)                 # guest_punch_hole(gpa)
        t.memcmp_g(gpa, 0, size)


def test_conversions_fallocate_after_vm_close():
    """test_mem_conversions() tail: after kvm_vm_free() the guest_memfd still holds the VM;
    PUNCH_HOLE and ALLOCATE on it succeed, and closing it destroys the VM."""
    t = Conversions()
    t.map_gpa_range(BASE_DATA_GPA, PAGE_SIZE, False, True, False)
    assert t.vm.guest_write(BASE_DATA_GPA, 1) == 0
    assert t.vm.close(t.vm.vm_fd) == 0
    assert not t.vm.destroyed and t.vm.vm_refs() == 1
    assert t.vm.fallocate(t.memfd, PUNCH, 0, t.memfd_size) == 0
    assert t.vm.leaves() == {}
    assert t.vm.fallocate(t.memfd, FALLOC_FL_KEEP_SIZE, 0, t.memfd_size) == 0
    assert t.vm.close(t.memfd) == 0
    assert t.vm.destroyed


# -- x86/private_mem_kvm_exits_test.c --------------------------------------------------------

EXITS_TEST_GPA = 0xc0000000
EXITS_TEST_SIZE = PAGE_SIZE
EXITS_TEST_SLOT = 10


def expect_private_exit(result, gpa):
    """run_vcpu_get_exit_reason(): KVM_RUN -1/EFAULT, KVM_EXIT_MEMORY_FAULT, flags, gpa, size."""
    assert result.reason == KVM_EXIT_MEMORY_FAULT and result.errno == EFAULT
    assert result.flags == KVM_MEMORY_EXIT_FLAG_PRIVATE
    assert result.gpa == gpa and result.size == EXITS_TEST_SIZE


def test_private_access_memslot_deleted():
    """private_mem_kvm_exits_test.c test_private_access_memslot_deleted()."""
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    memfd = vm.create_guest_memfd(EXITS_TEST_SIZE, 0)
    assert vm.set_user_memory_region2(EXITS_TEST_SLOT, KVM_MEM_GUEST_MEMFD, EXITS_TEST_GPA,
                                      EXITS_TEST_SIZE, USER, memfd, 0) == 0
    assert vm.set_memory_attributes(EXITS_TEST_GPA, EXITS_TEST_SIZE,
                                    KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0
    assert vm.guest_read(EXITS_TEST_GPA) == 0             # the guest runs, reading
    assert vm.set_user_memory_region2(EXITS_TEST_SLOT, 0, EXITS_TEST_GPA, 0, 0) == 0
    assert vm.leaves() == {}
    expect_private_exit(vm.guest_read(EXITS_TEST_GPA), EXITS_TEST_GPA)


def test_private_access_memslot_not_private():
    """private_mem_kvm_exits_test.c test_private_access_memslot_not_private()."""
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    assert vm.set_user_memory_region2(EXITS_TEST_SLOT, 0, EXITS_TEST_GPA, EXITS_TEST_SIZE,
                                      USER) == 0
    assert vm.set_memory_attributes(EXITS_TEST_GPA, EXITS_TEST_SIZE,
                                    KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0
    expect_private_exit(vm.guest_read(EXITS_TEST_GPA + 8), EXITS_TEST_GPA)


def test_private_access_after_release():
    """Sheet §2.9 (beyond the selftest): release under a bound slot leaves it file-less;
    the next private access exits EFAULT, a shared one without slot is MMIO."""
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    memfd = vm.create_guest_memfd(EXITS_TEST_SIZE, 0)
    vm.set_user_memory_region2(EXITS_TEST_SLOT, KVM_MEM_GUEST_MEMFD, EXITS_TEST_GPA,
                               EXITS_TEST_SIZE, USER, memfd, 0)
    vm.set_memory_attributes(EXITS_TEST_GPA, EXITS_TEST_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE)
    assert vm.guest_write(EXITS_TEST_GPA, 3) == 0
    assert vm.close(memfd) == 0
    assert vm.slots()[(0, EXITS_TEST_SLOT)].file is None and vm.leaves() == {}
    expect_private_exit(vm.guest_read(EXITS_TEST_GPA), EXITS_TEST_GPA)
    mmio = vm.guest_read(2 * EXITS_TEST_GPA)
    assert mmio.reason == KVM_EXIT_MMIO and mmio.gpa == 2 * EXITS_TEST_GPA


# -- pre_fault_memory_test.c -------------------------------------------------------------------

TEST_SIZE = SZ_2M + PAGE_SIZE
TEST_SLOT = 10


@pytest.mark.parametrize("vm_type,private", [(KVM_X86_DEFAULT_VM, False),
                                             (KVM_X86_SW_PROTECTED_VM, False),
                                             (KVM_X86_SW_PROTECTED_VM, True)])
def test_pre_fault_memory(vm_type, private):
    """pre_fault_memory_test.c __test_pre_fault_memory() without the racing slot worker:
    the whole 2 MiB succeeds; 2 pages across the slot end leave one page (ENOENT); a page
    past the slot fails ENOENT with nothing done."""
    vm = Kvm(vm_type)
    gpa = (1 << 32) - SZ_2M * 2
    if private:
        memfd = vm.create_guest_memfd(TEST_SIZE, 0)
        assert vm.set_user_memory_region2(TEST_SLOT, KVM_MEM_GUEST_MEMFD, gpa, TEST_SIZE, USER,
                                          memfd, 0) == 0
        assert vm.set_memory_attributes(gpa, TEST_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0
    else:
        assert vm.set_user_memory_region2(TEST_SLOT, 0, gpa, TEST_SIZE, USER) == 0

    assert vm.pre_fault_memory(gpa, SZ_2M) == 0
    assert vm.pre_fault_range == (gpa + SZ_2M, 0)
    assert vm.pre_fault_memory(gpa + SZ_2M, PAGE_SIZE * 2) == 0
    assert vm.pre_fault_range == (gpa + TEST_SIZE, PAGE_SIZE)        # expected_left
    assert vm.pre_fault_memory(gpa + TEST_SIZE, PAGE_SIZE) == -ENOENT
    assert vm.pre_fault_range == (gpa + TEST_SIZE, PAGE_SIZE)
    kind = "private" if private else "shared"
    assert {leaf.kind for leaf in vm.leaves().values()} == {kind}
    assert len(vm.leaves()) == TEST_SIZE // PAGE_SIZE
    for off in pages(TEST_SIZE):                                     # guest_code() reads
        assert vm.guest_read(gpa + off) == 0


def test_pre_fault_memory_errors():
    """Sheet §2.8: flags/alignment EINVAL; a private gfn without slot EFAULT; a file-less
    gmem slot EFAULT; an error after progress returns 0 and keeps the pages done."""
    vm = Kvm(KVM_X86_SW_PROTECTED_VM)
    assert vm.pre_fault_memory(0, PAGE_SIZE, flags=1) == -EINVAL
    assert vm.pre_fault_memory(1, PAGE_SIZE) == -EINVAL
    assert vm.pre_fault_memory(0, 0) == -EINVAL
    assert vm.set_memory_attributes(0, PAGE_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0
    assert vm.pre_fault_memory(0, PAGE_SIZE) == -EFAULT
    memfd = vm.create_guest_memfd(PAGE_SIZE, 0)
    vm.set_user_memory_region2(1, KVM_MEM_GUEST_MEMFD, PAGE_SIZE, PAGE_SIZE, USER, memfd, 0)
    vm.close(memfd)
    assert vm.pre_fault_memory(PAGE_SIZE, PAGE_SIZE) == 0       # shared: userspace memory
    assert vm.set_memory_attributes(PAGE_SIZE, PAGE_SIZE, KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0
    assert vm.pre_fault_memory(PAGE_SIZE, PAGE_SIZE) == -EFAULT  # private: the file is gone
    assert vm.set_user_memory_region2(2, 0, 4 * PAGE_SIZE, PAGE_SIZE, USER) == 0
    assert vm.pre_fault_memory(4 * PAGE_SIZE, 2 * PAGE_SIZE) == 0
    assert vm.pre_fault_range == (5 * PAGE_SIZE, PAGE_SIZE)
    assert 4 in vm.leaves()
    assert Kvm(KVM_ARM64_VM).pre_fault_memory(0, PAGE_SIZE) == -EINVAL   # no such ioctl in 7.1
