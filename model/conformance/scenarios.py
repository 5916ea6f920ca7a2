"""Conformance by scenario files: hand-written call sequences with their expected results.

A scenario file (format in docs/conformance.md) starts with a `machine` line in the profile's
words, then call lines `name key=value ... -> result` and `expect` lines the profile's presenter
reads and checks; both sides run every line, and each must give the expected result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

from model.conformance.compare import breach, compare_call, without_bounds
from model.conformance.report import Cell, Disagreement
from model.profile import Unrepresentable
from model.transitions import ERRNO_CODES, Call, errno_name


class ScenarioError(ValueError):
    """A malformed scenario file: the message names the file and the line."""


class CallLine(NamedTuple):
    line: int
    call: Call
    expected: int  # 0 or a negative errno


class ExpectLine(NamedTuple):
    line: int
    subject: tuple  # ("page", pfn) | ("vm", vm) | ("entry", vm, gfn)
    checks: tuple  # (key, expected text) pairs
    text: str


@dataclass
class Scenario:
    path: str
    config: object
    steps: list  # CallLine | ExpectLine, in file order
    discipline: bool = True

    @property
    def lines(self) -> int:
        return len(self.steps)


def _errno_value(text: str) -> int:
    if text in ("ok", "0"):
        return 0
    name = text.lstrip("-")
    if text.startswith("-") and name in ERRNO_CODES:
        return ERRNO_CODES[name]
    raise ValueError(f"expected result {text!r} is neither `ok` nor `-ERRNO`")


def parse_scenario(profile, text: str, path: str = "<scenario>") -> Scenario:
    """Read a scenario; any malformed line raises ScenarioError naming file and line."""
    words_of = profile.presenter
    config, discipline, steps = None, True, []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            words = line.split()
            if words[0] == "machine":
                if config is not None:
                    raise ValueError("a second machine line")
                config, discipline = words_of.parse_machine(words[1:])
                continue
            if config is None:
                raise ValueError("the first line must be `machine key=value ...`")
            if words[0] == "expect":
                subject, checks = words_of.parse_expect(line[len("expect"):].strip(), config)
                steps.append(ExpectLine(number, subject, checks, line))
                continue
            steps.append(_call_line(profile, number, line, config))
        except ValueError as err:
            raise ScenarioError(f"{path}:{number}: {err}") from None
    if config is None:
        raise ScenarioError(f"{path}: no machine line")
    return Scenario(path, config, steps, discipline)


def _call_line(profile, number: int, line: str, config) -> CallLine:
    body, arrow, result = line.partition("->")
    if not arrow:
        raise ValueError("a call line is `name key=value ... -> result`")
    words = body.split()
    name = words[0]
    if name not in profile.transitions:
        raise ValueError(f"unknown call {name!r}")
    params = profile.transitions[name].params
    consts = profile.presenter.constants(config)
    given = {}
    for item in words[1:]:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"argument {item!r} is not key=value")
        if key not in params:
            raise ValueError(f"{name} has no parameter {key!r} (parameters: {', '.join(params)})")
        if key in given:
            raise ValueError(f"parameter {key} given twice")
        given[key] = profile.presenter.read_value(value, key, consts)
    missing = [p for p in params if p not in given]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}")
    if any(v < 0 for v in given.values()):
        raise ValueError("arguments are unsigned")
    return CallLine(number, profile.call(name, tuple(given[p] for p in params)),
                    _errno_value(result.strip()))


def load_scenario(profile, path: str | Path) -> Scenario:
    path = Path(path)
    return parse_scenario(profile, path.read_text(), _shown(profile, path))


def _shown(profile, path: Path) -> str:
    """A shipped scenario by its name in the profile's folder, any other by the path given."""
    folder = profile.scenarios
    if folder is not None and path.resolve().parent == Path(folder).resolve():
        return f"{profile.name}:{path.name}"
    return str(path)


