"""Proposal under review (sheet 7: series "gmem-inplace-conversion" v7, not in Linux 7.1): memory
attributes move from the VM (per gfn) to the guest_memfd inode (per file index), set by
KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd; a conversion to private first unmaps the
host's PTEs, then fails EAGAIN, changing nothing, while a folio of the range has an extra
reference (kvm_gmem_is_safe_for_conversion()).

    pkvm-model prove   --profile gmem --extension docs/examples/gmem_in_place_conversion.py
    pkvm-model explore --profile gmem --extension docs/examples/gmem_in_place_conversion.py

What it changes in the 7.1 profile (docs/gmem.md, "In-place conversion"):
- state: `iattr` per file index (shared/private; a new file starts shared with INIT_SHARED or
  on a VM without private memory, else private) and `pin` per file index (the host holds a GUP
  pin on the index's folio: the extra reference; host PTEs are not one, they are unmapped
  before the check);
- `attr` redefined: a gfn's attribute is its index's in its slot's file, shared where no file
  backs it, so the guest fault path, pre-fault and every 7.1 property read the inode;
- INIT_SHARED offered to every VM (the series' selftests give SW_PROTECTED VMs such files);
- `set_attributes` removed (per-VM attributes disabled: the VM-fd ioctl is ENOTTY);
- new `set_attributes2`, `host_pin`, `host_unpin`; host faults SIGBUS on a private index;
  a punch takes the pinned folios of its range out of the file (the pinner keeps them).
"""

from errno import EAGAIN, EBADF, EFAULT, EINVAL, ENOTTY

from model.profiles.gmem.protocol import hand_out, host_access, zap
from model.profiles.gmem.states import (
    GUEST, HOST, INIT_SHARED, MMAP_PAGES, NO_LEAF, PRIVATE_ATTR, PRIVATE_LEAF, SHARED_ATTR,
    SHARED_LEAF, SIGBUS, VMFD,
)


def iattr(s, f, i):
    return s.read("iattr", (f, i))


def pinned(s, f, i):
    return s.read("pin", (f, i)) == 1


def gfn_attr(s, g):
    """A gfn's attribute: its index's in its slot's file (kvm_gmem_get_attributes); shared
    where no file backs it (no slot, a userspace slot, a file-less gmem slot)."""
    f = s.bound_file(g)
    return s.If(f != 0, iattr(s, f - 1, s.index_of(g)), SHARED_ATTR)


