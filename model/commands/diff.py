"""`pkvm-model diff --extension FILE`: what a proposed change does, for a design review.

Against the unchanged profile, on the same small machine (the diagram's): the transitions and
properties the change touches; the proof obligations that flip (each changed or added
transition against every property, each changed or added property against every transition,
on both sides, with the refutation fallback); the properties newly violated, each with its
shortest trace; and the states and edges of the profile's projected view (pKVM: one page's
state machine) that appear or vanish, written as a diagram with `-o` (green: only the change
has it; grey, dashed: only the current protocol). Exit 0 when the change breaks nothing, 1 when
it flips an obligation to violated or newly violates a property, 2 on bad input.
"""

from __future__ import annotations

import json

from model.commands.common import add_profile_arguments, load


def register(subparsers, profile) -> None:
    parser = subparsers.add_parser(
        "diff", help="what a proposed change (--extension) does to proofs, properties and the "
                     "state machine",
        description="Compares the profile with its extensions (and mutant) against the profile "
                    "as it is: obligations that flip, properties newly violated with traces, "
                    "states and edges of the projected view that appear or vanish.")
    add_profile_arguments(parser, profile)
    parser.set_defaults(**profile.presenter.diagram_defaults)
    views = profile.presenter.view_names
    parser.add_argument("--view", choices=views, default=views[0] if views else None)
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the view's diagram of the change (.dot, .svg, .png, .mmd)")
    parser.add_argument("--no-prove", action="store_true", help="skip the proof obligations")
    parser.add_argument("--budget", type=int, default=None, metavar="MILLIONS",
                        help="z3 resource limit per query (default: prove's)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(run=run)


def changes(base, changed) -> dict:
    """The transitions and properties the change adds, removes or redefines."""
    from model.prover import proved_properties

    def compare(old: dict, new: dict) -> dict:
        return {"added": [n for n in new if n not in old],
                "removed": [n for n in old if n not in new],
                "changed": [n for n in new if n in old and new[n] is not old[n]]}

    def props(p):
        return {q.name: q for q in (proved_properties(p) if p.prover else p.always)}

    return {"transitions": compare(base.transitions, changed.transitions),
            "properties": compare(props(base), props(changed))}


def flips(base, changed, what: dict, budget: int, jobs: int) -> list[dict]:
    """Obligations of the touched pairs, proved on both sides; those whose status differs."""
    from model.commands.refute import refute_all
    from model.prover import INIT, discharge_all, obligations

    t_touched = set(what["transitions"]["added"] + what["transitions"]["changed"])
    p_touched = set(what["properties"]["added"] + what["properties"]["changed"])

    def touched(ob):
        return ob.transition in t_touched or ob.property in p_touched

    def statuses(profile):
        obs = [o for o in obligations(profile) if touched(o)]
        config = profile.adjust(profile.default_config())
        results = discharge_all(profile, obs, discipline=profile.disciplined(config),
                                budget=budget, jobs=jobs)
        return {(r.property, r.transition): r for r in refute_all(profile, results)}

    before, after = statuses(base), statuses(changed)
    out = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[1] != INIT, k[1], k[0])):
        old, new = before.get(key), after.get(key)
        if old is None or new is None or old.status != new.status:
            out.append({"property": key[0], "transition": key[1],
                        "before": old.status if old else "absent",
                        "after": new.status if new else "absent",
                        "counterexample": new.counterexample if new else None})
    return out


