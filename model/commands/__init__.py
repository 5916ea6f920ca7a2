"""One module per `pkvm-model` subcommand: each has `register(subparsers)` and `run(args) -> int`."""
