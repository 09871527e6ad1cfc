"""trainlab from Python: `trainlab.run`, `trainlab.fit` (your own model), `trainlab.load_run`, `trainlab.compare`,
and the `Run` they return.

The same runner, config validation and run folder as the command line; a mistake is raised as the
exception the command would have turned into its exit code (ConfigError, UsageError, DataError)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from trainlab.inference import Predictor


def overrides_from(settings: dict[str, Any], prefix: str = "") -> list[str]:
    """Keyword settings as the command line's overrides: {"optimizer": {"lr": 3e-4}} -> ["optimizer.lr=0.0003"].
    Nested dicts become dotted keys; lists and other values are written as JSON, which YAML reads back."""
    overrides = []
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            overrides += overrides_from(value, f"{prefix}{key}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            overrides.append(f"{prefix}{key}={text}")
    return overrides


def run(config: str | Path | None = None, *, quiet: bool = False, **settings: Any) -> Run | None:
    """Train and test as `trainlab run CONFIG key=value ...` does, and return the finished run (in a script that
    torchrun starts, on rank 0; the other ranks train with it and get None).

    `config` is a preset name ("workshop/task1") or a YAML file; None is the embedded default. `settings`
    override its fields: `trainlab.run("workshop/task1", epochs=3, optimizer={"lr": 3e-4})`."""
    from trainlab.config import load_config
    from trainlab.experiment import run_experiment

    experiment_config, source = load_config(None if config is None else str(config), overrides_from(settings))
    console = Console(quiet=True) if quiet else None
    folder = run_experiment(experiment_config, source, console=console)
    return Run(folder.path) if folder is not None else None


def fit(
    model: nn.Module, data: str | dict[str, Any] | tuple[Any, Any], *, test: tuple[Any, Any] | None = None,
    classes: list[str] | None = None, optimizer: str | dict[str, Any] | None = None, lr: float | None = None,
    config: str | Path | None = None, quiet: bool = False, **settings: Any,
) -> Run:  # fmt: skip
    """Train your own `model` (any nn.Module whose output is one score per class) as `trainlab run` trains a
    registered one, into a run folder, and return the run. The module itself ends with the tested weights
    (the best checkpoint, or the last with test_checkpoint="last").

    `data` is a registered dataset's name ("cifar10"), a data section ({"name": "image_folder", "root": ...}), or
    arrays or tensors `(X, y)`: images (N, H, W[, C]) or (N, C, H, W), uint8 or floats in [0, 1], and class indices;
    `test=(X_test, y_test)`, else a seeded fifth of them is the test split; `classes` names the labels.
    `optimizer` is a registered optimizer's name ("adamw") or section, `lr` its learning rate; `config` a preset or
    YAML file the other settings start from; `settings` override its fields, as in `trainlab.run`."""
    from torch import nn

    from trainlab.data.memory import register_arrays
    from trainlab.models.user import register_object

    if not isinstance(model, nn.Module):
        raise TypeError(f"trainlab.fit trains a torch.nn.Module, got {type(model).__name__}")
    if isinstance(data, tuple):
        if len(data) != 2:
            raise TypeError(f"data=(X, y): expected 2 arrays, got {len(data)}")
        data = {"name": "in_memory", "key": register_arrays(*data, test=test, classes=classes)}
    elif test is not None or classes is not None:
        raise TypeError("test= and classes= go with arrays: data=(X, y)")
    sections = {
        "model": {"name": register_object(model)},
        "data": {"name": data} if isinstance(data, str) else dict(data),
        "optimizer": {"name": optimizer} if isinstance(optimizer, str) else dict(optimizer or {}),
    }
    if lr is not None:
        sections["optimizer"]["lr"] = lr
    settings.setdefault("name", type(model).__name__)  # the run folder's prefix
    finished = run(config, quiet=quiet, **{key: value for key, value in sections.items() if value}, **settings)
    model.load_state_dict(finished.predictor(finished.config.get("test_checkpoint", "best")).model.state_dict())
    return finished


def load_run(path: str | Path) -> Run:
    """The run in folder `path` (finished or not); a folder that is not a run folder is a UsageError."""
    from trainlab.run_folder import RunFolder

    return Run(RunFolder.open(Path(path)).path)


def compare(runs: Sequence[Run | str | Path], sort: str = "best_val_acc") -> pd.DataFrame:
    """`trainlab compare` as a DataFrame: one row per run, the config fields in which they differ, best
    validation and test accuracy and macro F1 (in %), epochs, training time and speed."""
    import pandas as pd

    from trainlab.tools.compare import compare_table
    from trainlab.tools.run_summary import load_run as summarise

    summaries = [summarise(r.path if isinstance(r, Run) else r) for r in runs]
    return pd.DataFrame(compare_table(summaries, sort)).set_index("run")


class Run:
    """A run folder, read when asked: its config, record, metrics and test results, and its model."""

    def __init__(self, path: Path):
        self.path = Path(path).absolute()  # the run stays found after a chdir (notebooks do that)
        self._predictor: Predictor | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def record(self) -> dict[str, Any]:
        """run.json: status, epochs, best validation score, test accuracy and macro F1, timings."""
        from trainlab.run_records import read_run_record

        return read_run_record(self.path, missing_ok=True) or {}

    @property
    def status(self) -> str | None:
        return self.record.get("status")

    @property
    def config(self) -> dict[str, Any]:
        """config.yaml as saved by the run (every field, defaults filled in)."""
        from trainlab.run_records import read_config

        return read_config(self.path) or {}

    @property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv, one row per epoch, indexed by epoch (empty before the first epoch ends)."""
        import pandas as pd

        from trainlab.run_records import read_metrics

        rows = read_metrics(self.path, missing_ok=True) or []
        frame = pd.DataFrame(rows)
        return frame.set_index("epoch") if "epoch" in frame else frame

    @property
    def test(self) -> dict[str, Any]:
        """The test split's results: accuracy, macro F1 (fractions), the checkpoint tested, and the
        classification report as a DataFrame (precision, recall, F1, support per class and averages); a binary
        task's auc, average_precision, f1, best_threshold (tuned on validation) and f1_at_best_threshold too.
        A regression's: mae, rmse, r2 and the predictions as a DataFrame (true and predicted values)."""
        import pandas as pd

        from trainlab.errors import UsageError
        from trainlab.run_records import read_classification_report

        record = self.record
        if record.get("test_acc") is None and record.get("test_r2") is None:
            status = record.get("status", "unknown")
            raise UsageError(f"{self.path} has no test results (status: {status}); `trainlab eval {self.path}` tests it")
        checkpoint = f"{record.get('tested_checkpoint')}@{record.get('tested_epoch')}"
        if record.get("task") == "regression":
            return {"mae": record["test_mae"], "rmse": record["test_rmse"], "r2": record["test_r2"], "checkpoint": checkpoint,
                    "predictions": pd.read_csv(self.path / "predictions.csv", index_col="index")}  # fmt: skip
        binary = {key.removeprefix("test_"): record.get(key) for key in
                  ("test_auc", "test_average_precision", "test_f1", "best_threshold", "test_f1_at_best_threshold")}
        report = read_classification_report(self.path, missing_ok=True) or {}
        rows = {name: values for name, values in report.items() if isinstance(values, dict)}
        return {
            "accuracy": record["test_acc"],
            "macro_f1": record.get("test_macro_f1"),
            **(binary if record.get("task") == "binary" else {}),
            "checkpoint": checkpoint,
            "report": pd.DataFrame(rows).T,
        }

    def predictor(self, checkpoint: str = "best") -> Predictor:
        """The trained model with its preprocessing (`trainlab predict`'s), loaded once."""
        from trainlab.inference import Predictor

        if self._predictor is None or self._predictor.checkpoint.stem != checkpoint:
            self._predictor = Predictor.from_run(self.path, checkpoint)
        return self._predictor

    def predict(self, inputs: Any, top: int = 1) -> list[list[tuple[str, float]]] | pd.DataFrame:
        """The `top` classes and their probabilities for each input: texts, image files or PIL images, table rows
        (a DataFrame, dicts or a CSV file). A regression's predicted values, a DataFrame of one column per target."""
        predictor = self.predictor()
        if isinstance(inputs, (str, Path)):  # one file (a CSV of rows: one prediction per row)
            inputs = [inputs]
        if predictor.is_regression:
            import pandas as pd

            values = predictor.predict(inputs).numpy()
            return pd.DataFrame(values, columns=predictor.preprocess.targets)
        ranked = predictor.top_classes(inputs if hasattr(inputs, "columns") else list(inputs), top)
        return [[(label, round(p, 6)) for label, p in classes] for classes in ranked]

    def _repr_html_(self) -> str:
        """Jupyter's view: the headline numbers, the curves and the confusion matrix."""
        record = self.record
        lines = [f"<h3>{html.escape(self.name)} <small>({html.escape(str(record.get('status', 'unknown')))})</small></h3>"]
        facts = {
            "config": record.get("config_source"),
            "epochs": f"{record.get('epochs_completed')} of {record.get('epochs')}",
            "best validation": record.get("best_val") and f"{record['best_val']:.4f} ({record.get('monitor')})",
            "test accuracy": record.get("test_acc") and f"{record['test_acc']:.2%}",
            "test macro F1": record.get("test_macro_f1") and f"{record['test_macro_f1']:.4f}",
            **{label: f"{record[key]:.4g}" for label, key in (("test ROC AUC", "test_auc"), ("test MAE", "test_mae"),
               ("test RMSE", "test_rmse"), ("test R²", "test_r2")) if isinstance(record.get(key), (int, float))},
            "training time": record.get("train_seconds") and f"{record['train_seconds']:.0f} s",
        }
        rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items() if v)
        lines.append(f"<table>{rows}</table>")
        for picture in ("curves.png", "confusion_matrix.png", "roc_curve.png", "predicted_vs_true.png", "residuals.png"):
            path = self.path / picture
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                lines.append(f'<img alt="{picture}" style="max-width:48%" src="data:image/png;base64,{data}">')
        report = self.path / "report.html"
        if report.is_file():
            lines.append(f"<p>Full report: {html.escape(str(report))}</p>")
        return "\n".join(lines)
