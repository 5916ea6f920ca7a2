"""A search's progress on disk, so that a machine too large for one sitting is explored in
several (TLC's checkpoints, `-recover`).

A checkpoint is taken between two nodes of the BFS: every node before `next` is expanded (its
arcs, its successors, its step properties), none after. It holds what the search cannot
recompute (the packed states, the BFS tree, the arcs, the counts, what was found or witnessed)
and none of its caches (memos, raw successors under symmetry, the step properties already
shown per call and errno): those are exact shortcuts, so a resumed search numbers the nodes,
finds the violations and witnesses and counts the edges as one run would have.

The file is a pickle behind a header that says which search it belongs to (a dict): a
checkpoint is refused, never reinterpreted, when the profile, its extensions and mutant, the
machine, the options that change the search or the model's own source differ.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from array import array
from dataclasses import dataclass
from pathlib import Path

from model.explorer.results import Arcs
from model.explorer.table import StateTable

MAGIC = b"pkvm-model checkpoint 1\n"
_STATE_TYPE = "state type"  # the persistent id of the states' tuple type (an extension's is
# made at run time, and cannot be pickled by name)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or belongs to another search."""


@dataclass
class Snapshot:
    """The search's progress at a node boundary (see the module's docstring)."""

    states: StateTable
    parent: array
    via: array
    depth_of: array
    arcs: Arcs
    found: dict
    crashes: list
    sometimes: dict
    witnesses: dict
    edges: int
    tried: int
    depth: int  # the depth being expanded
    next: int  # the next node to expand
    seconds: float  # spent searching, over every sitting


def model_source() -> str:
    """A digest of the model's Python source: a checkpoint is only as good as the code that
    wrote it (any change to a transition changes the graph)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def save(path: str, header: dict, snapshot: Snapshot, state_type: type) -> None:
    """Write the snapshot, replacing the file only once it is whole."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        pickler = _Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.state_type = state_type
        pickler.dump((header, snapshot))
    os.replace(tmp, path)


def load(path: str, header: dict, state_type: type) -> Snapshot:
    """The snapshot in the file, if it belongs to the search `header` describes."""
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise CheckpointError(f"{path}: not a pkvm-model checkpoint")
            unpickler = _Unpickler(f)
            unpickler.state_type = state_type
            theirs, snapshot = unpickler.load()
    except OSError as err:
        raise CheckpointError(f"{path}: {err.strerror}") from None
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
            ValueError, IndexError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({err})") from None
    for key in sorted(set(header) | set(theirs)):
        if header.get(key) != theirs.get(key):
            raise CheckpointError(
                f"{path} belongs to another search: its {key} is {theirs.get(key)!r}, this "
                f"command's {header.get(key)!r}")
    return snapshot


class _Pickler(pickle.Pickler):
    state_type: type

    def persistent_id(self, obj):
        return _STATE_TYPE if obj is self.state_type else None


class _Unpickler(pickle.Unpickler):
    state_type: type

    def persistent_load(self, pid):
        if pid != _STATE_TYPE:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self.state_type

