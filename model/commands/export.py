"""`pkvm-model export --format promela`: the protocol of one machine as a model for another
checker (SPIN), from the code-generation reading (`model/codegen/`).

The export runs the native search of the machine first (every path and value a reachable
state takes must be known to write the model): its time is mostly the tracing of the calls,
which `--trace-cache` keeps between runs of the same machine and source.
A property violated in a reachable state is reported instead (exit 1): the explorer gives its
trace.
"""

from __future__ import annotations

import sys

from model.commands.common import add_profile_arguments, check_output_path, load

FORMATS = ("promela",)


def register(subparsers, profile) -> None:
    parser = subparsers.add_parser(
        "export", help="write the machine's protocol as a Promela model (for SPIN)",
        description="Trace every call of one machine into straight-line code and write it as "
                    "a Promela model: one d_step per call, the always state properties as "
                    "assertions. Check it with `spin -a FILE && gcc -O2 -DNOREDUCE -DSAFETY "
                    "-o pan pan.c && ./pan`.")
    add_profile_arguments(parser, profile)
    parser.add_argument("--format", choices=FORMATS, default="promela")
    parser.add_argument("-o", "--output", default="-", metavar="FILE",
                        help="where to write the model (default '-': stdout)")
    parser.add_argument("--max-seconds", type=float, metavar="N",
                        help="give up (exit 124) when the native search takes longer")
    parser.add_argument("--trace-cache", metavar="DIR",
                        help="read the traced calls from DIR and write them back: a second "
                             "export of the same machine and source traces nothing")
    parser.set_defaults(run=run)


def check_cache_folder(folder: str) -> None:
    """The cache folder made if missing; refused if it cannot be written."""
    import os

    from model.cli import UsageError

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--trace-cache {folder}: {err.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--trace-cache {folder}: not writable")


def run(args) -> int:
    from model.cli import UsageError
    from model.codegen.promela import ExportError, export

    check_output_path("-o", args.output, allow_stdout=True)
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise UsageError(f"--max-seconds must be positive, got {args.max_seconds}")
    if args.trace_cache is not None:
        check_cache_folder(args.trace_cache)
    profile, _base, config = load(args)
    try:
        text, facts = export(profile, config, max_seconds=args.max_seconds,
                             cache=args.trace_cache)
    except ExportError as err:
        print(f"pkvm-model: {err}", file=sys.stderr)
        return 124 if "did not finish" in str(err) else 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"{args.output}: {facts['states']:,} states, {facts['cells']} cells, "
              f"{facts['shapes']} shape(s), {facts['calls']} calls", file=sys.stderr)
    return 0
