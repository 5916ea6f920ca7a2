"""Results as JUnit XML, the format CI systems show as test reports.

Plain data in, a file out: `write(path, suites)` with each suite a `Suite` of `Case`s. A case
is a pass, a failure (a violated property, a disagreement, a surviving mutant: `failure` is the
message and `text` the trace or counterexample), or skipped (not run, or not settled). Written
with the standard library's xml.etree (see docs/ci.md): the schema needed is four elements.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass
class Case:
    name: str
    classname: str
    seconds: float = 0.0
    failure: str | None = None  # the message of a failure
    text: str = ""  # the trace or counterexample of a failure, or the reason of a skip
    skipped: str | None = None  # the reason it was not run or not settled


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    seconds: float = 0.0
    properties: dict = field(default_factory=dict)  # tool version, profile, machine...


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters (an ANSI escape would make the file bad)."""
    return "".join(c for c in str(text) if c in "\t\n\r" or ord(c) >= 0x20)


def to_xml(suites: list[Suite]) -> ET.Element:
    root = ET.Element("testsuites", name="pkvm-model")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        failures = sum(c.failure is not None for c in s.cases)
        skipped = sum(c.skipped is not None and c.failure is None for c in s.cases)
        suite = ET.SubElement(root, "testsuite", name=s.name, tests=str(len(s.cases)),
                              failures=str(failures), errors="0", skipped=str(skipped),
                              time=f"{s.seconds:.3f}")
        if s.properties:
            props = ET.SubElement(suite, "properties")
            for key, value in s.properties.items():
                ET.SubElement(props, "property", name=str(key), value=_clean(value))
        for c in s.cases:
            case = ET.SubElement(suite, "testcase", name=_clean(c.name), classname=c.classname,
                                 time=f"{c.seconds:.3f}")
            if c.failure is not None:
                node = ET.SubElement(case, "failure", message=_clean(c.failure), type="violation")
                node.text = _clean(c.text or c.failure)
            elif c.skipped is not None:
                ET.SubElement(case, "skipped", message=_clean(c.skipped))
        for key, value in (("tests", len(s.cases)), ("failures", failures), ("skipped", skipped)):
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    return root


def write(path: str, suites: list[Suite]) -> None:
    tree = ET.ElementTree(to_xml(suites))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
