"""u64 arguments: pfn and nr_pages range over [0, 2**64), the range checks are the kernel's
non-overflowing ones, and a check on a wrapped end is a mutant the explorer finds."""

from __future__ import annotations

import json
from errno import EINVAL

import pytest

from model.cli import main
from model.profiles.pkvm.states import U64, Config, initial_state
from model.references.pkvm import Hypervisor
from model.references.pkvm.mem_protect import check_pfn_range, pfn_range_is_valid
from tests.pkvm.helpers import PKVM, mutant
from tests.test_cli_bad_input import cli

TOP = U64 - 1


@pytest.mark.parametrize("call", [("host_donate_hyp", (1, TOP)), ("host_share_ffa", (2, TOP)),
                                  ("host_unshare_ffa", (TOP, TOP)), ("hyp_donate_host", (0, TOP))])
def test_a_range_whose_end_would_wrap_is_einval(call):
    config = Config()
    outcome = PKVM.step(config, initial_state(config), PKVM.call(*call))
    assert outcome.errno == -EINVAL and outcome.state == initial_state(config)


def test_the_reference_checks_like_the_kernel():
    hv = Hypervisor(4, 1)
    assert pfn_range_is_valid(0, 2**36) and not pfn_range_is_valid(1, 2**36)
    assert not pfn_range_is_valid(1, TOP) and not pfn_range_is_valid(TOP, 0)
    assert check_pfn_range(hv, 0, 0) == -EINVAL  # end - 1 wraps to ULONG_MAX
    assert check_pfn_range(hv, 1, 0) == 0 and check_pfn_range(hv, 2, TOP) == -EINVAL


def test_the_wrapped_end_mutant_donates_mmio_and_no_map_pages():
    protocol = mutant("donate_hyp_wrapped_range_end")
    config = protocol.adjust(Config())
    outcome = protocol.step(config, initial_state(config), protocol.call("host_donate_hyp", (2, TOP)))
    assert outcome.errno == 0
    assert [int(h) for h in outcome.state.host] == [0, 0, 3, 3, 3]  # MMIO and no-map given away


def test_the_wrapped_end_mutant_is_killed_by_exploration(capsys):
    assert main(["mutants", "--only", "donate_hyp_wrapped_range_end", "--json", "-q"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["mutants"]
    assert (report["killed_by"], report["explore"]["violated"]) == ("explore", ["range_hygiene"])


def test_nrs_names_u64_values(capsys):
    assert main(["explore", "--pages", "1", "--guests", "1", "--nrs", f"1,{TOP}", "-q"]) == 0
    assert f"nr 1,{TOP}" in capsys.readouterr().out


@pytest.mark.parametrize("nrs, message", [
    ("-1", "--nrs -1: nr_pages is a u64"),
    (str(U64), f"--nrs {U64}: nr_pages is a u64"),
    ("1,two", "--nrs 1,two: expected comma-separated integers")])
def test_nrs_out_of_u64_is_one_line_exit_2(nrs, message):
    run = cli("explore", "--nrs", nrs)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"pkvm-model: error: {message}, 0 .. {TOP}"] \
        if "u64" in message else [f"pkvm-model: error: {message}"]


def test_nrs_from_a_config_file(tmp_path):
    (tmp_path / "pkvm-model.toml").write_text(f'[machine]\npages = 1\nguests = 1\nnrs = "1,{TOP}"\n')
    run = cli("explore", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"nr 1,{TOP}" in run.stdout
    (tmp_path / "pkvm-model.toml").write_text('[machine]\nnrs = "-5"\n')
    run = cli("explore", "-q", cwd=tmp_path)
    assert run.returncode == 2 and "--nrs -5: nr_pages is a u64" in run.stderr


def test_a_scenario_argument_past_u64_is_refused(tmp_path):
    scn = tmp_path / "big.scn"
    scn.write_text("machine ram=2 mmio=1 guests=np\nhost_share_ffa pfn=0 nr=U64_MAX+1 -> -EINVAL\n")
    run = cli("replay", str(scn))
    assert run.returncode == 2
    assert "nr U64_MAX+1 is past U64_MAX: arguments are u64" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
