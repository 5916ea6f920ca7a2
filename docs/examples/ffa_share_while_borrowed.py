"""Proposal: let the host lend a page to the secure world (FF-A) while a non-protected guest
still borrows it through host_share_guest (today host_share_ffa requires host OWNED).

    pkvm-model prove   --extension docs/examples/ffa_share_while_borrowed.py --transition host_share_ffa
    pkvm-model explore --extension docs/examples/ffa_share_while_borrowed.py
"""

from errno import EPERM

from model.profiles.pkvm.states import OWNED, SHARED_BORROWED, SHARED_OWNED
from model.profiles.pkvm.transitions import check_range, set_states


def extend(ext):
    @ext.override("host_share_ffa")
    def host_share_ffa(s, pfn, nr):
        """The host lends pages to FF-A: its own, or pages an np guest borrows from it."""
        yield from check_range(s, pfn, nr)
        yield s.each_page(pfn, nr, lambda p: s.require(
            s.Or(s.host(p) == OWNED, s.And(s.host(p) == SHARED_OWNED, s.count(p) > 0)),
            EPERM, "host_state"), "host_state")
        set_states(s, "host", pfn, nr, SHARED_OWNED)
        set_states(s, "ffa", pfn, nr, SHARED_BORROWED)
