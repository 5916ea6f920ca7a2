"""The gmem profile (KVM guest_memfd); `profile.py` assembles it."""

from model.profiles.gmem.profile import PROFILE

__all__ = ["PROFILE"]
