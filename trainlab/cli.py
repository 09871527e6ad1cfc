"""The `trainlab` command: one thin verb per function. User mistakes print one message, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from trainlab.errors import TrainlabError, UsageError

app = typer.Typer(
    add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
    help="trainlab: train, test and report deep-learning experiments from one config.",
)  # fmt: skip
console = Console()
errors = Console(stderr=True)

LISTABLE = ("models", "presets", "datasets", "optimizers", "schedulers", "losses", "augment")


def _split_arguments(arguments: list[str]) -> tuple[str | None, list[str]]:
    """`[CONFIG] [key=value ...]`: the first argument without '=' is the config."""
    config = None
    overrides = []
    for arg in arguments:
        if "=" in arg or config is not None:
            overrides.append(arg)
        else:
            config = arg
    return config, overrides


@app.command()
def run(
    arguments: Annotated[Optional[list[str]], typer.Argument(metavar="CONFIG KEY=VALUE", help="a preset name, a YAML file or a run folder, then key=value overrides", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="continue the run in this run folder from its last checkpoint")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="run this many seeds (seed, seed+1, ...) and compare them")] = 1,
) -> None:
    """Train a model, test it and write a run folder with metrics, plots, checkpoints and an HTML report."""
    from trainlab.config import load_config
    from trainlab.experiment import run_experiment

    spec, overrides = _split_arguments(arguments or [])
    if resume is not None:
        if spec or overrides or seeds > 1:
            raise UsageError("--resume takes the run folder alone: the run continues with the config saved in it")
        if not (resume / "config.yaml").is_file():
            raise UsageError(f"--resume {resume}: not a run folder (expected {resume / 'config.yaml'})")
        config, source = load_config(str(resume / "config.yaml"))
    else:
        config, source = load_config(spec, overrides)
    folders = []
    try:
        for offset in range(seeds):
            seeded = config.model_copy(update={"seed": config.seed + offset})
            folders.append(run_experiment(seeded, source, console=console, resume=resume).path)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # the run folder says "interrupted" and how to resume
    if seeds > 1:
        _print_comparison([str(f) for f in folders], sort="val_acc", fmt="table")


def _print_comparison(paths: list[str], sort: str, fmt: str) -> list:
    from trainlab.tools.compare import compare_table, find_runs, group_rows, load_run, render

    runs = [load_run(p) for p in find_runs(paths)]
    console.print(render(compare_table(runs, sort), fmt), highlight=False, soft_wrap=True, markup=False)
    groups = group_rows(runs, sort)
    if groups:
        console.print("\n" + render(groups, fmt), highlight=False, soft_wrap=True, markup=False)
    return runs


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="run folders, parent folders of runs, or globs")],
    sort: Annotated[str, typer.Option(help="val_acc, test_acc, f1, time, images_per_s, epochs, name or a config field")] = "val_acc",
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, csv or html")] = "table",
    plot: Annotated[Optional[Path], typer.Option(help="also draw the validation curves of every run into this PNG")] = None,
) -> None:
    """Compare runs in one table: the config fields that differ, results, and mean ± std over seeds."""
    from trainlab.evaluation.plots import save_figure
    from trainlab.tools.compare import curves_figure

    loaded = _print_comparison(runs, sort, fmt)
    if plot is not None:
        save_figure(curves_figure(loaded), plot)
        console.print(f"curves: {plot}", highlight=False, soft_wrap=True, markup=False)


@app.command("show-data")
def show_data(
    arguments: Annotated[Optional[list[str]], typer.Argument(metavar="CONFIG KEY=VALUE", help="a preset name, a YAML file or a run folder, then key=value overrides", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write")] = Path("samples.png"),
    count: Annotated[int, typer.Option(min=1, max=256, help="how many training images")] = 64,
) -> None:
    """Draw a grid of training images as the model gets them (augmented), with their labels."""
    from trainlab.config import load_config
    from trainlab.experiment import load_data, write_sample_grid

    config, _ = load_config(*_split_arguments(arguments or []))
    write_sample_grid(load_data(config), output, count)
    console.print(f"{count} training samples: {output}", highlight=False, soft_wrap=True, markup=False)


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run folder")],
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
) -> None:
    """Re-evaluate a run's checkpoint on the test set; rewrites its test files and report."""
    from trainlab.experiment import evaluate_run

    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint: expected best or last, got '{checkpoint}'")
    results = evaluate_run(run_dir, checkpoint)
    console.print(results.report_text(), highlight=False, soft_wrap=True)
    console.print(f"test accuracy {results.accuracy:.4f} ({checkpoint} checkpoint of {run_dir})", highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help=f"one of: {', '.join(LISTABLE)}")] = "models",
    pattern: Annotated[str, typer.Argument(help="glob pattern, e.g. 'workshop*'")] = "*",
) -> None:
    """List what a config may name: models, presets, datasets, optimizers, schedulers, losses."""
    from trainlab.config import section_registries, list_presets
    from trainlab.registry import did_you_mean

    if what == "augment":
        from trainlab.data.augment import build_augment
        from trainlab.registry import configurable_arguments

        console.print(build_augment.__doc__ or "", highlight=False, markup=False)
        for arg in configurable_arguments(build_augment).values():
            console.print(f"  augment.{arg.name}={arg.default!r}", highlight=False, markup=False)
        return
    if what == "presets":
        for name, path in list_presets(pattern).items():
            console.print(f"{name:<28} {path}", highlight=False, soft_wrap=True)
        return
    registries = {r.kind: r for r in section_registries().values()}
    if what not in registries:
        raise UsageError(f"cannot list '{what}'{did_you_mean(what, LISTABLE)}; expected one of: {', '.join(LISTABLE)}")
    registry = registries[what]
    for name in registry.names(pattern):
        args = ", ".join(
            f"{a.name}={a.default!r}" if a.default is not a.empty else a.name for a in registry.arguments(name).values()
        )
        console.print(f"[bold]{name:<16}[/] {registry.describe(name)}\n{'':<17}[dim]{args}[/]", highlight=False, soft_wrap=True)


def main() -> None:
    try:
        app()  # typer answers its own usage errors (exit 2) and --help
    except TrainlabError as e:
        errors.print(Text.assemble(("error: ", "bold red"), str(e)), highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
