"""`bertserve`: the project's one command. Each subcommand runs an existing entry point with the rest
of the command line, so `bertserve export --help` is the exporter's own help.

Subcommands import their module only when chosen: `bertserve serve` loads neither torch nor the exporter.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROG = "bertserve"
# The folder holding app/: in an editable install, the source checkout with tools/ and tests/.
CHECKOUT = Path(__file__).resolve().parents[1]

SERVE_DESCRIPTION = """\
Serve every model folder of the model repository over HTTP (what `python -m app` runs).
It takes no options: every setting is a BERTSERVE_* environment variable (app/settings.py), e.g.
  BERTSERVE_MODEL_DIR=models BERTSERVE_PORT=8000 bertserve serve
SIGTERM turns the server unready, then it finishes accepted work and exits."""


@dataclass(frozen=True)
class Command:
    """A subcommand: one line for `bertserve --help`, and what runs it with the remaining arguments."""

    summary: str
    run: Callable[[list[str]], int]


def run_serve(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog=f"{PROG} serve",
        description=SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    from app.__main__ import main

    main()
    return 0


def run_export(argv: list[str]) -> int:
    from export.__main__ import main

    return main(argv, prog=f"{PROG} export")


def run_models(argv: list[str]) -> int:
    from export.repository import main

    return main(argv, prog=f"{PROG} models")


def run_bench(argv: list[str]) -> int:
    if not checkout_on_path("bench", CHECKOUT):
        return 2
    from tools.bench.__main__ import main

    return main(argv, prog=f"{PROG} bench")


def run_eval(argv: list[str]) -> int:
    if not checkout_on_path("eval", CHECKOUT):
        return 2
    from tools.evaluation.__main__ import main

    return main(argv, prog=f"{PROG} eval")


def checkout_on_path(command: str, checkout: Path) -> bool:
    """Put the source checkout first on sys.path for the tools that live there (not in the installed
    package: they drive real servers through tests/harness.py); False, with the reason, where it is absent."""
    if not ((checkout / "tools" / "__init__.py").is_file() and (checkout / "tests" / "harness.py").is_file()):
        print(
            f"{PROG} {command} needs the source tree: tools/ and tests/ beside app/ in {checkout} "
            "(clone the repository and install it with `pip install -e .`)",
            file=sys.stderr,
        )
        return False
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    return True


COMMANDS: dict[str, Command] = {
    "serve": Command("serve the model repository over HTTP", run_serve),
    "export": Command("export one checkpoint into a validated model folder", run_export),
    "models": Command("export the demo checkpoints into the model repository", run_models),
    "bench": Command("server throughput and latency (source tree)", run_bench),
    "eval": Command("score the demo heads through the server (source tree)", run_eval),
}


def package_version() -> str:
    try:
        return version(PROG)
    except PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog=PROG,
        description="Serve fine-tuned BERT heads (classify, pair, QA, NER) over HTTP on ONNX Runtime.",
        epilog=f"`{PROG} COMMAND --help` shows that command's options.",
    )
    cli.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = cli.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        # Listed here for --help and for the usage error; the command itself parses its arguments.
        commands.add_parser(name, help=command.summary, add_help=False)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]].run(args[1:])
    parser().parse_args(args)  # --help and --version exit 0; anything else is a usage error (exit 2)
    return 2


if __name__ == "__main__":
    sys.exit(main())
