"""The verbs of experimenting: run, compare, sweep, show-data, summary, eval, list, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trainlab.cli.app import (
    CONFIG_KEYS,
    LISTABLE,
    ConfigArgument,
    OverrideArguments,
    app,
    console,
    errors,
    given_arguments,
    split_arguments,
)
from trainlab.cli_support import Command
from trainlab.errors import UsageError


@app.command(cls=Command, epilog=f"""Examples:
  trainlab run                                   the embedded digits, offline
  trainlab run workshop/task1 epochs=1           a preset, one epoch
  trainlab run my.yaml optimizer.lr=3e-4 seed=1  a config file and two changes
  trainlab run runs/task1-20261123-101500        that run's experiment again
  trainlab run --resume runs/task1-20261123-101500
  trainlab run workshop/task4 --nproc 2          data-parallel, 2 processes (same as torchrun --standalone)

{CONFIG_KEYS}""")
def run(
    spec: ConfigArgument = None,
    overrides: OverrideArguments = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", metavar="RUN_FOLDER", help="continue the run in this run folder from its last checkpoint", show_default=False)] = None,
    seeds: Annotated[int, typer.Option("--seeds", metavar="N", min=1, help="run N seeds (seed, seed+1, ...) and compare them")] = 1,
    nproc: Annotated[Optional[int], typer.Option("--nproc", metavar="N", min=1, show_default=False, help="train data-parallel in N processes on this machine (gloo on CPU cores, NCCL on GPUs); data.batch_size is the global batch; default 1, or the number a resumed run was trained by")] = None,
) -> None:
    """Train a model, test it and write a run folder with its report.

    The run folder (runs/NAME-TIME/) holds the resolved config, metrics, curves, checkpoints and report.html."""
    from trainlab.config import SEED_MAX, load_config
    from trainlab.engine.distributed import started_by_torchrun
    from trainlab.experiment import run_experiment

    spec, overrides = split_arguments(given_arguments(spec, overrides))
    if resume is not None:
        if spec or overrides or seeds > 1:
            raise UsageError("--resume takes the run folder alone: the run continues with the config saved in it")
        if not (resume / "config.yaml").is_file():
            raise UsageError(f"--resume {resume}: not a run folder (expected {resume / 'config.yaml'})")
        config, source = load_config(str(resume / "config.yaml"))
    else:
        config, source = load_config(spec, overrides)
    if config.seed + seeds - 1 > SEED_MAX:
        raise UsageError(f"--seeds {seeds} from seed {config.seed} goes past {SEED_MAX}, the largest seed torch takes")
    if started_by_torchrun():
        if nproc is not None:
            raise UsageError("--nproc starts the processes itself: under torchrun, leave it out (torchrun's --nproc_per_node says how many)")
    else:
        from trainlab.launch import check_nproc, launch, trained_world_size

        nproc = nproc or (trained_world_size(resume) if resume is not None else 1)
        if nproc > 1 or resume is not None:
            check_nproc(nproc, config, resume)
        if nproc > 1:
            arguments = [*([spec] if spec else []), *overrides, *(["--resume", str(resume)] if resume else []),
                         *(["--seeds", str(seeds)] if seeds > 1 else [])]  # fmt: skip
            code = launch(nproc, ["run", *arguments])
            if code:
                raise typer.Exit(code)
            return
    folders = []
    for offset in range(seeds):  # Ctrl-C: the run folder says "interrupted" and how to resume (interrupts_as_errors)
        seeded = config.model_copy(update={"seed": config.seed + offset})
        folder = run_experiment(seeded, source, console=console, resume=resume)
        folders.append(folder.path if folder is not None else None)
    if any(folder is None for folder in folders):
        return  # a data-parallel rank other than 0: rank 0 reports
    if seeds > 1:
        _print_comparison([str(f) for f in folders], sort="best_val_acc", fmt="table")


def _print_comparison(paths: list[str], sort: str, fmt: str) -> list:
    from trainlab.tools.compare import compare_table, find_runs, group_rows, load_run, render

    runs = [load_run(p) for p in find_runs(paths)]
    console.print(render(compare_table(runs, sort), fmt), highlight=False, soft_wrap=True, markup=False)
    groups = group_rows(runs, sort)
    if groups:
        console.print("\n" + render(groups, fmt), highlight=False, soft_wrap=True, markup=False)
    return runs


@app.command(cls=Command, epilog="""Examples:
  trainlab compare runs/ --sort test_acc
  trainlab compare runs/task4-* --format markdown --plot curves.png""")
def compare(
    runs: Annotated[list[str], typer.Argument(help="run folders, parent folders of runs, or globs")],
    sort: Annotated[str, typer.Option(help="best_val_acc, test_acc, test_macro_f1, train_seconds, samples_per_s, epochs_completed, run or a config field")] = "best_val_acc",
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, csv or html")] = "table",
    plot: Annotated[Optional[Path], typer.Option(help="also draw the validation curves of every run into this PNG")] = None,
) -> None:
    """Compare runs in one table: what differs, results, mean ± std over seeds.

    A run whose run.json, metrics.csv or config.yaml is corrupt shows as `broken`, with a warning naming the file (exit 1 when all are); a run whose process died without recording an end (kill -9, power loss) shows as `died`."""
    from trainlab.evaluation.plots import save_figure
    from trainlab.tools.compare import curves_figure

    loaded = _print_comparison(runs, sort, fmt)
    broken = [run for run in loaded if run.problems]
    for run in broken:
        errors.print(f"warning: {'; '.join(run.problems)}: its row is marked broken", highlight=False, soft_wrap=True, markup=False)
    if plot is not None:
        save_figure(curves_figure(loaded), plot)
        console.print(f"curves: {plot}", highlight=False, soft_wrap=True, markup=False)
    if broken and len(broken) == len(loaded):
        raise typer.Exit(1)


@app.command(cls=Command, epilog=f"""Examples:
  trainlab sweep my.yaml --method tpe --trials 30
  trainlab sweep my.yaml --epochs 3 --workers 2
  trainlab sweep --resume sweeps/my-20261123-101500

