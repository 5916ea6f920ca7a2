"""Bad input is one line on stderr and exit 2; the commands run on the profile."""

import pytest

from model.cli import main


@pytest.mark.parametrize("argv", [
    ["explore", "--profile", "gmem", "--vm", "sev"],
    ["explore", "--profile", "gmem", "--gfns", "0"],
    ["explore", "--profile", "gmem", "--pages", "1000"],
    ["conform", "--profile", "gmem", "--scenarios", "/nonexistent"],
    ["mutants", "--profile", "gmem", "--only", "no_such_mutant"],
])
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkvm-model: error:") and err.count("\n") == 1


def test_malformed_scenario_file_exit_2(tmp_path, capsys):
    (tmp_path / "bad.scn").write_text("machine vm=x86 files=1\nguest_read gfn=0 -> maybe\n")
    argv = ["conform", "--profile", "gmem", "--no-explore", "--walks", "0",
            "--scenarios", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "bad.scn:2" in err and err.count("\n") == 1


def test_explore_tiny_machine_exit_0(capsys):
    argv = ["explore", "--profile", "gmem", "--vm", "arm64", "--files", "1", "--slots", "1",
            "--gfns", "1", "--pages", "1", "--json"]
    assert main(argv) == 0
    assert '"violations": []' in capsys.readouterr().out


def test_gfn_diagram(tmp_path):
    out = tmp_path / "gfn.mmd"
    argv = ["diagram", "--profile", "gmem", "--view", "gfn", "--format", "mermaid", "-o", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "leaf private:f0[0]" in text and "page zero" in text and "set_attributes" in text


def test_explore_witnesses_on_the_witness_machine_what_its_vm_cannot(capsys):
    """A SW_PROTECTED VM never lets the host fault a page in; `explore` looks for what its
    complete search left unwitnessed on the profile's witness machine (an x86 VM of the same
    size), only until all of it is seen, and says where; what that machine cannot show either
    stays unwitnessed (one file behind two slots needs two pages)."""
    import json

    def explore(*machine):
        assert main(["explore", "--profile", "gmem", *machine, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    data = explore()  # the default machine
    assert all(data["sometimes"].values())
    [run] = data["witness machines"]
    assert run["options"] == ["--vm", "x86"] and run["machine"].startswith("x86 VM")
    assert run["witnessed"] == run["searched for"] == ["host_read_succeeds", "host_write_succeeds"]
    whole = explore("--vm", "x86")
    assert "witness machines" not in whole and whole["complete"]
    assert run["states"] < whole["states"]  # stopped once both were witnessed
    one_page = explore("--pages", "1")
    [run] = one_page["witness machines"]
    assert run["witnessed"] == ["host_read_succeeds", "host_write_succeeds"]
    assert run["searched for"] == [*run["witnessed"], "one_file_two_slots"]
    assert [k for k, v in one_page["sometimes"].items() if not v] == ["one_file_two_slots"]


def test_a_stop_in_the_search_for_witnesses_leaves_the_search_whole(monkeypatch, capsys):
    """--max-seconds (or Ctrl-C) during the search for witnesses: the exploration is reported
    complete, the witness run as stopped, and the exit code is the stop's."""
    import json

    import model.explorer
    from model.commands.common import Stopped

    real = model.explorer.explore

    def explore(profile, config, **options):
        if options.get("stop_when_witnessed"):
            def deadline(*_):
                raise Stopped("time limit")
            options["on_edge"] = deadline
        return real(profile, config, **options)

    monkeypatch.setattr(model.explorer, "explore", explore)
    assert main(["explore", "--profile", "gmem", "--json"]) == 124
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] and data["stopped"] is None and data["graph"]["checked"]
    [run] = data["witness machines"]
    assert run["stopped"] == "time limit" and run["witnessed"] == []
    assert not data["sometimes"]["host_read_succeeds"]


def test_a_witness_machine_the_users_machine_rules_out_is_skipped_with_its_reason(
        monkeypatch, capsys):
    """Witness options that make an impossible machine with the user's own are reported as
    skipped, never a traceback; the next witness machine is still searched."""
    from model.profiles import get

    gmem = type(get("gmem"))
    monkeypatch.setattr(gmem, "witness_machines", (("--gfns", "0"), ("--vm", "x86")))
    assert main(["explore", "--profile", "gmem"]) == 0
    out = capsys.readouterr().out
    assert "witness machine --gfns 0 skipped: " in out
    assert "(--vm x86): host_read_succeeds, host_write_succeeds" in out
