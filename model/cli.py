"""The `pkvm-model` command line: parses arguments and hands each subcommand to its module.

Exit codes: 0 all good, 1 a property is violated (or a mutant survives), 2 bad input. Bad input
is reported in one line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("prove", "mutants", "explore", "diagram", "conform")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pkvm-model",
                     description="Model checker for the pKVM page-ownership protocol.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"model.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as err:
        print(f"pkvm-model: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file named on the command line cannot be read or written
        print(f"pkvm-model: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
