"""The ``headfit`` command line: a folder of thin commands, one file each (as hatch does).

Command modules are imported only when their command runs, and none imports torch at module level,
so ``headfit explain`` starts in a fraction of a second.
"""

from __future__ import annotations

import importlib
import sys

import click

from headfit.cli.app import COMMAND_LINE, answer_failures

# command name -> module in headfit.cli that defines a click command called ``command``
COMMANDS = {
    "explain": "explain",
    "check": "check",
    "sizes": "sizes",
    "adapt": "adapt",
    "run": "run",
    "demo": "demo",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "data": "data",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"headfit.cli.{COMMANDS[cmd_name]}")
        return module.command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        ctx.meta[COMMAND_LINE] = list(args)  # for error messages, before the command parses them
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        """Run the command; any failure becomes one paragraph and an exit code, never a traceback."""
        with answer_failures(ctx):
            return super().invoke(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="headfit")
def cli() -> None:
    """headfit: diagnose PyTorch shape errors, pre-flight models, re-head them for K classes."""


def main(argv: list[str] | None = None) -> None:
    with answer_failures():
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="headfit")
