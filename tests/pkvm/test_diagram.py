"""Diagrams: the page state machine, the full graph (refused past a readable size), formats."""

from __future__ import annotations

import shutil

import pytest

from model import cli
from model.diagram import DiagramError, build as build_diagram, dot, mermaid
from model.profiles.pkvm.presenter import page_views
from model.profiles.pkvm.states import Config
from tests.pkvm.helpers import PKVM, mutant


def build(config, view, profile=PKVM, model=None, model_config=None):
    return build_diagram(profile, config, view, model=model, model_config=model_config)

ONE_PAGE = Config(ram=1, guests=(True, False), gfns=1)


@pytest.fixture
def main(monkeypatch):
    """model.cli.main with this work's subcommands (others may not be installed yet)."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", ("explore", "diagram"))
    return cli.main


def test_page_view_is_the_state_machine_of_one_page():
    d = build(ONE_PAGE, view="page")
    labels = set(d.nodes.values())
    assert d.nodes[d.initial] == "host OWNED"
    for expected in ("hyp OWNED", "vm0 OWNED", "host SHARED_OWNED\nhyp SHARED_BORROWED",
                     "host SHARED_OWNED\nffa SHARED_BORROWED",
                     "host SHARED_OWNED\nvm1 SHARED_BORROWED",
                     "host SHARED_BORROWED\nvm0 SHARED_OWNED"):
        assert expected in labels
    assert len(d.nodes) == 7  # the views a page can be in with one VM of each kind
    host_owned = d.initial
    donated = next(k for k, v in d.nodes.items() if v == "vm0 OWNED")
    assert d.edges[(host_owned, donated)] == ["host_donate_guest"]
    assert "host_force_reclaim_page_guest" in d.edges[(donated, host_owned)]
    assert not d.red_nodes and not d.red_edges
    assert all(u != v for u, v in d.edges)  # self-loops of the projection are left out


def test_page_views_name_every_entity():
    from model.profiles.pkvm.states import initial_state
    assert page_views(ONE_PAGE, initial_state(ONE_PAGE)) == (
        "OWNED", "NOPAGE", "NOPAGE", "NOPAGE", "NOPAGE")


def test_mutant_states_that_violate_a_property_are_red():
    d = build(ONE_PAGE, view="page", profile=mutant("share_ffa_from_shared"), model=PKVM,
              model_config=ONE_PAGE)
    assert d.red_nodes
    text = dot(d)
    assert "#c00000" in text and "violates: " in text
    # the model's own states are not red
    assert d.initial not in d.red_nodes
    assert "classDef bad" in mermaid(d)


def test_full_view_is_refused_past_a_readable_size():
    with pytest.raises(DiagramError, match="no reader can follow"):
        build(ONE_PAGE, view="full")
    small = build(Config(ram=1, guests=(True,), gfns=1), view="full")
    assert len(small.nodes) == 137  # 101 before the VM refcount (a loaded vCPU or not)
    assert dot(small).count("->") >= len(small.nodes) - 1


def test_dot_and_mermaid_text():
    d = build(ONE_PAGE, view="page")
    text = dot(d)
    assert text.startswith("digraph protocol {") and text.rstrip().endswith("}")
    assert "peripheries=2" in text  # the initial state is marked
    m = mermaid(d)
    assert "flowchart LR" in m and "host_donate_guest" in m


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_cli_writes_svg_and_png(tmp_path, main):
    svg = tmp_path / "page.svg"
    assert main(["diagram", "--view", "page", "--format", "svg", "-o", str(svg)]) == 0
    assert svg.read_text().lstrip().startswith("<?xml") and "host_donate_guest" in svg.read_text()
    png = tmp_path / "page.png"
    argv = ["diagram", "--format", "png", "-o", str(png), "--pages", "1", "--guests", "1"]
    assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_diagram_errors(tmp_path, main, capsys):
    out = tmp_path / "full.dot"
    assert main(["diagram", "--view", "full", "--format", "dot", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkvm-model: error: the full graph has") and err.count("\n") == 1
    assert main(["diagram", "--format", "jpeg", "-o", str(out)]) == 2
    assert main(["diagram", "--format", "dot", "-o", str(out), "--mutant", "nope"]) == 2
    assert main(["diagram", "--format", "mermaid", "-o", str(tmp_path / "m.md"),
                 "--mutant", "force_reclaim_no_poison"]) == 0
