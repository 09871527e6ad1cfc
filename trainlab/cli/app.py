"""The `trainlab` command itself: the typer app, the arguments its verbs share, and `main`, which turns a user's mistake
or an accident into one message and an exit code, no traceback. The verbs: experiments.py and shipping.py."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from trainlab.cli_support import Group, notes_as_lines
from trainlab.errors import TrainlabError, UsageError
from trainlab.tools.text_cli import app as text_app
from trainlab.utils.ranks import env_rank
from trainlab.utils.signals import Interrupted, exit_code, stop_on_signals

app = typer.Typer(
    cls=Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="trainlab: train, test and report deep-learning experiments from one config.",
    epilog="Start with `trainlab run` (the embedded digits, offline) or `trainlab run workshop/task1 epochs=1`; "
    "`trainlab COMMAND --help` for a command's arguments.",
)  # fmt: skip
app.add_typer(text_app, name="text")
console = Console()
errors = Console(stderr=True)

LISTABLE = ("models", "presets", "datasets", "optimizers", "schedulers", "losses", "augment")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("trainlab")
        except PackageNotFoundError:  # run from a source tree that was never installed
            ours = "(not installed)"
        console.print(f"trainlab {ours} (torch {version('torch')})", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _trainlab(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version, help="print the versions of trainlab and torch")] = False,
) -> None:
    ctx.with_resource(notes_as_lines(errors))


def given_arguments(config: str | None, overrides: list[str] | None) -> list[str]:
    """CONFIG and KEY=VALUE as typed: `trainlab run epochs=1` puts an override where CONFIG stands."""
    return [*([config] if config is not None else []), *(overrides or [])]


def split_arguments(arguments: list[str]) -> tuple[str | None, list[str]]:
    """`[CONFIG] [key=value ...]`: the first argument without '=' is the config."""
    config = None
    overrides = []
    for arg in arguments:
        if "=" in arg or config is not None:
            overrides.append(arg)
        else:
            config = arg
    return config, overrides


# Where a newcomer finds the keys that KEY=VALUE may set: the end of the help of every command that takes a config.
CONFIG_KEYS = (
    "Config keys: README.md, section Configs (top-level fields, the data/model/optimizer/scheduler/loss sections). "
    "Names and their arguments: trainlab list models|presets|datasets|optimizers|schedulers|losses|augment."
)
ConfigArgument = Annotated[Optional[str], typer.Argument(
    metavar="CONFIG", show_default=False,
    help="a preset (trainlab list presets), a YAML file or a run folder; none: the embedded digits experiment",
)]  # fmt: skip
OverrideArguments = Annotated[Optional[list[str]], typer.Argument(
    metavar="KEY=VALUE", show_default=False, help="config fields to change, e.g. optimizer.lr=3e-4 epochs=5",
)]  # fmt: skip


def main() -> None:
    stop_on_signals()  # SIGTERM and SIGHUP stop a run like Ctrl-C: recorded as interrupted, resumable
    try:
        app(prog_name="trainlab")  # typer answers its own usage errors (exit 2) and --help
    except Interrupted as e:
        if not e.reported and env_rank() == 0:  # every process of a data-parallel run got the signal: rank 0 says it
            _print_error(str(e), style="bold yellow", label="")
        sys.exit(e.exit_code)
    except TrainlabError as e:
        if _reported_by_rank_0(e):
            sys.exit(e.exit_code)
        _print_error(str(e) if env_rank() == 0 else f"process {env_rank()}: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:  # outside a command (while importing)
        sys.exit(exit_code(e))
    except OSError as e:  # an accident outside a run folder: a full disk, a read-only or vanished folder
        _print_error(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        sys.exit(1)


def _reported_by_rank_0(error: TrainlabError) -> bool:
    """In a data-parallel run, a mistake every process makes (a config, a missing file) and the echo of another
    process's failure are told by process 0 alone."""
    from trainlab.engine.distributed import PeerFailure
    from trainlab.errors import DataError

    return env_rank() > 0 and isinstance(error, (UsageError, DataError, PeerFailure))


def _print_error(message: str, style: str = "bold red", label: str = "error: ") -> None:
    try:
        errors.print(Text.assemble((label, style), message) if label else Text(message, style=style),
                     highlight=False, soft_wrap=True)  # fmt: skip
    except OSError:
        pass  # stderr is gone too (a closed terminal)