@dataclass
class ScenarioReport:
    path: str
    lines: int
    calls: int
    disagreements: list

    def to_data(self) -> dict:
        return {"path": self.path, "lines": self.lines, "calls": self.calls,
                "disagreements": [d.to_data() for d in self.disagreements]}


def run_scenario(profile, scenario: Scenario, *, config=None) -> ScenarioReport:
    """Run a scenario on the model (on `config`, default the scenario's) and on the reference,
    line by line: each side must give the expected result, the two sides must agree on the new
    state, and every expect line must hold on both."""
    config = config or scenario.config
    profile = without_bounds(profile)
    adapter = profile.reference
    state = profile.initial_state(config)
    ref = adapter.fresh(config)
    found: list[Disagreement] = []
    done: list[Call] = []
    made = 0
    for item in scenario.steps:
        where = f"{scenario.path}:{item.line}"
        if isinstance(item, ExpectLine):
            cells = []
            try:
                ref_state = adapter.abstract(ref)
            except Unrepresentable as err:
                found.append(Disagreement("unrepresentable", None, None, None, where=where,
                                          note=str(err), trace=list(done)))
                break
            for side, st in (("model", state), ("reference", ref_state)):
                for what, want, got in profile.presenter.check_expectation(
                        st, item.subject, item.checks):
                    cells.append(Cell(side, what, f"expected {want}", f"got {got}"))
            if cells:
                found.append(Disagreement("expectation", None, None, None, cells, list(done),
                                          note=f"`{item.text}` does not hold", where=where))
            continue
        made += 1
        call = item.call
        try:
            outcome = profile.step(config, state, call)
        except Exception as err:  # noqa: BLE001 - a model crash is a finding
            found.append(Disagreement("model-error", call, None, None, trace=list(done),
                                      where=where, note=f"the model raised {err!r}"))
            break
        if outcome is None:
            found.append(Disagreement(
                "discipline", call, None, None, trace=list(done), where=where,
                note="the model's caller never makes this call here (its discipline); "
                     "declare `discipline=off` on the machine line to make it"))
            break
        if scenario.discipline and not profile.disciplined(config):
            found_breach = breach(profile, ref, call, outcome.errno)
            if found_breach is not None:
                found_breach.where, found_breach.trace = where, list(done)
                found.append(found_breach)
                break
        d, ref_errno = compare_call(profile, config, state, outcome, ref, call)
        if d is not None:
            d.where, d.trace = where, list(done)
            found.append(d)
            break  # the two sides no longer describe the same machine
        if ref_errno != item.expected:
            found.append(Disagreement(
                "expectation", call, outcome.errno, ref_errno, trace=list(done), where=where,
                note=f"the scenario expects {errno_name(item.expected)}; both sides answer "
                     f"{errno_name(ref_errno)}"))
        done.append(call)
        state = outcome.state
    return ScenarioReport(scenario.path, scenario.lines, made, found)


def scenario_text(profile, config, trace: list, comment: str) -> str:
    """A trace (steps with `call` and `errno`) as a scenario file: what `explore --save-trace`
    writes, and `replay` or `conform --scenarios` run on model and reference alike."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append(f"machine {profile.presenter.machine_text(config)}")
    for st in trace:
        args = " ".join(f"{p}={a}" for p, a in zip(st.call.params, st.call.args))
        lines.append(f"{st.call.name} {args} -> {errno_name(st.errno)}".replace("  ", " "))
    return "\n".join(lines) + "\n"


def shipped_scenarios(profile) -> list[Path]:
    """The scenario files shipped with the profile (its `scenarios` folder)."""
    return sorted(Path(profile.scenarios).glob("*.scn")) if profile.scenarios else []


def run_scenarios(profile, paths: Iterable[str | Path]) -> list[ScenarioReport]:
    """Parse every file first (a malformed one raises ScenarioError before anything runs); each
    runs on its own machine with the profile's configuration changes applied."""
    scenarios = [load_scenario(profile, p) for p in paths]
    return [run_scenario(profile, s, config=profile.adjust(s.config)) for s in scenarios]
