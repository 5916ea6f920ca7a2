"""What every command shares: the profile, its extensions and mutant, and its machine options.

The profile is chosen before the parser is built (`--profile` is read first), so that each
command offers that profile's machine options; `load(args)` then gives the profile with the
extension files and the mutant applied, the unchanged profile, and the configuration.
"""

from __future__ import annotations

import argparse

from model.profiles import DEFAULT, PROFILES, get


def chosen_profile(argv: list[str], fallback: str | None = None) -> str:
    """The value of --profile in argv (else `fallback`, the configuration file's, else the
    default)."""
    for i, word in enumerate(argv):
        if word == "--profile" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--profile="):
            return word.split("=", 1)[1]
    return fallback or DEFAULT


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
    check_size(profile, args)
    try:
        config = profile.config_from_args(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_calls(profile, config, args)
    return profile, base, config



# -- what every long command shares: limits, reports, stops ----------------------------------------

# Machine sizes the commands accept: every integer machine option of a profile (pages, VMs,
# frame numbers, ...) at most MAX_MACHINE_SIZE, and at most MAX_CALLS_PER_STATE calls tried in
# every state. The reachable graph grows exponentially in each size: pKVM's default machine (2
# pages, 2 VMs, 2 gfns) is already 29,296 states (95,974 unreduced); past these limits no
# exploration ends in a working day, and some sizes take minutes just to enumerate the calls.
# A larger machine is the prover's business: it covers every size at once.
MAX_MACHINE_SIZE = 8  # --gfns 16 alone takes 3 GB before the first state (the symmetry group)
MAX_CALLS_PER_STATE = 5_000  # pKVM default: 136


class Stopped(BaseException):
    """Ctrl-C or --max-seconds: the command stops, reports what it covered, exits 130 / 124.

    A BaseException, so that nothing on the way (the conformance explorer reports any Exception
    as a crash of the model) mistakes it for a failure of the code it interrupts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "interrupted" or "time limit"

    @property
    def code(self) -> int:
        return 130 if self.reason == "interrupted" else 124


_INTERRUPTED = [False]


def _on_sigint(signum, frame):
    # Raised where the program is; if that is somewhere that swallows exceptions (a gc callback
    # of hypothesis, say), the flag makes the next Progress.tick() stop the run instead.
    _INTERRUPTED[0] = True
    raise KeyboardInterrupt


def interrupted() -> bool:
    return _INTERRUPTED[0]


def catch_interrupts():
    """Install the Ctrl-C handler (main thread only); returns the previous one."""
    import signal
    import threading

    import sys

    _INTERRUPTED[0] = False
    if threading.current_thread() is not threading.main_thread():
        return None
    if not getattr(sys.unraisablehook, "keeps_interrupts", False):
        report = sys.unraisablehook

        def hook(unraisable):  # a Ctrl-C that landed where it cannot be raised: the flag has it
            if not isinstance(unraisable.exc_value, KeyboardInterrupt):
                report(unraisable)
        hook.keeps_interrupts = True
        sys.unraisablehook = hook
    return signal.signal(signal.SIGINT, _on_sigint)


def as_stopped(error: BaseException) -> Stopped:
    """The stop a Ctrl-C or a Stopped is: every command reports the two alike."""
    return error if isinstance(error, Stopped) else Stopped("interrupted")


def stop_code(stop: Stopped, found: bool) -> int:
    """Exit code of a stopped run: 130 on Ctrl-C; on --max-seconds 1 if something was already
    found, else 124 (like timeout(1): the run neither passed nor failed)."""
    if stop.reason == "interrupted":
        return 130
    return 1 if found else 124


def add_run_arguments(parser: argparse.ArgumentParser, junit: bool = True,
                      max_seconds: bool = True) -> None:
    """--junit, --quiet, --progress and --max-seconds (every long command)."""
    if junit:
        parser.add_argument("--junit", metavar="FILE",
                            help="also write the results as JUnit XML (for CI test reports)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress line (stderr)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress line on stderr (default: when stderr is a "
                             "terminal, without --json or --quiet; --progress forces it, one "
                             "line every few seconds in a log)")
    if max_seconds:
        parser.add_argument("--max-seconds", type=float, metavar="N",
                            help="stop after N seconds, report what was covered (exit 124, or 1 "
                                 "if something was already found)")


def _machine_actions(profile) -> list:
    """The argparse actions of the profile's integer machine options."""
    scratch = argparse.ArgumentParser(add_help=False)
    profile.add_arguments(scratch)
    return [a for a in scratch._actions if a.option_strings and a.type is int]


def machine_options(profile) -> dict:
    """dest -> option string of the profile's integer machine options."""
    return {a.dest: a.option_strings[-1] for a in _machine_actions(profile)}


def check_size(profile, args) -> None:
    """Refuse machine sizes past MAX_MACHINE_SIZE before anything is built (a huge machine
    would spend minutes enumerating calls before the first progress line)."""
    from model.cli import UsageError

    for dest, option in machine_options(profile).items():
        value = getattr(args, dest, None)
        if isinstance(value, int) and value > MAX_MACHINE_SIZE:
            raise UsageError(f"{option} {value} is past the limit of {MAX_MACHINE_SIZE} (the "
                             f"reachable states grow exponentially with it; for every size at "
                             f"once, use `pkvm-model prove`)")


def check_calls(profile, config, args=None) -> None:
    """Refuse a machine with too many calls per state, or on which some transition can never
    be called (an argument with nothing to try: its checks would pass vacuously)."""
    from math import prod

    from model.cli import UsageError

    empty = {}
    for t in profile.transitions.values():
        for kind in t.params:
            if len(profile.domain(config, kind)) == 0:
                empty.setdefault(kind, []).append(t.name)
    if empty:
        kind, names = next(iter(empty.items()))
        zero = [f"{a.option_strings[-1]} 0" for a in _machine_actions(profile)
                if getattr(args, a.dest, None) == 0 and a.default != 0]  # the user's zeros
        raise UsageError(f"{', '.join(zero) or 'this machine'} leaves no {kind} to call "
                         f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''} with: "
                         f"{sum(map(len, empty.values()))} of the {len(profile.transitions)} "
                         "transitions could never run, and their properties would hold "
                         "vacuously")
    n = sum(prod(len(profile.domain(config, kind)) for kind in t.params)
            for t in profile.transitions.values())
    if n > MAX_CALLS_PER_STATE:
        raise UsageError(f"this machine has {n:,} calls to try in every state, past the limit "
                         f"of {MAX_CALLS_PER_STATE:,}: make it smaller")


