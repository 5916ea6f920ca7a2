"""`explore --checkpoint FILE` and `--resume`: a search stopped by its time limit goes on from
its file to the one search's end; a file is resumed only by the search that wrote it."""

import json

from tests.reports import untimed
from tests.test_cli_bad_input import cli


def test_a_stopped_search_resumes_to_the_end(tmp_path):
    path = str(tmp_path / "run.ckpt")
    first = cli("explore", "--checkpoint", path, "--max-seconds", "4", "--json")
    assert first.returncode == 124 and first.stderr == ""
    stopped = json.loads(first.stdout)
    assert stopped["checkpoint"]["file"] == path and 0 < stopped["checkpoint"]["states"]
    rest = cli("explore", "--checkpoint", path, "--resume", "--json")
    assert rest.returncode == 0 and rest.stderr == ""
    done = json.loads(rest.stdout)
    assert done.pop("resumed")["states"] == stopped["checkpoint"]["states"]
    whole = json.loads(cli("explore", "--json").stdout)
    assert untimed(done) == untimed(whole) and done["complete"] and done["graph"]["checked"]
    again = cli("explore", "--checkpoint", path, "--resume", "--pages", "1")  # another machine
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "belongs to another search: its machine is" in again.stderr


def test_checkpoint_options_refused(tmp_path):
    existing = tmp_path / "old.ckpt"
    existing.write_bytes(b"x")
    for argv, message in [
            (["--resume"], "--resume: which search? give its --checkpoint FILE"),
            (["--checkpoint", str(existing)], "exists (--resume to go on from it, or remove it)"),
            (["--checkpoint", str(existing), "--resume"], "not a pkvm-model checkpoint"),
            (["--checkpoint", str(tmp_path / "none"), "--resume"], "No such file or directory"),
            (["--checkpoint", str(tmp_path / "c"), "--checkpoint-minutes", "0"],
             "--checkpoint-minutes out of range: 0"),
            (["--checkpoint", str(tmp_path / "no" / "c")], "no such directory"),
            (["--checkpoint", str(tmp_path / "c"), "--conformance"], "not with --conformance")]:
        done = cli("explore", "--profile", "toy", *argv)
        assert done.returncode == 2 and message in done.stderr, (argv, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
