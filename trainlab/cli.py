"""The `trainlab` command: one thin verb per function. User mistakes print one message, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from trainlab.cli_support import Command, Group, interrupts_as_errors, notes_as_lines
from trainlab.utils.ranks import env_rank
from trainlab.errors import TrainlabError, UsageError
from trainlab.utils.signals import Interrupted, exit_code, stop_on_signals
from trainlab.tools.text_cli import app as text_app


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


def _given(config: str | None, overrides: list[str] | None) -> list[str]:
    """CONFIG and KEY=VALUE as typed: `trainlab run epochs=1` puts an override where CONFIG stands."""
    return [*([config] if config is not None else []), *(overrides or [])]


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

    spec, overrides = _split_arguments(_given(spec, overrides))
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

    spec, overrides = _split_arguments(_given(spec, overrides))
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

    config, _ = load_config(*_split_arguments(_given(spec, overrides)))
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
    spec, overrides = _split_arguments(_given(spec, overrides))
    result = summarize_spec(spec, overrides, inputs or [], depth=depth, batch_size=batch_size)
    console.print(result.text(), highlight=False, soft_wrap=True, markup=False, end="")
    if graph is not None:
        console.print(write_graph(result, graph), highlight=False, soft_wrap=True, markup=False)


@app.command("eval", cls=Command, epilog="""Examples:
  trainlab eval runs/task1-20261123-101500 --checkpoint last
  trainlab eval runs/task1-20261123-101500 data.root=/new/place/cifar10-jpeg""")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="a run folder")],
    overrides: Annotated[Optional[list[str]], typer.Argument(metavar="KEY=VALUE", help="data.* keys, for data that moved: data.root=/new/place, data.eval_batch_size=256", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(metavar="best|last", help="the checkpoint to test")] = "best",
) -> None:
    """Test a run's checkpoint again, on its data or on data that moved.

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
    console.print(f"{evaluation.results.summary()} ({checkpoint} checkpoint, epoch {record['epoch']}) on {record['data_source']}",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip
    console.print(f"results: {evaluation.path} (the run's own test result in run.json is unchanged)",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip


@app.command(cls=Command, epilog="""Examples:
  trainlab predict runs/task1-20261123-101500 photo.jpg cat2.png
  trainlab predict runs/task1-20261123-101500 images/ --top 3 --output predictions.csv
  trainlab predict runs/lstm_glove-20261123-101500 "i feel wonderful today" --top 2
  echo "i am so angry" | trainlab predict runs/lstm_glove-20261123-101500 -

Needs the run folder alone (its config.yaml, preprocess.json and checkpoint), not the training data.""")
def predict(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="a finished run folder")],
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT", help="image files or folders of images; texts; - reads texts from standard input, one per line")],
    top: Annotated[int, typer.Option(metavar="K", min=1, help="how many classes to show for each input")] = 3,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", help="also write the predictions to this .csv or .json file", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(metavar="best|last", help="the checkpoint to predict with")] = "best",
    device: Annotated[str, typer.Option(metavar="auto|cpu|cuda", help="where the model runs; auto: a GPU when there is one")] = "auto",
) -> None:
    """Predict the classes of images or texts with a trained run.

    Each input is converted as the run's training data was (resized, greyscale or colour, normalised; or tokenized with the run's vocabulary); one line per input with its most likely classes."""
    from trainlab.inference import Predictor
    from trainlab.tools.predict import check_output, format_predictions, predict_inputs, write_predictions

    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device: expected auto, cpu or cuda, got '{device}'")
    if output is not None:
        check_output(output)
    predictor = Predictor.from_run(run_dir, checkpoint, device=device)
    predictions = predict_inputs(predictor, inputs, sys.stdin, top)
    console.print(format_predictions(predictions), highlight=False, soft_wrap=True, markup=False)
    if output is not None:
        write_predictions(predictions, output)
        console.print(f"predictions: {output}", highlight=False, soft_wrap=True, markup=False)