def extend(ext):
    ext.field("iattr", "index", initial=SHARED_ATTR, values=(SHARED_ATTR, PRIVATE_ATTR),
              show={SHARED_ATTR: "shared", PRIVATE_ATTR: "private"})
    ext.field("pin", "index", initial=0, values=(0, 1), show={0: "no", 1: "yes"})
    ext.redefine("attr", gfn_attr)
    ext.redefine("supports_init_shared", lambda s: s.And())
    ext.remove("set_attributes")

    create_file0, punch0 = ext.original("create_file"), ext.original("punch")

    @ext.override("create_file")
    def create_file(s, size, flags):
        """KVM_CREATE_GUEST_MEMFD: every index starts shared with INIT_SHARED (or on a VM
        without private memory), else private."""
        yield from create_file0(s, size, flags)
        shared = s.Or(s.bit(flags, INIT_SHARED), s.Not(s.has_private()))
        s.set_row("iattr", s.nfiles(), s.If(shared, SHARED_ATTR, PRIVATE_ATTR))

    @ext.transition("host", "guest_memfd")
    def set_attributes2(s, file, index, count, private, flags):
        """KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd, indices [index, index + count):
        to private, unmap the host PTEs and refuse (EAGAIN) while a folio is pinned; to shared,
        no check; then zap the guest leaves of every gfn bound to the range and set it."""
        yield s.require(s.fd_ok(file), EBADF, "fget")
        yield s.require(file != VMFD, ENOTTY, "kvm_vm_ioctl")
        yield s.require(flags == 0, EINVAL, "kvm_gmem_set_attributes_flags")
        yield s.require(s.Or(private == 0, s.And(private == 1, s.has_private())), EINVAL,
                        "kvm_supported_mem_attributes")
        yield s.require(count > 0, EINVAL, "kvm_gmem_set_attributes_size")
        yield s.require(index + count <= s.fsize(file), EINVAL, "kvm_gmem_set_attributes_range")
        value = s.If(private == 1, PRIVATE_ATTR, SHARED_ATTR)
        inside = lambda a, b: s.And(a == file, b >= index, b < index + count)
        already = s.forall_fi(lambda a, b: s.Implies(inside(a, b), iattr(s, a, b) == value))
        with s.when(s.And(private == 1, s.Not(already))):
            # unmap_mapping_pages() first: a host PTE is no extra reference. The model checks
            # the pins before it unmaps, so that EAGAIN changes nothing (the host re-faults
            # the same shared page on its next access: the unmapping is not observable).
            yield s.each_page(index, count, lambda i: s.If(pinned(s, file, i), -EAGAIN, 0),
                              "kvm_gmem_is_safe_for_conversion")
            s.set_where("hpte", inside, lambda a, b: 0)
        with s.when(s.Not(already)):
            zap(s, lambda g: s.And(s.bound_file(g) == file + 1, s.index_of(g) >= index,
                                   s.index_of(g) < index + count))
            s.set_where("iattr", inside, lambda a, b: value)

    def private_fault(s, file, index):
        """kvm_gmem_fault_user_mapping(): a private index is never faulted in (SIGBUS)."""
        mapped = s.And(s.fd_ok(file), file != VMFD, s.vmas(file) > 0, index < MMAP_PAGES)
        with s.when(s.And(mapped, s.hpte(file, index) == 0)):
            yield s.require(iattr(s, file, index) == SHARED_ATTR, -SIGBUS,
                            "kvm_gmem_fault_user_mapping_private")

    @ext.override("host_read")
    def host_read(s, file, index):
        """The host reads through its mapping; a private index is not faulted in."""
        yield from private_fault(s, file, index)
        yield from host_access(s, file, index, False)

    @ext.override("host_write")
    def host_write(s, file, index):
        """The host writes through its mapping; a private index is not faulted in."""
        yield from private_fault(s, file, index)
        yield from host_access(s, file, index, True)

    @ext.transition("host", "mm", bound=lambda s, file, index: s.Not(pinned(s, file, index)))
    def host_pin(s, file, index):
        """pin_user_pages() of one page of the file's mapping (O_DIRECT, vfio, ...): faulted in
        as a host access would be, then a reference on its folio; no mapping or a fault the
        host access would take a signal for is EFAULT."""
        yield s.require(s.And(s.fd_ok(file), file != VMFD, s.vmas(file) > 0,
                              index < MMAP_PAGES), EFAULT, "pin_user_pages_vma")
        with s.when(s.hpte(file, index) == 0):
            yield s.require(s.And(index < s.fsize(file), s.has_flag(file, INIT_SHARED),
                                  iattr(s, file, index) == SHARED_ATTR), EFAULT,
                            "kvm_gmem_fault_user_mapping")
            s.set("page", (file, index), hand_out(s, file, index))
            s.set("hpte", (file, index), 1)
        s.set("pin", (file, index), 1)

    @ext.transition("host", "mm", bound=lambda s, file, index: pinned(s, file, index))
    def host_unpin(s, file, index):
        """unpin_user_page(): the extra reference goes."""
        s.set("pin", (file, index), 0)
        yield 0

    @ext.override("punch")
    def punch(s, file, index, count):
        """fallocate(PUNCH_HOLE): as in 7.1; a pinned folio of the range leaves the file with
        its pinner, so the index is no longer pinned."""
        yield from punch0(s, file, index, count)
        s.set_where("pin", lambda a, b: s.And(a == file, b >= index, b < index + count),
                    lambda a, b: 0)

    # -- what the proposal must keep ------------------------------------------------------
    @ext.always
    def host_never_maps_private_index(s):
        """No host PTE maps, and no pin holds, an index whose attribute is private."""
        return s.forall_fi(lambda f, i: s.Implies(
            s.Or(s.hpte(f, i) == 1, pinned(s, f, i)), iattr(s, f, i) == SHARED_ATTR))

    @ext.always
    def private_index_needs_private_memory(s):
        """An index is private only on a VM with private memory (the attribute check)."""
        return s.forall_fi(lambda f, i: s.Implies(iattr(s, f, i) == PRIVATE_ATTR,
                                                  s.has_private()))

    @ext.always_step
    def eagain_changes_nothing(call, errno, pre, post):
        """A conversion refused with EAGAIN leaves every field as it was."""
        if call != "set_attributes2":  # the call's name is no state value
            return pre.And()
        return pre.Implies(errno == -EAGAIN, pre.same_state(post))

    ext.sometimes("conversion_refused", "a conversion to private of a pinned page fails EAGAIN",
                  step=lambda call, errno, pre, post: pre.And(call == "set_attributes2",
                                                              errno == -EAGAIN))
    ext.sometimes("converted_to_private",
                  "a gfn mapped shared from guest_memfd is converted to private in place",
                  step=_converted)
    ext.sometimes("host_data_private", "the guest maps privately a page the host wrote while "
                  "it was shared (in place: nothing is copied)",
                  state=lambda s: s.exists_gfn(lambda g: s.And(
                      s.lkind(g) == PRIVATE_LEAF, s.page(s.lfile(g) - 1, s.lidx(g)) == HOST)))
    ext.sometimes("private_then_shared", "a page the guest wrote privately, converted to "
                  "shared, seen by the host", step=_host_sees_guest)


def _converted(call, errno, pre, post):
    if call != "set_attributes2":
        return pre.Or()
    return pre.And(errno == 0, post.exists_gfn(lambda g: pre.And(
        pre.lkind(g) == SHARED_LEAF, pre.lfile(g) != 0, post.attr(g) == PRIVATE_ATTR,
        post.lkind(g) == NO_LEAF)))


def _host_sees_guest(call, errno, pre, post):
    if call != "host_read":
        return pre.Or()
    return pre.And(errno == 0, post.exists_fi(lambda f, i: pre.And(
        pre.hpte(f, i) == 0, post.hpte(f, i) == 1, post.page(f, i) == GUEST)))
