"""`pkvm-model replay FILE`: one scenario file (a trace `explore --save-trace` wrote, or one by
hand) run call by call on the model and on the reference.

Each line must give the expected result on both sides, and both sides must agree on the new
state; under `--mutant` or `--extension` the changed model runs against the unchanged reference,
which is how a saved counterexample is shown to be a real run of the kernel-shaped code (or
not). Exit 0 when every line holds, 1 on the first disagreement (shown with both answers and a
diff), 2 on bad input.
"""

from __future__ import annotations

import json

from model.commands.common import add_profile_arguments, load


def register(subparsers, profile) -> None:
    parser = subparsers.add_parser(
        "replay", help="run one scenario file (a saved trace) on the model and the reference",
        description="Runs every line of a scenario file on the model and on the reference side "
                    "by side; reports the first disagreement.")
    parser.add_argument("file", metavar="FILE", help="the scenario file (.scn)")
    add_profile_arguments(parser, profile, machine=False)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    from model.cli import UsageError
    from model.conformance import ScenarioError, load_scenario, run_scenario

    profile, _base, _config = load(args, with_config=False)
    if profile.reference is None:
        raise UsageError(f"the {profile.name} profile has no reference implementation")
    try:
        scenario = load_scenario(profile, args.file)
    except ScenarioError as err:
        raise UsageError(str(err)) from None
    report = run_scenario(profile, scenario, config=profile.adjust(scenario.config))
    if args.json:
        print(json.dumps({"profile": profile.name, "extensions": list(profile.extensions),
                          "mutant": args.mutant, **report.to_data()}, indent=2))
    else:
        print(f"{report.path}: {report.calls} calls on {profile.presenter.machine_text(scenario.config)}, "
              f"{len(report.disagreements)} disagreement(s)")
        for d in report.disagreements:
            print(d.text())
    return 1 if report.disagreements else 0