@app.command(cls=Command, epilog="""Examples:
  trainlab export runs/task1-20261123-101500
  trainlab export runs/task1-20261123-101500 data.root=/new/place/cifar10-jpeg --checkpoint last

Writes RUN/export/: model.onnx, model.int8.onnx, the run's preprocess.json and export.json.""")
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="a finished run folder")],
    overrides: Annotated[Optional[list[str]], typer.Argument(metavar="[data.KEY=VALUE]...", help="data.* overrides, for data that moved: data.root=/new/place", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(metavar="best|last", help="the checkpoint to export")] = "best",
    tolerance: Annotated[float, typer.Option(metavar="X", min=0, help="largest absolute logit difference allowed between ONNX Runtime and PyTorch")] = 1e-3,
    calibration: Annotated[int, typer.Option(metavar="N", min=1, help="training images that calibrate the int8 model of a conv net")] = 512,
) -> None:
    """Export a run's model to ONNX (fp32) and int8, each checked on the run's test set.

    The fp32 model is checked against PyTorch on every test input (it fails above --tolerance); conv nets get static int8 quantization calibrated on training images, text models dynamic int8. The test accuracy and size of each model go to RUN/export/export.json."""
    from trainlab.tools.export import export_run

    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint: expected best or last, got '{checkpoint}'")
    if "=" in str(run_dir) and not run_dir.is_dir():
        raise UsageError(f"'{run_dir}': the run folder comes first, then key=value overrides: trainlab export RUN data.root=...")
    result = export_run(run_dir, overrides or [], checkpoint=checkpoint, tolerance=tolerance, calibration=calibration)
    record = result.record
    console.print(result.table(), highlight=False, soft_wrap=True, markup=False)
    console.print(f"ONNX Runtime vs PyTorch: largest logit difference {record['parity']['max_abs_logit_difference']:.2e} "
                  f"on {record['parity']['inputs']:,} test inputs (tolerance {tolerance:g}); int8: {record['quantization']}",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip
    console.print(f"export: {result.path}", highlight=False, soft_wrap=True, markup=False)


@app.command(cls=Command, epilog="""Examples:
  trainlab bench runs/task1-20261123-101500
  trainlab bench runs/task1-20261123-101500 --batch 1 --batch 256 --threads 1

Needs `trainlab export RUN` first; writes RUN/export/bench.json.""")
def bench(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="an exported run folder")],
    batch: Annotated[Optional[list[int]], typer.Option(metavar="N", min=1, help="a batch size to time (repeatable); default 1 and 64", show_default=False)] = None,
    seconds: Annotated[float, typer.Option(metavar="S", min=0.1, help="time spent on each batch size, all backends together")] = 10.0,
    threads: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="threads of every backend; default: torch's", show_default=False)] = None,
) -> None:
    """Latency (p50, p90, p99) and throughput of a run's model: torch fp32 and bf16, ONNX Runtime fp32 and int8.

    The backends take turns in blocks of 10 calls after uncounted warm-up calls, all on the same number of threads."""
    from trainlab.tools.bench import bench_run

    result = bench_run(run_dir, batch or [1, 64], seconds, threads)
    record = result.record
    console.print(f"{record['cpu']} ({', '.join(record['cpu_flags']) or 'no AVX-512/VNNI/AMX flags'}), {record['threads']} threads",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip
    console.print(result.table(), highlight=False, soft_wrap=True, markup=False)
    console.print(f"results: {result.path}", highlight=False, soft_wrap=True, markup=False)


@app.command(cls=Command, epilog="""Examples:
  trainlab serve runs/task1-20261123-101500
  trainlab serve runs/task1-20261123-101500 --port 8080 --backend onnx-int8
  curl -F file=@cat.jpg localhost:8000/predict

The page at / tests the model live; /v2/... speaks the Open Inference Protocol (KServe, Triton clients).""")
def serve(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="a finished run folder")],
    port: Annotated[int, typer.Option(metavar="N", min=0, max=65535, help="the port to listen on (0: any free port)")] = 8000,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="the address to listen on; 0.0.0.0 opens the server to other machines")] = "127.0.0.1",
    backend: Annotated[str, typer.Option(metavar="auto|torch|onnx|onnx-int8", help="auto: the run's ONNX export when it is of the served checkpoint, else torch")] = "auto",
    checkpoint: Annotated[str, typer.Option(metavar="best|last", help="the checkpoint to serve")] = "best",
    threads: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="threads of the model; default: torch's", show_default=False)] = None,
    max_request_mb: Annotated[float, typer.Option(metavar="MB", min=0.001, help="the largest request body accepted (larger: 413)")] = 10.0,
    name: Annotated[Optional[str], typer.Option(metavar="NAME", help="the model's name in /v2/models/NAME; default: the run folder's name", show_default=False)] = None,
    workers: Annotated[int, typer.Option(metavar="N", min=1, max=64, help="server processes, each with the model loaded once (about one per core)")] = 1,
    max_batch: Annotated[int, typer.Option(metavar="N", min=1, max=1024, help="dynamic batching: image requests waiting while the model is busy run together, up to N images (1: off)")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(metavar="MS", min=0, max=1000, help="with --max-batch: wait this long for more requests before a forward pass (0: take only those already waiting)")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no line per request")] = False,
) -> None:
    """Serve a run's model over HTTP: the Open Inference Protocol v2, POST /predict, and a page for live tests.

    The model is loaded once; it runs on ONNX Runtime when `trainlab export` exported the served checkpoint, else on torch."""
    from trainlab.serve.server import serve_run

    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint: expected best or last, got '{checkpoint}'")
    if name is not None and (not name or "/" in name or name.strip() != name):
        raise UsageError(f"--name '{name}': expected a name without '/' or spaces at its ends")

    def announce(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True, markup=False)

    serve_run(run_dir, host=host, port=port, backend=backend, checkpoint=checkpoint, threads=threads,
              max_request_bytes=int(max_request_mb * 1024 * 1024), name=name, access_log=not quiet, announce=announce,
              workers=workers, max_batch=max_batch, batch_wait_ms=batch_wait_ms)  # fmt: skip


