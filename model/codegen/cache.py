"""Traced trees kept on disk between runs of the same machine and the same source.

Tracing is most of what a large machine costs before its search (pKVM 3 pages x 3 guests:
about seven minutes, against under a minute of search), and it answers the same for the same
profile, configuration and model source: the export after a native search, or a second run of
either, reads the trees instead. An entry is a call's (or property's) tree on one shape with
what it learned, so a run that meets a state the trees do not cover learns on from there. A
profile with extensions (a proposed change, a mutant) is traced afresh: its source is a file
this key does not cover.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import model

VERSION = 1  # the layout of an entry; a change here starts every cache afresh


def _source_digest() -> str:
    """Every Python file of the model package, by content."""
    digest = hashlib.sha256()
    root = Path(model.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class TraceCache:
    """The trees of one profile and configuration in one file of `folder` (None where the
    profile has extensions: then nothing is read or written)."""

    def __init__(self, folder, profile, config):
        self.entries: dict = {}  # (call or property name, shape) -> (learned, tree)
        self.lazy: set = set()  # names traced lazily somewhere
        self.path = None
        if profile.extensions:
            return
        name = f"{VERSION}\n{profile.name}\n{profile.config_text(config)}\n{_source_digest()}"
        self.path = Path(folder) / (hashlib.sha256(name.encode()).hexdigest()[:24] + ".pickle")
        if self.path.exists():
            try:
                with open(self.path, "rb") as f:
                    self.entries, self.lazy = pickle.load(f)
            except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
                    AttributeError, ImportError):
                self.entries, self.lazy = {}, set()  # unreadable: traced afresh, then replaced

    def get(self, name: str, shape):
        return self.entries.get((name, shape))

    def save(self, entries: dict, lazy: set) -> None:
        """Add these entries (newer ones replace older) and write the file whole, atomically."""
        if self.path is None:
            return
        self.entries.update(entries)
        self.lazy |= lazy
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump((self.entries, self.lazy), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
