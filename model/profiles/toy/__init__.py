"""The toy profile; `profile.py` assembles it."""

from model.profiles.toy.profile import PROFILE

__all__ = ["PROFILE"]
