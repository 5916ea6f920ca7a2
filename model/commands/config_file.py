"""Settings from a TOML file: `--config FILE`, else `pkvm-model.toml` in the working directory.

    profile = "pkvm"                 # the profile when --profile is not given
    extensions = ["proposal.py"]     # --extension, for every command
    skip = ["no_dead_end"]           # any option every command taking it shares
    junit = "reports/{command}.xml"  # {command} is the command's name

    [machine]                        # the machine options (--pages, ...) of the file's profile
    pages = 2
    [machine.toy]                    # only when the toy profile runs
    pages = 3

    [explore]                        # one table per command: its options, by long name
    max_states = 100000
    max_seconds = 600

Keys are the long options without the dashes (`max-states` or `max_states`); a table's keys win
over the top level's, and the command line wins over the file (a list on the command line
replaces the file's). Every mistake is one line naming the file and the key (exit 2): an
unknown key (the known ones listed), a value of the wrong type, a machine option the running
profile does not have, and a value the command then refuses (`--pages 0 ... (set in
pkvm-model.toml as machine.pages)`).
"""

from __future__ import annotations

import argparse
import os
import tomllib

DEFAULT_FILE = "pkvm-model.toml"
DEFAULT_PROFILE = "pkvm"
_UNSET = object()
_FIXED = {"help", "version", "config", "command", "profile"}  # not settable per command


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def _subparsers(parser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(subparser) -> dict:
    """dest -> action, for the options a configuration file may set."""
    return {a.dest: a for a in subparser._actions
            if a.option_strings and a.dest not in _FIXED and a.dest != argparse.SUPPRESS}


class Settings:
    def __init__(self, path: str | None = None, data: dict | None = None):
        self.path = path
        self.data = data or {}
        self.origin: dict[str, str] = {}  # dest -> "table.key", for the values applied
        from model.cli import UsageError

        profile = self.data.get("profile")
        if profile is not None and not isinstance(profile, str):
            raise UsageError(f"{path}: profile: expected a string, got {profile!r}")
        self.profile = profile

    @classmethod
    def find(cls, argv: list[str]) -> "Settings":
        from model.cli import UsageError

        path = _flag_value(argv, "--config")
        if path is None:
            if not os.path.isfile(DEFAULT_FILE):
                return cls()
            path = DEFAULT_FILE
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise UsageError(f"--config {path}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"--config {path}: is a directory") from None
        except tomllib.TOMLDecodeError as err:
            raise UsageError(f"{path}: not valid TOML: {err}") from None
        return cls(path, data)

    # -- reading -----------------------------------------------------------------------------
    def _error(self, key: str, message: str):
        from model.cli import UsageError
        return UsageError(f"{self.path}: {key}: {message}")

    def check_keys(self, parser) -> None:
        """Every key of the file must mean something to some command."""
        commands = _subparsers(parser)
        shared = set()
        for sub in commands.values():
            shared |= set(_options(sub))
        top = {"profile", "extensions", "machine", *commands}
        for key, value in self.data.items():
            dest = _dest(key)
            if key in commands or key == "machine":
                if not isinstance(value, dict):
                    raise self._error(key, "expected a table ([" + key + "])")
                if key in commands:
                    known = set(_options(commands[key])) | {"extensions"}
                    for sub_key in value:
                        if _dest(sub_key) not in known:
                            raise self._error(f"{key}.{sub_key}",
                                              "unknown key; one of: " + ", ".join(
                                                  sorted(k.replace("_", "-") for k in known)))
            elif key not in top and dest not in shared:
                raise self._error(key, "unknown key; one of: " + ", ".join(
                    sorted({*top, *(k.replace("_", "-") for k in shared)})))

    def values_for(self, command: str, subparser, profile: str) -> dict:
        """dest -> (value, key) the file sets for one command under one profile."""
        options = _options(subparser)
        out: dict = {}

        def take(key: str, value, strict: bool):
            dest = _dest(key.split(".")[-1])
            action = options.get(dest)
            if action is None:
                if strict:
                    raise self._error(key, f"not an option of `pkvm-model {command}` with the "
                                           f"{profile} profile")
                return
            out[dest] = (self._typed(key, action, value), key)

        for key, value in self.data.items():
            if key in ("profile", "machine") or isinstance(value, dict):
                continue
            take(key, value, strict=False)  # shared: applies to the commands that take it
        machine = self.data.get("machine", {})
        if any(a.container.title and a.container.title.startswith("machine")
               for a in options.values() if hasattr(a, "container")):
            for key, value in machine.items():
                if isinstance(value, dict):
                    if key == profile:
                        for k, v in value.items():
                            take(f"machine.{key}.{k}", v, strict=True)
                    continue
                if profile == (self.profile or DEFAULT_PROFILE):  # [machine]: the file's profile
                    take(f"machine.{key}", value, strict=True)
        for key, value in self.data.get(command, {}).items():
            take(f"{command}.{key}", value, strict=True)
        return out

    def _typed(self, key: str, action, value):
        """The value checked against what the option takes."""
        kind = action.type
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                               argparse.BooleanOptionalAction)):
            if not isinstance(value, bool):
                raise self._error(key, f"expected true or false, got {value!r}")
            return value if not isinstance(action, argparse._StoreFalseAction) else not value
        if isinstance(action, argparse._AppendAction):
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in items):
                raise self._error(key, f"expected a list of strings, got {value!r}")
            return list(items)
        if kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise self._error(key, f"expected an integer, got {value!r}")
        elif kind is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise self._error(key, f"expected a number, got {value!r}")
            value = float(value)
        elif not isinstance(value, str):
            raise self._error(key, f"expected a string, got {value!r}")
        if action.choices is not None and value not in action.choices:
            raise self._error(key, f"{value!r} is not one of: "
                                   + ", ".join(map(str, action.choices)))
        return value

    # -- applying ----------------------------------------------------------------------------
    def apply(self, parser, args, argv: list[str]) -> None:
        """Set on `args` every value the file gives and the command line does not."""
        if not self.data:
            return
        self.check_keys(parser)
        sub = _subparsers(parser)[args.command]
        explicit = _explicit(parser, sub, argv)
        self.apply_to(args.command, sub, args, explicit)

    def apply_to(self, command: str, subparser, args, explicit=frozenset(),
                 machine: bool = True) -> None:
        if self.profile and "profile" not in explicit and hasattr(args, "profile"):
            args.profile = self.profile  # the parser was built for it (`chosen_profile`)
            self.origin["profile"] = "profile"
        profile = getattr(args, "profile", None) or "pkvm"
        for dest, (value, key) in self.values_for(command, subparser, profile).items():
            if dest in explicit or (not machine and key.startswith("machine.")):
                continue
            if dest == "junit" and isinstance(value, str):
                value = value.replace("{command}", command).replace("{profile}", profile)
            setattr(args, dest, value)
            self.origin[dest] = key

    def explain(self, message: str) -> str:
        """A refusal of a value the file set names the key it came from."""
        for dest, key in self.origin.items():
            if f"--{dest.replace('_', '-')}" in message:
                return f"{message} (set in {self.path} as {key})"
        return message


def _dest(key: str) -> str:
    return "extension" if key == "extensions" else key.replace("-", "_")


def _explicit(parser, sub, argv: list[str]) -> set[str]:
    """The dests the command line itself gives (parsed again with every default unset)."""
    saved = [(a, a.default) for a in sub._actions]
    try:
        for a, _ in saved:
            a.default = _UNSET
        again = parser.parse_args(argv)
    finally:
        for a, default in saved:
            a.default = default
    return {k for k, v in vars(again).items() if v is not _UNSET}
