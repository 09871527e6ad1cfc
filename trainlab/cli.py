"""The `trainlab` command: one thin verb per function. User mistakes print one message, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from trainlab.errors import TrainlabError, UsageError
from trainlab.tools.text_cli import app as text_app

app = typer.Typer(
    add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
    help="trainlab: train, test and report deep-learning experiments from one config.",
)  # fmt: skip
app.add_typer(text_app, name="text")
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


@app.command()
def sweep(
    arguments: Annotated[Optional[list[str]], typer.Argument(metavar="CONFIG KEY=VALUE", help="a preset or YAML file with a sweep: section, then key=value overrides", show_default=False)] = None,
    method: Annotated[Optional[str], typer.Option(help="grid, random, tpe, gp or bestball (default: the config's sweep.method)", show_default=False)] = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="trials to run (default: every grid combination, else 20)", show_default=False)] = None,
    timeout: Annotated[Optional[float], typer.Option(min=1, help="seconds after which no new trial starts", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="epochs of each trial; best-ball's epoch budget", show_default=False)] = None,
    pruner: Annotated[Optional[str], typer.Option(help="median, halving or none (default: median, none for grid and bestball)", show_default=False)] = None,
    workers: Annotated[int, typer.Option(min=1, help="trial processes on this machine, sharing its CPU threads")] = 1,
    storage: Annotated[Optional[str], typer.Option(help="database URL of the study, shared by workers on several machines (postgresql://user@host/db); default: a journal file in the sweep folder", show_default=False)] = None,
    study: Annotated[Optional[str], typer.Option(help="study name in --storage (default: the sweep's name); sweeps with the same name share their trials", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="continue the sweep in this sweep folder; finished trials are not run again", show_default=False)] = None,
    replay: Annotated[Optional[Path], typer.Option(help="train the final schedule of this best-ball sweep from scratch as one run", show_default=False)] = None,
) -> None:
    """Search hyperparameters over the config's sweep: section (grid, random, TPE, GP or best-ball), one run folder per trial."""
    from trainlab.tools.sweep.study import resume_sweep, start_sweep

    spec, overrides = _split_arguments(arguments or [])
    options = {"sweep.method": method, "sweep.trials": trials, "sweep.timeout": timeout, "sweep.pruner": pruner, "epochs": epochs}
    given = [f"{key}={value}" for key, value in options.items() if value is not None]
    if replay is not None:
        from trainlab.tools.sweep.bestball import replay as replay_schedule

        if spec or overrides or given or study or resume or workers > 1:
            raise UsageError("--replay takes the best-ball sweep folder alone (with --storage at most)")
        run, value, ball = replay_schedule(replay, console, storage)
        same = "identical" if value == ball.value else f"differs by {value - ball.value:+.2g}: exact only on a CPU in fp32"
        console.print(f"replay {run.path}: {value:.6f} after {ball.user_attrs['epoch']} epochs; final ball {ball.number}: "
                      f"{ball.value:.6f} ({same})", highlight=False, soft_wrap=True, markup=False)  # fmt: skip
        return
    if resume is not None and (spec or overrides or given or study):
        raise UsageError("--resume takes the sweep folder alone (with --workers and --storage at most): it goes on with its saved config")
    try:
        if resume is not None:
            resume_sweep(resume, workers=workers, storage_url=storage, console=console)
        else:
            start_sweep(spec, overrides, given, workers=workers, storage_url=storage, study_name=study, console=console)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # trials.csv is written; the message says how to resume


@app.command("show-data")
def show_data(
    arguments: Annotated[Optional[list[str]], typer.Argument(metavar="CONFIG KEY=VALUE", help="a preset name, a YAML file or a run folder, then key=value overrides", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write")] = Path("samples.png"),
    count: Annotated[int, typer.Option(min=1, max=256, help="how many training images")] = 64,
) -> None:
    """Draw a grid of training images as the model gets them (augmented), with their labels; print texts as tokens."""
    from trainlab.config import load_config
    from trainlab.data.text import TextData
    from trainlab.experiment import load_data, write_sample_grid

    config, _ = load_config(*_split_arguments(arguments or []))
    data = load_data(config)
    if isinstance(data, TextData):  # the first training batches' texts, as vocabulary tokens (<unk> shown)
        for label, tokens in data.preview(count):
            console.print(f"{label:<10} {' '.join(tokens)}", highlight=False, soft_wrap=True, markup=False)
        return
    write_sample_grid(data, output, count)
    console.print(f"{count} training samples: {output}", highlight=False, soft_wrap=True, markup=False)


@app.command()
def summary(
    arguments: Annotated[Optional[list[str]], typer.Argument(metavar="SPEC KEY=VALUE", help="a preset, YAML file or run folder; a registered model with --input; or FILE.py:NAME; then key=value overrides (for a model: its arguments and num_classes, default 10)", show_default=False)] = None,
    inputs: Annotated[Optional[list[str]], typer.Option("--input", help="shape of one example without the batch, e.g. 3x32x32; once per input of the model", show_default=False)] = None,
    depth: Annotated[Optional[int], typer.Option(min=1, help="fold modules nested deeper than this into their parent's row")] = None,
    graph: Annotated[Optional[Path], typer.Option(help="also draw the model into this .svg, .png or .pdf (with Graphviz), beside its .dot source")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="show this batch size instead of None, with the memory of the layer outputs")] = None,
) -> None:
    """Show a model's layers, output shapes, parameters and multiply-adds, like Keras's model.summary()."""
    from trainlab.tools.model_graph import check_graph_path, write_graph
    from trainlab.tools.summary import summarize_spec

    if graph is not None:
        check_graph_path(graph)
    spec, overrides = _split_arguments(arguments or [])
    result = summarize_spec(spec, overrides, inputs or [], depth=depth, batch_size=batch_size)
    console.print(result.text(), highlight=False, soft_wrap=True, markup=False, end="")
    if graph is not None:
        console.print(write_graph(result, graph), highlight=False, soft_wrap=True, markup=False)


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


@app.command()
def doctor(
    arguments: Annotated[Optional[list[str]], typer.Argument(metavar="CONFIG KEY=VALUE", help="a preset name, a YAML file or a run folder, then key=value overrides", show_default=False)] = None,
    only: Annotated[Optional[str], typer.Option("--only", help="comma-separated checks: initial_loss, data, seeds, overfit (overfit_example, overfit_batch), lr, health, curves")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="report folder; default: <run folder>/doctor, or <output_dir>/doctor/<name>-<time>")] = None,
) -> None:
    """Check a config before training (initial loss, data, seeds, overfitting, learning rate, gradients, a short run's curves), or diagnose a run folder's curves. Exit 1 when a check fails."""
    from trainlab.config import load_config
    from trainlab.tools.doctor import run_doctor, select_checks

    select_checks(only)  # an unknown check name stops here, before any data is read
    config, source = load_config(*_split_arguments(arguments or []))
    if run_doctor(config, source, only, output, console).failed:
        raise typer.Exit(1)


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
