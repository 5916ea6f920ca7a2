"""The `pkvm-model` command line: parses arguments and hands each subcommand to its module.

Exit codes: 0 all good, 1 a property is violated (or a mutant survives), 2 bad input (one line
on stderr, never a traceback; `pkvm-model` alone prints the usage and exits 2), 130 stopped by
Ctrl-C and 124 stopped by --max-seconds (each after reporting what was covered), 141 when the
reader of stdout went away (`| head`), silently.

Settings come from the command line, then a configuration file (`--config FILE`, or
`pkvm-model.toml` in the working directory; see `model/commands/config_file.py`), then the defaults.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

SUBCOMMANDS = ("prove", "mutants", "explore", "diagram", "conform", "replay", "diff", "check",
               "export")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def version_text() -> str:
    from model.commands.common import versions

    v = versions()
    return f"pkvm-model {v['tool_version']} (z3 {v['z3_version']}, python {sys.version.split()[0]})"


def build_parser(profile_name: str = "pkvm") -> argparse.ArgumentParser:
    """The parser, with the machine options of the chosen profile."""
    from model.profiles import get

    try:
        profile = get(profile_name)
    except KeyError as err:
        raise UsageError(str(err).strip("'\"")) from None
    parser = _Parser(prog="pkvm-model",
                     description="Model checker for page-ownership protocols of protected and "
                                 "confidential KVM guests (profiles: pKVM, ...).",
                     epilog="exit codes: 0 all good, 1 something violated, 2 bad input, "
                            "124 --max-seconds reached, 130 interrupted")
    parser.add_argument("--version", action="store_true",
                        help="print the versions of pkvm-model, z3 and python, and exit")
    parser.add_argument("--config", metavar="FILE",
                        help="settings file (default: ./pkvm-model.toml when present; "
                             "see docs/ci.md)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"model.commands.{name}")
        module.register(sub, profile)
    return parser


def _stdout_gone() -> int:
    """The reader of stdout went away: stop quietly (and keep Python from complaining at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    from model.commands.common import catch_interrupts, chosen_profile

    argv = sys.argv[1:] if argv is None else list(argv)
    settings = None
    try:
        if "--version" in argv[:1]:
            print(version_text())
            return 0
        from model.commands.config_file import Settings

        settings = Settings.find(argv)
        parser = build_parser(chosen_profile(argv, settings.profile))
        args = parser.parse_args(argv)
        if args.version:
            print(version_text())
            return 0
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        settings.apply(parser, args, argv)
        args.settings = settings
        previous = catch_interrupts()
        try:
            return args.run(args)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    except UsageError as err:
        message = settings.explain(str(err)) if settings is not None else str(err)
        print(f"pkvm-model: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a command's own handling (while starting up)
        print("pkvm-model: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_gone()
    except OSError as err:  # a file named on the command line cannot be read or written
        where = f"{err.filename}: " if err.filename else ""
        print(f"pkvm-model: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m model.cli` runs this file as __main__: call the one `model.cli` the commands
    # import, so that its UsageError is the one caught.
    from model.cli import main as _main

    sys.exit(_main())
