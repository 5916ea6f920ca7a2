"""Bad input to `pkvm-model`: one line on stderr, exit 2, no traceback, no hang.

Each case runs the real command line in a subprocess (`python -m model.cli`), so that what is
checked is what a user sees, exit code included."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*argv, cwd=None, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "model.cli", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)


BAD = [
    (["explore", "--guests", "0"], "--guests 0 leaves no vm to call host_share_guest"),
    (["explore", "--guests", "9"], "--guests 9 is past the limit of 8"),
    (["explore", "--pages", "1000000"], "--pages 1000000 is past the limit of 8"),
    (["explore", "--gfns", "1000000"], "--gfns 1000000 is past the limit of 8"),
    (["diagram", "--pages", "100000", "--format", "dot", "-o", "x.dot"],
     "--pages 100000 is past the limit of 8"),
    (["conform", "--pages", "1000000"], "--pages 1000000 is past the limit of 8"),
    (["explore", "--profile", "toy", "--pages", "1000000"], "--pages 1000000 is past the limit"),
    (["explore", "--save-graph", ""], "--save-graph: empty file name"),
    (["diagram", "--format", "dot", "-o", ""], "-o: empty file name"),
    (["diagram", "--format", "svg", "-o", "x.png"],
     "-o x.png: the extension says png but --format is svg"),
    (["diagram", "-o", "x.txt"], "-o x.txt: give --format"),
    (["prove", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["prove", "--budget", "0"], "--budget must be positive (millions of z3 resource units), got 0"),
    (["prove", "--jobs", "4096"], "--jobs 4096 is more than the"),
    (["mutants", "--jobs", "0"], "--jobs must be at least 1"),
    (["conform", "--no-explore", "--no-scenarios", "--walks", "0"],
     "--no-explore, --no-scenarios and --walks 0 leave nothing to check"),
    (["explore", "--profile", "toy", "--save-graph", "/nonexistent/g.json"],
     "--save-graph /nonexistent/g.json: no such directory /nonexistent"),
    (["explore", "--profile", "toy", "--save-graph", "/etc/passwd/g.json"], "no such directory"),
    (["explore", "--profile", "toy", "--save-graph", "/tmp"], "--save-graph /tmp: is a directory"),
    (["prove", "--profile", "toy", "--junit", "/nonexistent/r.xml"], "--junit /nonexistent/r.xml"),
    (["diagram", "--format", "dot", "-o", "/nonexistent/d.dot"], "no such directory"),
    (["prove", "--transition", "nope"], "unknown transition 'nope'; one of: init, host_share_hyp"),
    (["explore", "--mutant", "nope"], "unknown mutant 'nope'; one of: donate_guest_no_annotation"),
    (["mutants", "--profile", "toy", "--only", "nope"],
     "unknown mutant 'nope'; one of: reclaim_ignores_pins, reclaim_no_scrub"),
    (["explore", "--profile", "toy", "--skip", "nope"],
     "unknown property 'nope'; one of: type_ok, pinned_is_borrowed"),
    (["prove", "--profile", "toy", "--skip", "nope"], "unknown property 'nope'; one of: type_ok"),
    (["explore", "--profile", "sev"], "unknown profile 'sev'"),
    (["frobnicate"], "invalid choice"),
    (["--config", "/nonexistent.toml", "explore"], "--config /nonexistent.toml: no such file"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(argv, needle, tmp_path):
    done = cli(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("pkvm-model: error: ")
    assert needle in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_no_command_prints_the_usage_and_exits_2():
    done = cli()
    assert done.returncode == 2
    assert done.stderr.startswith("usage: pkvm-model") and "check" in done.stderr


def test_version():
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("pkvm-model 0.")
    assert "z3 " in done.stdout


def test_init_is_a_transition_to_prove():
    done = cli("prove", "--profile", "toy", "--transition", "init")
    assert done.returncode == 0, done.stderr
    assert "3 proved, 0 violated" in done.stdout


def test_a_closed_pipe_exits_quietly():
    for argv in (["explore", "--profile", "toy", "--json"], ["explore", "--profile", "toy"],
                 ["diagram", "--profile", "toy", "--format", "dot", "-o", "-"]):
        p = subprocess.Popen([sys.executable, "-m", "model.cli", *argv], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.close()  # the reader is gone before the first write
        err = p.stderr.read()
        assert p.wait(timeout=60) == 141 and err == "", (argv, err)


def test_binary_diagram_refused_on_a_terminal_but_not_on_a_pipe():
    import pty

    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "model.cli", "diagram", "--profile", "toy",
                               "--format", "png", "-o", "-"], stdout=secondary,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 2 and "refusing to write png to a terminal" in done.stderr
    if subprocess.run(["which", "dot"], capture_output=True).returncode == 0:
        piped = subprocess.run([sys.executable, "-m", "model.cli", "diagram", "--profile", "toy",
                                "--format", "png", "-o", "-"], capture_output=True, cwd=ROOT,
                               timeout=60)
        assert piped.returncode == 0 and piped.stdout.startswith(b"\x89PNG")