The sweep: section names the fields to search and their choices or ranges (README.md, section Hyperparameter search).

{CONFIG_KEYS}""")
def sweep(
    spec: Annotated[Optional[str], typer.Argument(metavar="CONFIG", help="a preset or YAML file with a sweep: section", show_default=False)] = None,
    overrides: OverrideArguments = None,
    method: Annotated[Optional[str], typer.Option(metavar="NAME", help="grid, random, tpe, gp or bestball (default: the config's sweep.method)", show_default=False)] = None,
    trials: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="trials to run (default: every grid combination, else 20)", show_default=False)] = None,
    timeout: Annotated[Optional[float], typer.Option(metavar="SECONDS", min=1, help="seconds after which no new trial starts", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="epochs of each trial; best-ball's epoch budget", show_default=False)] = None,
    pruner: Annotated[Optional[str], typer.Option(metavar="NAME", help="median, halving or none (default: median, none for grid and bestball)", show_default=False)] = None,
    workers: Annotated[int, typer.Option(metavar="N", min=1, help="trial processes on this machine, sharing its CPU threads")] = 1,
    storage: Annotated[Optional[str], typer.Option(metavar="URL", help="database URL of the study, shared by workers on several machines (postgresql://user@host/db); default: a journal file in the sweep folder", show_default=False)] = None,
    study: Annotated[Optional[str], typer.Option(metavar="NAME", help="study name in --storage (default: the sweep's name); sweeps with the same name share their trials", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="SWEEP_FOLDER", help="continue the sweep in this sweep folder; finished trials are not run again", show_default=False)] = None,
    replay: Annotated[Optional[Path], typer.Option(metavar="SWEEP_FOLDER", help="train the final schedule of this best-ball sweep from scratch as one run", show_default=False)] = None,
) -> None:
    """Search hyperparameters over the config's sweep: section.

    Grid, random, TPE, GP or best-ball search; one run folder per trial, in the sweep folder."""
    from trainlab.tools.sweep.study import resume_sweep, start_sweep

    spec, overrides = split_arguments(given_arguments(spec, overrides))
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


@app.command("show-data", cls=Command, epilog=f"""Examples:
  trainlab show-data workshop/task1 -o samples.png
  trainlab show-data cifar10/preact_resnet augment.flip_p=1 --count 16

{CONFIG_KEYS}""")
def show_data(
    spec: ConfigArgument = None,
    overrides: OverrideArguments = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="PNG", help="the picture to write")] = Path("samples.png"),
    count: Annotated[int, typer.Option(metavar="N", min=1, max=256, help="how many training examples")] = 64,
) -> None:
    """Draw the training images as the model gets them (augmented).

    A grid of N training images, augmented, with their labels; for a text dataset, the texts as vocabulary tokens."""
    from trainlab.build import load_data
    from trainlab.config import load_config

    config, _ = load_config(*split_arguments(given_arguments(spec, overrides)))
    for line in load_data(config).show(count, output):  # images: a picture; texts: their tokens (<unk> shown)
        console.print(line, highlight=False, soft_wrap=True, markup=False)


@app.command(cls=Command, epilog=f"""Examples:
  trainlab summary workshop/task1 --graph task1.svg
  trainlab summary vgg16 --input 3x224x224 num_classes=1000
  trainlab summary runs/task1-20261123-101500 --depth 1

