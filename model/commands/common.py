"""What every command shares: the profile, its extensions and mutant, and its machine options.

The profile is chosen before the parser is built (`--profile` is read first), so that each
command offers that profile's machine options; `load(args)` then gives the profile with the
extension files and the mutant applied, the unchanged profile, and the configuration.
"""

from __future__ import annotations

import argparse

from model.profiles import DEFAULT, PROFILES, get


def chosen_profile(argv: list[str]) -> str:
    """The value of --profile in argv (the default when absent)."""
    for i, word in enumerate(argv):
        if word == "--profile" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--profile="):
            return word.split("=", 1)[1]
    return DEFAULT


def add_profile_arguments(parser: argparse.ArgumentParser, profile, mutant: bool = True,
                          machine: bool = True) -> None:
    """--profile, --extension, --mutant and the profile's machine options."""
    parser.add_argument("--profile", default=DEFAULT, choices=list(PROFILES),
                        help=f"the protocol (default {DEFAULT}): "
                             + "; ".join(f"{k}: {v}" for k, v in PROFILES.items()))
    parser.add_argument("--extension", action="append", metavar="FILE", default=[],
                        help="apply a proposed change to the protocol (a Python file defining "
                             "extend(ext), see docs/extensions.md); repeatable")
    if mutant:
        parser.add_argument("--mutant", metavar="NAME",
                            help="run a seeded bug of the profile's mutant catalog instead")
    if machine:
        profile.add_arguments(parser.add_argument_group(f"machine ({profile.name})"))


def load(args, with_config: bool = True):
    """(profile with extensions and mutant, profile with extensions only, config or None)."""
    from model.cli import UsageError
    from model.extensions import ExtensionError, load as load_extension, mutate

    try:
        base = get(args.profile)
        for path in args.extension:
            base = load_extension(base, path)
        profile = mutate(base, args.mutant) if getattr(args, "mutant", None) else base
    except (KeyError, ExtensionError) as err:
        raise UsageError(str(err).strip("'\"")) from None
    if not with_config:
        return profile, base, None
    try:
        config = profile.config_from_args(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return profile, base, config

