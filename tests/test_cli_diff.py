"""`pkvm-model diff`: what a proposed change does, for a design review."""

import json

from model.cli import main

NO_SCRUB = '''
def extend(ext):
    ext.drop_write("reclaim", "data")
'''


def test_diff_shows_flips_new_violations_and_the_view(tmp_path, capsys):
    ext = tmp_path / "no_scrub.py"
    ext.write_text(NO_SCRUB)
    out = tmp_path / "change.dot"
    assert main(["diff", "--profile", "toy", "--extension", str(ext), "-o", str(out),
                 "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["changes"]["transitions"] == {"added": [], "removed": [], "changed": ["reclaim"]}
    flipped = {(f["property"], f["transition"]): (f["before"], f["after"])
               for f in data["obligations"]["flipped"]}
    assert flipped == {("scrubbed", "reclaim"): ("proved", "violated")}
    (v,) = data["explore"]["newly_violated"]
    assert v["property"] == "scrubbed" and [s["name"] for s in v["steps"]][-1] == "reclaim"
    view = data["view"]
    assert view["states_added"] == 1 and view["states_removed"] == 0  # LENDER holding SECRET
    assert "reclaim" in view["edges_added"]
    text = out.read_text()
    assert "#1a7f37" in text and "SECRET" in text


def test_a_harmless_change_breaks_nothing(tmp_path, capsys):
    ext = tmp_path / "prop.py"
    ext.write_text('def extend(ext):\n    @ext.always\n    def pins_natural(s):\n'
                   '        """No pin count goes below zero."""\n'
                   '        return s.forall_pages(lambda p: s.pins(p) >= 0)\n')
    assert main(["diff", "--profile", "toy", "--extension", str(ext)]) == 0
    out = capsys.readouterr().out
    assert "properties: added pins_natural" in out
    assert "obligation pins_natural / lend: absent -> proved" in out
    assert "newly violated: none" in out and "0 state(s) appear, 0 vanish" in out


def test_diff_needs_a_change(capsys):
    assert main(["diff", "--profile", "toy"]) == 2
    assert "diff needs a change" in capsys.readouterr().err
