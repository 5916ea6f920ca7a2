"""A lender's page table, written the way a kernel would: one record per page, checks then
updates, 0 or -errno. It shares no code with the model (conformance holds them side by side)."""

from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass
class PageRecord:
    borrowed: bool = False
    pin_count: int = 0
    dirty: bool = False


class Lender:
    CALLS = ("lend", "pin", "unpin", "write", "reclaim")

    def __init__(self, nr_pages: int):
        if nr_pages < 1:
            raise ValueError(f"a lender needs at least one page, got {nr_pages}")
        self.records = [PageRecord() for _ in range(nr_pages)]

    def _record(self, page: int) -> PageRecord | None:
        return self.records[page] if 0 <= page < len(self.records) else None

    def lend(self, page: int) -> int:
        rec = self._record(page)
        if rec is None:
            return -errno.EINVAL
        if rec.borrowed:
            return -errno.EPERM
        rec.borrowed = True
        return 0

    def pin(self, page: int) -> int:
        rec = self._record(page)
        if rec is None:
            return -errno.EINVAL
        if not rec.borrowed:
            return -errno.EPERM
        rec.pin_count += 1
        return 0

    def unpin(self, page: int) -> int:
        rec = self._record(page)
        if rec is None:
            return -errno.EINVAL
        if not rec.borrowed:
            return -errno.EPERM
        if rec.pin_count == 0:
            return -errno.EINVAL
        rec.pin_count -= 1
        return 0

    def write(self, page: int) -> int:
        rec = self._record(page)
        if rec is None:
            return -errno.EINVAL
        if not rec.borrowed:
            return -errno.EPERM
        rec.dirty = True
        return 0

    def reclaim(self, page: int) -> int:
        rec = self._record(page)
        if rec is None:
            return -errno.EINVAL
        if not rec.borrowed:
            return -errno.EPERM
        if rec.pin_count:
            return -errno.EBUSY
        rec.borrowed, rec.dirty = False, False
        return 0

    # -- introspection ---------------------------------------------------------------------
    def snapshot(self) -> tuple:
        return tuple((r.borrowed, r.pin_count, r.dirty) for r in self.records)

    def clone(self) -> Lender:
        other = Lender(len(self.records))
        other.records = [PageRecord(r.borrowed, r.pin_count, r.dirty) for r in self.records]
        return other
