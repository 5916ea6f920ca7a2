"""The seam between the machinery and the protocols: no protocol leaks into the machinery, and
the machinery runs every command on a protocol other than pKVM (the toy profile)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from model.cli import main

ROOT = Path(__file__).resolve().parents[2] / "model"
MACHINERY = sorted(p for p in ROOT.rglob("*.py")
                   if "profiles" not in p.parts and "references" not in p.parts)
# Words of the pKVM protocol that have no business in the machinery's code.
PKVM_WORDS = re.compile(r"\b(pfn|gfn|hyp|ffa|host_discipline|s2|pte|BLOCK_PAGES|protected|"
                        r"guests?|vm\d*|ram|mmio|PageState|Leaf|hole_punch)\b")


def _code_words(tree: ast.AST) -> list[tuple[int, str]]:
    """Identifiers, and string literals that are one word (keys, field and option names), of a
    module: prose (docstrings, help texts, messages) may explain what a profile is."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, ast.arg):
            out.append((node.lineno, node.arg))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and " " not in node.value.strip():
            out.append((node.lineno, node.value))
    return out


@pytest.mark.parametrize("path", MACHINERY, ids=lambda p: str(p.relative_to(ROOT)))
def test_machinery_imports_no_protocol(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            assert not name.startswith(("model.profiles.", "model.references")), \
                f"{path.name}:{node.lineno} imports {name}"


@pytest.mark.parametrize("path", MACHINERY, ids=lambda p: str(p.relative_to(ROOT)))
def test_machinery_speaks_no_pkvm(path):
    leaks = [f"{path.name}:{line}: {text!r}" for line, text in _code_words(ast.parse(path.read_text()))
             if PKVM_WORDS.search(text)]
    assert leaks == []


def test_the_leak_test_can_fail(tmp_path):
    tree = ast.parse('def f(s, pfn):\n    """a pfn in prose is fine"""\n'
                     '    return s.get("host_discipline", "one pfn in a message")\n')
    assert [w for _l, w in _code_words(tree) if PKVM_WORDS.search(w)] == ["pfn", "host_discipline"]


def test_references_import_nothing_of_the_model():
    for path in (ROOT / "references").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("model"), f"{path}: {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("model") for a in node.names), str(path)


# -- every command on the toy profile -------------------------------------------------------

def run_json(capsys, argv):
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_toy_explore_complete_with_symmetry_and_without(capsys):
    code, reduced = run_json(capsys, ["explore", "--profile", "toy", "--pages", "3", "--json",
                                      "--unreduced"])
    assert code == 0 and reduced["complete"] and reduced["violations"] == []
    assert all(reduced["sometimes"].values())
    assert reduced["graph"] == {"checked": True, "graph_all_returned": 0, "graph_no_dead_end": 0}
    code, full = run_json(capsys, ["explore", "--profile", "toy", "--pages", "3", "--no-symmetry",
                                   "--json"])
    assert code == 0 and full["states"] == 7 ** 3  # (lender | borrower x pins 0..2 x data) ^ 3
    assert reduced["states"] < full["states"]
    assert reduced["symmetry"]["unreduced"] == {"states": full["states"], "edges": full["edges"]}


def test_toy_mutant_gives_a_trace_in_the_toys_words(capsys):
    code, data = run_json(capsys, ["explore", "--profile", "toy", "--mutant", "reclaim_no_scrub",
                                   "--json"])
    assert code == 1
    v = data["violations"][0]
    assert v["property"] == "scrubbed" and v["where"] == "page 0" and data["trace_format"] == 1
    assert v["clause"] == ("s.owner(p) == BORROWER is false, where s.data(p) == SECRET "
                           "(model/profiles/toy/protocol.py:128)")
    assert [s["call"] for s in v["trace"]] == ["lend(page=0)", "write(page=0)", "reclaim(page=0)"]
    assert v["trace"][-1]["state"]["page0"] == {"owner": "LENDER", "pins": 0, "data": "SECRET"}
    assert "page0.owner" in v["trace"][-1]["changed"]


def test_toy_proofs(capsys):
    code, data = run_json(capsys, ["prove", "--profile", "toy", "--json"])
    assert code == 0 and data["result"] == "proved" and data["profile"] == "toy"
    assert len(data["obligations"]) == 3 + 4 * 5  # init x state properties, props x transitions
    assert all(r["witnessed"] for r in data["bmc"])


def test_toy_prover_refutes_a_mutant_with_a_counterexample(capsys):
    code, data = run_json(capsys, ["prove", "--profile", "toy", "--mutant", "reclaim_ignores_pins",
                                   "--transition", "reclaim", "--json", "--no-bmc"])
    assert code == 1
    bad = {o["property"]: o for o in data["obligations"] if o["status"] == "violated"}
    assert "pinned_is_borrowed" in bad
    assert bad["pinned_is_borrowed"]["counterexample"]["call"].startswith("reclaim(page=")


def test_toy_mutants_are_killed(capsys):
    code, data = run_json(capsys, ["mutants", "--profile", "toy", "--json", "--prove"])
    assert code == 0 and data["survivors"] == []
    assert {r["mutant"]: r["killed_by"] for r in data["mutants"]} == {
        "reclaim_ignores_pins": "explore", "reclaim_no_scrub": "explore"}
    assert all(r["proof"]["violated"] for r in data["mutants"])


def test_toy_conformance_and_a_mutant_against_it(capsys):
    code, data = run_json(capsys, ["conform", "--profile", "toy", "--walks", "4",
                                   "--walk-steps", "50", "--json"])
    assert code == 0 and data["disagreements"] == 0
    assert data["scenarios"]["files"] == 1 and data["walks"]["calls"] == 200
    code, data = run_json(capsys, ["conform", "--profile", "toy", "--mutant", "reclaim_no_scrub",
                                   "--walks", "0", "--json"])
    assert code == 1 and data["disagreements"] > 0


def test_toy_diagram(capsys, tmp_path):
    out = tmp_path / "page.mmd"
    assert main(["diagram", "--profile", "toy", "--format", "mermaid", "-o", str(out)]) == 0
    text = out.read_text()
    assert "the life of page 0" in text and "lend" in text and "reclaim" in text


def test_unknown_profile_is_one_line(capsys):
    assert main(["explore", "--profile", "sev"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'sev'" in err and "pkvm, toy" in err and err.count("\n") == 1


def test_check_counts_a_sometimes_witnessed_on_a_witness_machine(monkeypatch):
    """`check` explores the profile's witness machines too; a property the default machine
    cannot reach counts when another witnesses it."""
    from model import profiles
    from model.commands.check import _explore
    from model.commands.progress import Progress
    from model.properties import Property

    toy = profiles.get("toy")
    third = Property("third_page_lent", "sometimes", "a third page can be lent",
                     state=lambda s: s.owner(2) == 1)  # the default machine has two pages
    changed = toy.with_changes(sometimes=toy.sometimes + (third,))
    monkeypatch.setitem(profiles._CHECKED, "toy", changed)
    lone = _explore(changed, None, Progress("x", False))
    assert not lone["ok"] and lone["problems"] == ["third_page_lent: never witnessed"]
    monkeypatch.setattr(type(toy), "witness_machines", (("--pages", "3"),))
    both = _explore(changed, None, Progress("x", False))
    assert both["ok"] and "8/8 sometimes" in both["text"]
