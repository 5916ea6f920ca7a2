"""Conformance: a profile's model held against its reference implementation, three ways.

1. edge by edge, alongside the explorer (`edges.py`);
2. long random walks with hypothesis, shrunk to their shortest disagreement (`walks.py`);
3. scenario files with expected results (`scenarios.py`).
One call on both sides is `compare.py`; what a disagreement says is `report.py`. The profile's
`reference` adapter says how to make, call, clone and read back its reference; its presenter
names the cells. Nothing here prints.
"""

from model.conformance.compare import compare_call, minimize, replay, side_by_side
from model.conformance.edges import EdgeChecker, ExplorationReport, explore_conformance
from model.conformance.report import Cell, Disagreement
from model.conformance.scenarios import (
    CallLine, ExpectLine, Scenario, ScenarioError, ScenarioReport, load_scenario, parse_scenario,
    run_scenario, run_scenarios, scenario_text, shipped_scenarios,
)
from model.conformance.walks import WalkReport, call_strategy, walk, walk_machine

__all__ = [
    "CallLine", "Cell", "Disagreement", "EdgeChecker", "ExpectLine", "ExplorationReport",
    "Scenario", "ScenarioError", "ScenarioReport", "WalkReport", "call_strategy", "compare_call",
    "explore_conformance", "load_scenario", "minimize", "parse_scenario", "replay",
    "run_scenario", "run_scenarios", "scenario_text", "shipped_scenarios", "side_by_side", "walk", "walk_machine",
]
