"""The protocols the machinery serves, one folder each; `get(name)` loads one by name."""

from __future__ import annotations

import importlib

PROFILES = {
    "pkvm": "pKVM page ownership on arm64 (the default)",
    "toy": "a few pages lent and returned: the machinery's own test protocol",
    "gmem": "KVM guest_memfd, memslots, memory attributes and guest faults (Linux 7.1)",
}
DEFAULT = "pkvm"


_CHECKED: dict = {}


def get(name: str):
    """The profile called `name`, staging-checked once (`model/staging.py`); KeyError names the
    known ones."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; one of: {', '.join(PROFILES)}")
    if name not in _CHECKED:
        from model.staging import check_profile

        profile = importlib.import_module(f"model.profiles.{name}").PROFILE
        check_profile(profile)
        _CHECKED[name] = profile
    return _CHECKED[name]
