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


def build_parser(profile_name: str = "pkvm") -> argparse.ArgumentParser:
    """The parser, with the machine options of the chosen profile."""
    from model.profiles import get

    try:
        profile = get(profile_name)
    except KeyError as err:
        raise UsageError(str(err).strip("'\"")) from None
    parser = _Parser(prog="pkvm-model",
                     description="Model checker for the page-ownership protocols of KVM "
                                 "guests, one profile per protocol (--profile).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"model.commands.{name}")
        module.register(sub, profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    from model.commands.common import chosen_profile

    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(chosen_profile(argv)).parse_args(argv)
        return args.run(args)
    except UsageError as err:
        print(f"pkvm-model: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file named on the command line cannot be read or written
        print(f"pkvm-model: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