def run(args) -> int:
    from model.cli import UsageError
    from model.commands.common import console as make_console
    from model.commands.diagram import check_format
    from model.diagram import DiagramError, output, view_diff
    from model.explorer import explore
    from model.profiles import get
    from model.prover import BUDGET
    from model.render import render_violations, trace_data

    if not args.extension and not args.mutant:
        raise UsageError("diff needs a change to compare: --extension FILE (or --mutant NAME)")
    if args.output is not None:
        args.format = None
        check_format(args)
    changed, _with_extensions, config = load(args)
    base = get(args.profile)
    base_config = base.config_from_args(args)
    what = changes(base, changed)
    budget = (args.budget or BUDGET // 10**6) * 10**6
    if args.budget is not None and args.budget <= 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    flipped = [] if args.no_prove or base.prover is None else flips(base, changed, what, budget, 2)
    runs = {}
    for side, profile, machine in (("before", base, base_config), ("after", changed, config)):
        runs[side] = explore(profile, machine, symmetry=False, stop_on_violation=False)
    old = {v.property for v in runs["before"].violations}
    newly = [v for v in runs["after"].violations if v.property not in old]
    fixed = sorted(old - {v.property for v in runs["after"].violations})
    diagram = view_diff(runs["before"], runs["after"], args.view) if args.view else None
    if diagram is not None and args.output:
        try:
            data = output(diagram, args.format)
        except DiagramError as err:
            raise UsageError(str(err)) from None
        with open(args.output, "wb") as f:
            f.write(data)
    broken = [f for f in flipped if f["after"] == "violated"]
    report = {
        "profile": base.name, "extensions": list(changed.extensions),
        "machine": changed.presenter.machine_text(config), "changes": what,
        "obligations": {"compared": not (args.no_prove or base.prover is None),
                        "flipped": flipped},
        "explore": {"before": {"states": len(runs["before"].states),
                               "violated": sorted(old)},
                    "after": {"states": len(runs["after"].states),
                              "violated": sorted(v.property for v in runs["after"].violations)},
                    "newly_violated": [trace_data(changed, config, v.trace, v) for v in newly],
                    "no_longer_violated": fixed},
        "view": None if diagram is None else {
            "name": args.view, "states_added": len(diagram.new_nodes),
            "states_removed": len(diagram.gone_nodes),
            "edges_added": sorted(f"{n}" for _u, _v, n in diagram.new_edges),
            "edges_removed": sorted(f"{n}" for _u, _v, n in diagram.gone_edges),
            "written": args.output},
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        console = make_console()
        console.print(render_diff(report))
        for renderable in render_violations(_only(runs["after"], newly)):
            console.print(renderable)
    return 1 if broken or newly else 0


def _only(result, violations):
    """The exploration with only the given violations (to render those alone)."""
    from dataclasses import replace

    return replace(result, violations=violations)


def render_diff(report: dict) -> str:
    lines = [f"{report['profile']} with {', '.join(report['extensions'])} "
             f"({report['machine']}):"]
    for kind in ("transitions", "properties"):
        c = report["changes"][kind]
        words = [f"{k} {', '.join(c[k])}" for k in ("added", "changed", "removed") if c[k]]
        lines.append(f"  {kind}: {'; '.join(words) or 'unchanged'}")
    ob = report["obligations"]
    if not ob["compared"]:
        lines.append("  obligations: not compared (--no-prove)")
    elif not ob["flipped"]:
        lines.append("  obligations: none flips")
    for f in ob["flipped"]:
        how = ""
        if f["after"] == "violated" and f["counterexample"]:
            how = f" (counterexample: {f['counterexample'].get('call')}"
            how += ", reachable)" if f["counterexample"].get("reachable") else ")"
        lines.append(f"  obligation {f['property']} / {f['transition']}: {f['before']} -> "
                     f"{f['after']}{how}")
    e = report["explore"]
    newly = [v["property"] for v in e["newly_violated"]]
    lines.append(f"  exploration: {e['before']['states']:,} -> {e['after']['states']:,} states; "
                 f"newly violated: {', '.join(newly) or 'none'}"
                 + (f"; no longer violated: {', '.join(e['no_longer_violated'])}"
                    if e["no_longer_violated"] else ""))
    v = report["view"]
    if v is not None:
        lines.append(f"  {v['name']} view: {v['states_added']} state(s) appear, "
                     f"{v['states_removed']} vanish; edges appear: "
                     f"{', '.join(sorted(set(v['edges_added']))) or 'none'}; vanish: "
                     f"{', '.join(sorted(set(v['edges_removed']))) or 'none'}"
                     + (f" (drawn in {v['written']})" if v["written"] else ""))
    return "\n".join(lines)
