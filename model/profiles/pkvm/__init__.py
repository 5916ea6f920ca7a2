"""The pKVM profile; `profile.py` assembles it from the modules beside it."""

from model.profiles.pkvm.profile import PROFILE

__all__ = ["PROFILE"]
