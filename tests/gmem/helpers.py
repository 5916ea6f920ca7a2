"""What the gmem tests share: the profile and small machines."""

from dataclasses import replace

from model.profiles.gmem import PROFILE as GMEM
from model.profiles.gmem.states import Config

TINY = {vm: Config(vm=vm, files=1, slots=1, gfns=1, pages=1, sizes=(0, 1)) for vm in
        ("x86", "sw_protected", "arm64")}
SMALL = Config(vm="sw_protected", files=1, slots=1, gfns=2, pages=2)


def machine(**changes) -> Config:
    return replace(SMALL, **changes)
