"""`pkvm-model check`: the whole job on the default configuration of every profile.

Per profile: every proof obligation (with the bounded reachability checks), the default
exploration (every property, the graph properties), conformance against the reference, and,
with --mutants, the mutant catalog. It calls the subcommands' own functions (no subprocess),
and ends in one summary: a line per profile and step, then each problem in one line.

Exit 0 when everything holds, 1 when anything is violated, disagrees, survives or is left
unsettled, 2 on bad input, 130 / 124 when Ctrl-C / --max-seconds stopped it (after the summary
of what was done).
"""

from __future__ import annotations

import json
import time


def register(subparsers, profile) -> None:
    from model.commands.common import add_run_arguments
    from model.profiles import PROFILES

    p = subparsers.add_parser(
        "check", help="everything, on every profile's default machine: proofs, exploration, "
                      "conformance (and mutants); one summary",
        description="The job CI runs: per profile, all proofs, the default exploration with "
                    "its graph properties, conformance, and with --mutants the mutant catalog.")
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help="only this profile (default: every profile)")
    p.add_argument("--mutants", action="store_true", help="also check the mutant catalog")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_run_arguments(p)
    p.set_defaults(run=run)


STEPS = ("prove", "explore", "conform", "mutants")


def _args(command: str, profile: str, settings=None, extra=()):
    """The arguments `pkvm-model COMMAND --profile PROFILE` would have (the configuration
    file's settings for that command included)."""
    from model.cli import build_parser
    from model.commands.config_file import _subparsers

    parser = build_parser(profile)
    args = parser.parse_args([command, "--profile", profile, *extra])
    if settings is not None and settings.data:
        # the command's own settings, not the machine: check runs the default machines
        settings.apply_to(command, _subparsers(parser)[command], args, explicit={"profile"},
                          machine=False)
    for name in ("json", "junit", "progress"):  # check reports for them all
        if hasattr(args, name):
            setattr(args, name, None if name != "json" else False)
    return args


def _prove(profile, settings, progress) -> dict:
    from model.commands.prove import counts, junit_suite, prove_data

    args = _args("prove", profile.name, settings)
    data = prove_data(args, progress)
    stop = data.pop("_stop", None)
    c = counts(data)
    failed = [r for r in data["bmc"] if not r["holds"]]
    ok = data["result"] == "proved" or (data["result"] == "unknown" and args.allow_unknown)
    text = f"{c['proved']}/{data.get('total', len(data['obligations']))} proved"
    problems = [f"{o['property']} / {o['transition']}: {o['status']}"
                for o in data["obligations"] if o["status"] != "proved"]
    problems += [f"{r['property']}: never reached by bounded model checking (vacuous?)"
                 if r["expected"] == "reachable" else
                 f"{r['property']}: reached by bounded model checking, which must not happen"
                 for r in failed]
    if data["bmc"]:
        text += f", {len(data['bmc']) - len(failed)}/{len(data['bmc'])} reachability checks"
    return {"ok": ok, "text": text, "problems": problems, "seconds": data["seconds"],
            "suite": junit_suite(data, args), "stop": stop}


def _explore(profile, settings, progress) -> dict:
    from model.commands.explore import explore_args, junit_suite, progress_callback
    from model.render import exploration_data

    args = _args("explore", profile.name, settings)
    result = explore_args(args, progress=progress_callback(progress))
    data = exploration_data(result)
    for extra in profile.witness_machines:
        other = exploration_data(explore_args(_args("explore", profile.name, settings, extra),
                                              progress=progress_callback(progress)))
        data["sometimes"] = {k: v or other["sometimes"].get(k, False)
                             for k, v in data["sometimes"].items()}
        data["violations"] += [{**v, "property": f"{v['property']} ({' '.join(extra)})"}
                               for v in other["violations"]]
        data["states"] += other["states"]
    missing = [k for k, v in data["sometimes"].items() if not v]
    graph = {k: v for k, v in data["graph"].items() if k != "checked"}
    problems = [f"{v['property']}: violated{' at ' + v['where'] if v.get('where') else ''} "
                f"({v['length']}-step trace: pkvm-model explore --profile {profile.name})"
                for v in data["violations"]]
    if result.complete:
        problems += [f"{m}: never witnessed" for m in missing]
    text = (f"{data['states']:,} states, depth {data['depth']}"
            f"{'' if result.complete else ' (incomplete)'}, {len(data['violations'])} violations, "
            f"{len(data['sometimes']) - len(missing)}/{len(data['sometimes'])} sometimes, "
            f"graph {'ok' if graph and not any(graph.values()) else 'not checked' if not graph else 'broken'}")
    return {"ok": not problems, "text": text, "problems": problems, "seconds": data["seconds"],
            "suite": junit_suite(result, {**data, "profile": profile.name}, args)}


