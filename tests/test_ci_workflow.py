"""The ready workflow in docs/ is a valid GitHub Actions workflow whose commands this CLI takes."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from model.cli import UsageError, build_parser

WORKFLOW = Path(__file__).resolve().parent.parent / "docs" / "ci-workflow.yml"
VALIDATE = shutil.which("check-jsonschema")


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([VALIDATE, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(VALIDATE is None, reason="check-jsonschema is not installed")
def test_the_workflow_matches_githubs_schema(tmp_path):
    assert validate(WORKFLOW).returncode == 0
    broken = tmp_path / "broken.yml"  # the check can fail: a job without runs-on
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: x"))
    assert validate(broken).returncode != 0


def test_every_command_of_the_workflow_parses():
    lines = [line.strip() for line in WORKFLOW.read_text().splitlines()
             if re.match(r"\s+pkvm-model\b", line)]
    assert any(" check " in f" {line} " for line in lines)
    for line in lines:
        argv = shlex.split(line)[1:]
        try:
            build_parser().parse_args(argv)
        except (SystemExit, UsageError) as err:
            pytest.fail(f"{line!r} does not parse: {err}")


def test_the_report_the_workflow_publishes_is_the_one_check_writes():
    text = WORKFLOW.read_text()
    junit = re.search(r"--junit (\S+)", text).group(1)
    assert f"report_paths: {junit}" in text and f"path: {junit.split('/')[0]}/" in text