{CONFIG_KEYS}""")
def summary(
    spec: Annotated[Optional[str], typer.Argument(metavar="SPEC", help="a preset, YAML file or run folder; a registered model with --input (trainlab list models); or FILE.py:NAME", show_default=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(metavar="KEY=VALUE", help="config fields to change; for a model: its arguments and num_classes (default 10)", show_default=False)] = None,
    inputs: Annotated[Optional[list[str]], typer.Option("--input", metavar="SHAPE", help="shape of one example without the batch, e.g. 3x32x32; once per input of the model", show_default=False)] = None,
    depth: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="fold modules nested deeper than this into their parent's row")] = None,
    graph: Annotated[Optional[Path], typer.Option(metavar="FILE", help="also draw the model into this .svg, .png or .pdf (with Graphviz), beside its .dot source")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", metavar="N", min=1, help="show this batch size instead of None, with the memory of the layer outputs")] = None,
) -> None:
    """Show a model's layers, shapes, parameters and multiply-adds.

    One row per layer, like Keras's model.summary(); --graph also draws it."""
    from trainlab.tools.model_graph import check_graph_path, write_graph
    from trainlab.tools.summary import summarize_spec

    if graph is not None:
        check_graph_path(graph)
    spec, overrides = split_arguments(given_arguments(spec, overrides))
    result = summarize_spec(spec, overrides, inputs or [], depth=depth, batch_size=batch_size)
    console.print(result.text(), highlight=False, soft_wrap=True, markup=False, end="")
    if graph is not None:
        console.print(write_graph(result, graph), highlight=False, soft_wrap=True, markup=False)


@app.command("eval", cls=Command, epilog="""Examples:
  trainlab eval runs/task1-20261123-101500 --checkpoint last
  trainlab eval runs/task1-20261123-101500 data.root=/new/place/cifar10-jpeg
  trainlab eval runs/task1-20261123-101500 tta=flip_translate""")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="a run folder")],
    overrides: Annotated[Optional[list[str]], typer.Argument(metavar="KEY=VALUE", help="data.* keys, for data that moved: data.root=/new/place, data.eval_batch_size=256; tta=none|flip|flip_translate, the test-time augmentation", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(metavar="best|last", help="the checkpoint to test")] = "best",
) -> None:
    """Test a run's checkpoint again, on its data or on data that moved, or with other test-time augmentation.

    The results go to RUN/evaluations/<checkpoint>-<time>/ and run.json's `evaluations`; the run's own test result stays as training recorded it."""
    from trainlab.tools.evaluate import evaluate_run

    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint: expected best or last, got '{checkpoint}'")
    if "=" in str(run_dir) and not run_dir.is_dir():
        raise UsageError(f"'{run_dir}': the run folder comes first, then key=value overrides: trainlab eval RUN data.root=...")
    evaluation = evaluate_run(run_dir, checkpoint, overrides or [])
    record = evaluation.record
    if hasattr(evaluation.results, "report_text"):  # a regression has no classification report
        console.print(evaluation.results.report_text(), highlight=False, soft_wrap=True, markup=False)
    augmented = f", test-time augmentation {record['tta']}" if record["tta"] != "none" else ""
    console.print(f"{evaluation.results.summary()} ({checkpoint} checkpoint, epoch {record['epoch']}{augmented}) on {record['data_source']}",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip
    console.print(f"results: {evaluation.path} (the run's own test result in run.json is unchanged)",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip


@app.command("list", cls=Command, epilog="""Examples:
  trainlab list presets
  trainlab list models 'vgg*'
  trainlab list schedulers

Each name is what a config's section takes (model.name: vgg16); the arguments shown are that section's other keys.""")
def list_(
    what: Annotated[str, typer.Argument(metavar="WHAT", help=f"one of: {', '.join(LISTABLE)}")] = "models",
    pattern: Annotated[str, typer.Argument(metavar="PATTERN", help="glob pattern, e.g. 'workshop*'")] = "*",
) -> None:
    """List what a config may name, with its arguments.

    Models, presets, datasets, optimizers, schedulers, losses, and the augment keys."""
    from trainlab.config import list_presets, section_registries
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


@app.command(cls=Command, epilog=f"""Examples:
  trainlab doctor workshop/task1
  trainlab doctor my.yaml --only initial_loss,lr
  trainlab doctor runs/task1-20261123-101500    a finished run's curves

{CONFIG_KEYS}""")
def doctor(
    spec: ConfigArgument = None,
    overrides: OverrideArguments = None,
    only: Annotated[Optional[str], typer.Option("--only", metavar="CHECKS", help="comma-separated checks: initial_loss, data, seeds, overfit (overfit_example, overfit_batch), lr, health, curves", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FOLDER", help="report folder; default: <run folder>/doctor, or <output_dir>/doctor/<name>-<time>", show_default=False)] = None,
) -> None:
    """Check a config before training, or diagnose a run's curves.

    Checks the initial loss, the data, the seeds, overfitting, the learning rate, the gradients and a short run's curves; on a run folder, its curves. Exit 1 when a check fails."""
    from trainlab.config import load_config
    from trainlab.tools.doctor import run_doctor, select_checks

    select_checks(only)  # an unknown check name stops here, before any data is read
    config, source = load_config(*split_arguments(given_arguments(spec, overrides)))
    if run_doctor(config, source, only, output, console).failed:
        raise typer.Exit(1)
