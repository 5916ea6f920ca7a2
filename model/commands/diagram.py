"""`pkvm-model diagram`: a projected state machine (pKVM: of one page), or the whole reachable
graph, drawn.

Formats: dot (graphviz text), svg and png (rendered by graphviz's `dot`), mermaid (text for
Markdown). With --mutant or --extension, states that violate a property under the change are
red, and edges the unchanged protocol never takes are red and dashed.
"""

from __future__ import annotations

from model.commands.common import add_profile_arguments, load


FORMATS = ("dot", "svg", "png", "mermaid")
EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".mmd": "mermaid",
              ".mermaid": "mermaid"}


def register(subparsers, profile) -> None:
    parser = subparsers.add_parser(
        "diagram", help="draw a projected state machine (pKVM: one page), or the reachable graph",
        description="Explore a small machine and draw it: a projected view (pKVM's page view: "
                    "every state onto the views every entity has of page 0) or --view full, "
                    "every state (refused past a readable size).")
    add_profile_arguments(parser, profile)
    parser.set_defaults(**profile.presenter.diagram_defaults)
    views = (*profile.presenter.view_names, "full")
    parser.add_argument("--view", choices=views, default=views[0])
    parser.add_argument("--format", choices=FORMATS,
                        help="default: from the extension of -o (.dot/.gv, .svg, .png, .mmd)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="where to write the diagram ('-' for stdout; svg and png only when "
                             "stdout is a pipe or a file, not a terminal)")
    parser.add_argument("--max-depth", type=int, metavar="D",
                        help="draw only states within D steps of the initial state")
    parser.set_defaults(run=run)


def check_format(args) -> None:
    """The output is writable and its extension, if it names a format, is --format's (the
    format defaults to it)."""
    import os

    from model.cli import UsageError
    from model.commands.common import check_output_path

    check_output_path("-o", args.output, allow_stdout=True)
    ext = os.path.splitext(args.output)[1].lower() if args.output != "-" else ""
    implied = EXTENSIONS.get(ext)
    if args.format is None:
        if implied is None:
            raise UsageError(f"-o {args.output}: give --format (one of {', '.join(FORMATS)}); "
                             "the extension names none")
        args.format = implied
    elif implied is not None and implied != args.format:
        raise UsageError(f"-o {args.output}: the extension says {implied} but --format is "
                         f"{args.format}")


def run(args) -> int:
    import sys

    from model.cli import UsageError
    from model.diagram import DiagramError, build, output

    check_format(args)
    profile, _base, config = load(args)
    changed = args.mutant is not None or bool(args.extension)
    if args.max_depth is not None and args.max_depth < 0:
        raise UsageError(f"--max-depth out of range: {args.max_depth}")
    if args.output == "-" and args.format in ("svg", "png") and sys.stdout.isatty():
        raise UsageError(f"refusing to write {args.format} to a terminal: give -o FILE, or "
                         "pipe stdout")
    model = model_config = None
    if changed:  # the unchanged protocol on the same machine, to tell what only the change reaches
        from model.profiles import get

        model = get(args.profile)
        model_config = model.config_from_args(args)
    try:
        diagram = build(profile, config, args.view, model=model, model_config=model_config,
                        max_depth=args.max_depth)
        data = output(diagram, args.format)
    except DiagramError as err:
        raise UsageError(str(err)) from None
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "wb") as f:
            f.write(data)
    return 0
