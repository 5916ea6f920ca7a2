"""The toy protocol's reference: an imperative lender, independent of the model."""

from .lender import Lender

__all__ = ["Lender"]
