"""`pkvm-model diagram`: the state machine of one page, or the whole reachable graph, drawn.

Formats: dot (graphviz text), svg and png (rendered by graphviz's `dot`), mermaid (text for
Markdown). With --mutant, states that violate a property under the seeded bug are red.
"""

from __future__ import annotations

from argparse import Namespace

from model.commands.explore import add_config_arguments, config_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diagram", help="draw the state machine of a page, or the reachable graph",
        description="Explore a small machine and draw it: --view page projects every state onto "
                    "the views every entity has of page 0 (the state machine of one page); "
                    "--view full draws every state (refused past a readable size).")
    add_config_arguments(parser, pages=1, gfns=1)
    parser.add_argument("--view", choices=("page", "full"), default="page")
    parser.add_argument("--format", choices=("dot", "svg", "png", "mermaid"), required=True)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="where to write the diagram ('-' for stdout, text formats only)")
    parser.add_argument("--max-depth", type=int, metavar="D",
                        help="draw only states within D steps of the initial state")
    parser.set_defaults(run=run)


def run(args) -> int:
    import sys

    from model.cli import UsageError
    from model.diagram import DiagramError, build, output

    config, transitions = config_from_args(args)
    mutated = args.mutant is not None
    if args.max_depth is not None and args.max_depth < 0:
        raise UsageError(f"--max-depth out of range: {args.max_depth}")
    if args.output == "-" and args.format in ("svg", "png") and sys.stdout.isatty():
        raise UsageError(f"refusing to write {args.format} to a terminal: give -o FILE")
    model_config = None
    if mutated:  # the model on the same machine, to tell what only the mutant reaches
        model_config, _ = config_from_args(Namespace(**{**vars(args), "mutant": None}))
    try:
        diagram = build(config, view=args.view, transitions=transitions if mutated else None,
                        model_config=model_config, max_depth=args.max_depth)
        data = output(diagram, args.format)
    except DiagramError as err:
        raise UsageError(str(err)) from None
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "wb") as f:
            f.write(data)
    return 0