@app.command(cls=Command, epilog="""Examples:
  trainlab explain runs/minilm-20261201-101500
  trainlab explain runs/minilm-20261201-101500 --method rollout --top 20
  trainlab explain runs/lstm_glove-20261201-101500              # gradient x input
  trainlab explain runs/transformer-20261201-101500 --sentence 7  # attention maps of test sentence 7

Methods: cls, rollout, gradient (attention models), grad_input, ig (models with a token embedding).
Writes RUN/explain/: tokens.csv, tokens.md, bars-<class>.png, attention-<N>.png, explain.json, explain.html.""")
def explain(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_FOLDER", help="a finished run of a text model")],
    overrides: Annotated[Optional[list[str]], typer.Argument(metavar="[data.KEY=VALUE]...", help="data.* overrides, e.g. data.root=/new/place", show_default=False)] = None,
    method: Annotated[Optional[str], typer.Option(metavar="METHOD", help="cls, rollout, gradient, grad_input or ig; default: cls for attention models, else grad_input", show_default=False)] = None,
    top: Annotated[int, typer.Option(metavar="N", min=1, help="tokens ranked per class")] = 10,
    min_count: Annotated[int, typer.Option(metavar="N", min=1, help="occurrences a token needs in a class's correct sentences to be ranked")] = 3,
    stopwords: Annotated[bool, typer.Option("--stopwords/--no-stopwords", help="rank stopwords too (punctuation and special tokens never are)")] = False,
    samples: Annotated[int, typer.Option(metavar="N", min=1, help="correctly predicted sentences each method's faithfulness is measured on")] = 300,
    k: Annotated[int, typer.Option("-k", metavar="K", min=1, help="words deleted per sentence in the faithfulness check")] = 3,
    sentence: Annotated[Optional[int], typer.Option(metavar="N", min=0, help="the test sentence whose attention maps are drawn", show_default=False)] = None,
    checkpoint: Annotated[str, typer.Option(metavar="best|last", help="the checkpoint to explain")] = "best",
) -> None:
    """Find the words a text model attends to most, per class, on its test set (Task 6).

    Scores every test sentence's words by one method, ranks each class's words over its correctly predicted sentences (mean score x lift over the other classes), checks each method's faithfulness by deleting its top words against random ones, and writes a page of coloured sentences."""
    from trainlab.tools.explain import METHODS_HELP, explain_run

    if method is not None and method not in METHODS_HELP:
        raise UsageError(f"--method {method!r}: expected one of {', '.join(METHODS_HELP)}")
    result = explain_run(run_dir, method=method, checkpoint=checkpoint, top=top, min_count=min_count, stopwords=stopwords,
                         samples=samples, k=k, sentence=sentence, overrides=overrides or [],
                         say=lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False))  # fmt: skip
    for row in result.faithfulness:
        console.print(f"faithfulness of {row['method']}: deleting the top {row['k']} words lowers p(predicted) by "
                      f"{row['top_drop']:.3f}, {row['k']} random words by {row['random_drop']:.3f} ({row['count']} test sentences)",
                      highlight=False, soft_wrap=True, markup=False)  # fmt: skip
    from trainlab.explain.ranking import ranks_by_class

    for name, rows in ranks_by_class(result.ranks, [*dict.fromkeys(r.class_name for r in result.ranks)]).items():
        console.print(f"{name:<10} {', '.join(r.token for r in rows[:8])}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"page: {result.folder / 'explain.html'}", highlight=False, soft_wrap=True, markup=False)


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
    config, source = load_config(*_split_arguments(_given(spec, overrides)))
    if run_doctor(config, source, only, output, console).failed:
        raise typer.Exit(1)


for _command in app.registered_commands:
    _command.callback = interrupts_as_errors(_command.callback)


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


if __name__ == "__main__":
    main()