def _conform(profile, settings, progress) -> dict:
    from model.commands.conform import conform, junit_suite

    args = _args("conform", profile.name, settings)
    data = conform(args, progress)
    ways = [w for w in ("exploration", "walks", "scenarios") if w in data]
    seconds = sum(data[w]["seconds"] for w in ways)
    parts = []
    if "exploration" in data:
        parts.append(f"{data['exploration']['edges_checked']:,} edges")
    if "walks" in data:
        parts.append(f"{data['walks']['calls']:,} walk calls")
    if "scenarios" in data:
        parts.append(f"{data['scenarios']['files']} scenarios")
    verdict = "agree" if not data["disagreements"] else f"{data['disagreements']} disagreements"
    problems = [f"{w}: {len(data[w]['disagreements'])} disagreement(s) (pkvm-model conform "
                f"--profile {profile.name})" for w in ways if data[w]["disagreements"]]
    return {"ok": not problems, "text": f"{verdict} ({', '.join(parts)})", "problems": problems,
            "seconds": seconds, "suite": junit_suite(data)}


def _mutants(profile, settings, progress) -> dict:
    from model.commands.mutants import hunt_all, junit_suite

    args = _args("mutants", profile.name, settings)
    start = time.perf_counter()
    names = list(profile.mutants)
    rows, stop = hunt_all(args, profile, names, progress)
    survivors = [r["mutant"] for r in rows if not r["killed"]]
    data = {"profile": profile.name, "machine": profile.config_text(profile.default_config()),
            "mutants": rows, "survivors": survivors, "seconds": time.perf_counter() - start}
    return {"ok": not survivors, "text": f"{len(rows) - len(survivors)}/{len(names)} killed",
            "problems": [f"mutant {m} survives" for m in survivors], "seconds": data["seconds"],
            "suite": junit_suite(data), "stop": stop}


RUNNERS = {"prove": _prove, "explore": _explore, "conform": _conform, "mutants": _mutants}


def applicable(profile, step: str) -> str | None:
    """Why a step does not apply to a profile (None when it does)."""
    if step == "prove" and profile.prover is None:
        return "no symbolic reading"
    if step == "conform" and profile.reference is None:
        return "no reference"
    if step == "mutants" and not profile.mutants:
        return "no mutants"
    return None


def run(args) -> int:
    from model.commands.common import Stopped, as_stopped, check_output_path, console, \
        make_progress, stop_code, versions
    from model.profiles import PROFILES, get

    check_output_path("--junit", getattr(args, "junit", None))
    names = [args.profile] if args.profile else list(PROFILES)
    steps = [s for s in STEPS if s != "mutants" or args.mutants]
    settings = getattr(args, "settings", None)
    start = time.perf_counter()
    rows: list[dict] = []
    stop = None
    progress = make_progress(args, "check")
    with progress:
        for name in names:
            profile = get(name)
            for step in steps:
                row = {"profile": name, "step": step}
                rows.append(row)
                why = applicable(profile, step)
                if why is not None:
                    row.update(ok=True, text=f"n/a ({why})", problems=[], seconds=0.0)
                    continue
                if stop is not None:
                    row.update(ok=None, text="not run", problems=[], seconds=0.0)
                    continue
                progress.label = f"check {name} {step}"
                try:
                    row.update(RUNNERS[step](profile, settings, progress))
                except (KeyboardInterrupt, Stopped) as err:
                    stop = as_stopped(err)
                    row.update(ok=None, text=f"stopped ({stop.reason})", problems=[],
                               seconds=0.0)
                    continue
                if row.get("stop") is not None:
                    stop = row["stop"]
                    row["text"] += f" (stopped: {stop.reason})"
                    row["ok"] = None if row["ok"] else row["ok"]
    seconds = time.perf_counter() - start
    problems = [f"{r['profile']} {r['step']}: {p}" for r in rows for p in r.get("problems", [])]
    failed = any(r["ok"] is False for r in rows)
    verdict = "FAIL" if failed else "STOPPED" if stop is not None else "PASS"
    if getattr(args, "junit", None):
        from model import junit
        junit.write(args.junit, [r["suite"] for r in rows if r.get("suite") is not None])
    if args.json:
        print(json.dumps({**versions(), "result": verdict.lower(), "seconds": round(seconds, 3),
                          "stopped": stop.reason if stop else None,
                          "steps": [{k: v for k, v in r.items() if k not in ("suite", "stop")}
                                    for r in rows],
                          "problems": problems}, indent=2))
    else:
        console().print(render(rows, problems, verdict, seconds, stop))
    if stop is not None:
        return stop_code(stop, found=failed)
    return 1 if failed else 0


def render(rows, problems, verdict, seconds, stop) -> str:
    """One line per profile and step, then each problem: readable in ten seconds."""
    mark = {True: "ok  ", False: "FAIL", None: "--  "}
    width = max(len(f"{r['profile']} {r['step']}") for r in rows) if rows else 0
    lines = [f"pkvm-model check: {verdict} in {seconds:.0f} s"
             + (f" ({len(problems)} problem(s))" if problems else "")
             + (f"; {stop.reason}" if stop is not None else "")]
    for r in rows:
        where = f"{r['profile']} {r['step']}".ljust(width)
        lines.append(f"  {mark[r['ok']]}  {where}  {r['text']}  [{r['seconds']:.0f} s]")
    if problems:
        lines.append("problems:")
        lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)
