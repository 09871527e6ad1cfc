"""The verbs of using a trained run: predict, export, bench, serve, explain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from trainlab.cli.app import app, console
from trainlab.cli_support import Command
from trainlab.errors import UsageError


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
