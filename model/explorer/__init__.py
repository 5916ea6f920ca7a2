"""The explorer: bounded breadth-first search of a profile's reachable graph (`search.py`),
memoised steps (`memo.py`), graph properties (`graph.py`), shortest traces (`traces.py`), and
what a search returns (`results.py`)."""

from model.explorer.graph import unreduced_counts
from model.explorer.memo import StateChecker, Stepper
from model.explorer.results import GRAPH_CHECKS, Exploration, TraceStep, Violation
from model.explorer.search import explore
from model.explorer.traces import trace_of

__all__ = ["GRAPH_CHECKS", "Exploration", "StateChecker", "Stepper", "TraceStep", "Violation",
           "explore", "trace_of", "unreduced_counts"]
