"""`pkvm-model check` and the configuration file."""

import json

import pytest

from model.cli import main
from tests.test_cli_bad_input import cli

FAST = '[conform]\nwalks = 2\nwalk_steps = 20\n'


def test_check_one_profile_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkvm-model.toml").write_text(FAST)
    junit = tmp_path / "all.xml"
    assert main(["check", "--profile", "toy", "--mutants", "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("pkvm-model check: PASS")
    assert [line.split()[2] for line in lines[1:]] == ["prove", "explore", "conform", "mutants"]
    assert "23/23 proved" in out and "agree" in out and "2/2 killed" in out
    assert "40 walk calls" in out  # the configuration file's 2 walks of 20 calls
    text = junit.read_text()
    assert text.count("<testsuite ") == 4


def test_check_fails_on_a_violation_and_names_it(tmp_path, monkeypatch, capsys):
    """An extension (from the configuration file) that breaks a property: FAIL, exit 1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "no_scrub.py").write_text(
        'def extend(ext):\n    """reclaim forgets to scrub"""\n'
        '    ext.drop_write("reclaim", "data")\n')
    (tmp_path / "pkvm-model.toml").write_text('extensions = ["no_scrub.py"]\n' + FAST)
    assert main(["check", "--profile", "toy", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["result"] == "fail" and data["z3_version"]
    assert any(p.startswith("toy explore: scrubbed: violated at page 0 (3-step trace")
               for p in data["problems"])
    assert any(p.startswith("toy prove: scrubbed / reclaim: violated") for p in data["problems"])


def test_config_sets_options_and_the_command_line_wins(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkvm-model.toml").write_text(
        'profile = "toy"\n[machine]\npages = 3\n[explore]\nmax_depth = 2\n')
    assert main(["explore", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profile"] == "toy" and data["machine"].startswith("3 pages") and data["depth"] == 2
    assert main(["explore", "--json", "--pages", "2", "--max-depth", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["machine"].startswith("2 pages") and data["depth"] == 1


def test_config_junit_and_shared_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('profile = "toy"\njunit = "{command}-{profile}.xml"\n'
                                     'skip = ["page_secret"]\n')
    assert main(["--config", "c.toml", "explore", "--json"]) == 0
    text = (tmp_path / "explore-toy.xml").read_text()
    assert 'name="page_secret"' in text and "skipped" in text


@pytest.mark.parametrize("toml, needle", [
    ('[explore]\nmax_dept = 3\n', "pkvm-model.toml: explore.max_dept: unknown key; one of: "),
    ('[explore]\nmax_depth = "x"\n', "pkvm-model.toml: explore.max_depth: expected an integer"),
    ('[explore]\nsymmetry = 1\n', "explore.symmetry: expected true or false"),
    ('frobnicate = 1\n', "pkvm-model.toml: frobnicate: unknown key"),
    ('profile = 3\n', "pkvm-model.toml: profile: expected a string"),
    ('profile = "sev"\n', "unknown profile 'sev'"),
    ('[machine]\ngfns = 2\nprofile = "toy"\n', "machine.profile: not an option"),
    ('profile = "toy"\n[machine]\ngfns = 2\n', "machine.gfns: not an option of `pkvm-model "
                                               "explore` with the toy profile"),
    ('[machine]\npages = 0\n', "need at least one RAM page"),
    ('[machine]\npages = 99\n', "(set in pkvm-model.toml as machine.pages)"),
    ('explore = 3\n', "explore: expected a table"),
    ('[explore\n', "pkvm-model.toml: not valid TOML"),
    ('[diagram]\nformat = "jpeg"\n', "diagram.format: 'jpeg' is not one of"),
])
def test_config_errors_are_one_line_naming_the_key(tmp_path, toml, needle):
    (tmp_path / "pkvm-model.toml").write_text(toml)
    command = ["diagram", "-o", "x.dot"] if "diagram" in toml else ["explore"]
    done = cli(*command, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert needle in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_the_documented_workflow_config_is_valid(tmp_path):
    """docs/ci.md's example configuration parses and runs (toy profile, fast)."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "ci.md").read_text()
    toml = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "pkvm-model.toml").write_text(toml)
    (tmp_path / "reports").mkdir()
    done = cli("explore", "--profile", "toy", "--max-seconds", "30", cwd=tmp_path)
    assert (tmp_path / "reports" / "explore-toy.xml").exists()
    assert done.returncode == 0, done.stderr