def check_output_path(option: str, path: str | None, allow_stdout: bool = False) -> None:
    """Refuse an output path that cannot be written, before the run rather than after it."""
    import os

    from model.cli import UsageError

    if path is None or (allow_stdout and path == "-"):
        return
    if path == "":
        raise UsageError(f"{option}: empty file name")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


def progress_enabled(args) -> bool:
    import sys

    wanted = getattr(args, "progress", None)
    if wanted is not None:
        return wanted
    if getattr(args, "json", False) or getattr(args, "quiet", False):
        return False
    return sys.stderr.isatty()


def make_progress(args, label: str):
    """The stderr progress line the arguments ask for (a no-op one when off), with the
    --max-seconds deadline."""
    from model.commands.progress import Progress

    return Progress(label, enabled=progress_enabled(args),
                    max_seconds=getattr(args, "max_seconds", None))


def versions() -> dict:
    """The tool and solver versions, for every JSON report."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tool = version("pkvm-model")
    except PackageNotFoundError:
        tool = "unknown"
    try:
        import z3
        z3_version = z3.get_version_string()
    except ImportError:
        z3_version = None
    return {"tool": "pkvm-model", "tool_version": tool, "z3_version": z3_version}


def report_header(profile, args, machine: str | None) -> dict:
    """What every JSON report starts with: versions, profile, extensions, mutant, machine."""
    return {**versions(), "profile": profile.name, "extensions": list(profile.extensions),
            "extension_files": list(getattr(args, "extension", []) or []),
            "mutant": getattr(args, "mutant", None), "machine": machine}


def console(stderr: bool = False):
    """A rich console: on a terminal its width; elsewhere (a CI log, a file) each renderable as
    wide as its content needs, so no table cuts a name or a number, no panel border runs to the
    width limit, and no colour codes."""
    out = _Console(stderr=stderr)
    if not out.is_terminal:
        out = _Console(stderr=stderr, width=WIDE, no_color=True, highlight=False, fit=True)
    return out


WIDE = 10_000  # the widest line a report may need off a terminal


def _console_class():
    from rich.console import Console
    from rich.measure import Measurement

    class PipeConsole(Console):
        def __init__(self, *args, fit: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            self.fit = fit

        def print(self, *objects, **kwargs):
            """With `fit`, each object at the width its content needs (a panel or a table
            title would otherwise span the whole width limit)."""
            if not self.fit or "width" in kwargs:
                return super().print(*objects, **kwargs)
            for obj in objects:
                need = Measurement.get(self, self.options, obj).maximum
                super().print(obj, width=max(1, min(need, WIDE)), **kwargs)

        def on_broken_pipe(self) -> None:  # rich would exit 1: let `main` exit 141, quietly
            raise BrokenPipeError

    return PipeConsole


def _Console(**kwargs):
    return _console_class()(**kwargs)


def plain_text(*renderables) -> str:
    """Renderables as plain text (for JUnit failures): no colour, each as wide as it needs."""
    import io

    buf = io.StringIO()
    out = _Console(file=buf, width=WIDE, no_color=True, color_system=None, highlight=False,
                   fit=True)
    for r in renderables:
        out.print(r)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())
