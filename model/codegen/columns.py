"""Growable int64 arrays: what an encoder appends to while a compiled loop reads the prefix."""

import numpy as np


class Column:
    """A growable int64 array (the encoder appends; the loop reads the prefix)."""

    def __init__(self, width: int = 1):
        self.data = np.zeros((1024, width) if width > 1 else 1024, dtype=np.int64)
        self.n = 0

    def add(self, values) -> int:
        values = np.asarray(values, dtype=np.int64)
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.zeros((max(need, 2 * len(self.data)),) + self.data.shape[1:], np.int64)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        at = self.n
        self.data[at:need] = values
        self.n = need
        return at
