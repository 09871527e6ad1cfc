"""From a table's rows to the model's inputs: the encoding fitted on the training rows, recorded in preprocess.json.

The encoding is fitted on the training rows after the validation rows are held out: numbers standardised with
their mean and std (std 0 -> 1; data.missing=fill puts the mean in an empty cell, 0 once standardised), categories
one-hot over the training rows' categories (a category they lack is all zeros, with a DataWarning). Targets are int64
class labels (N,) indexing the sorted classes, or float32 values (N, T), one column per target column.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch

from trainlab.data.preprocess import Preprocess
from trainlab.data.table_files import read_csv_text, read_table
from trainlab.data.tables import (
    MISSING_CATEGORY, Missing, TableDataset, TargetKind, as_numbers, category_name, check_classes, check_columns,
)  # fmt: skip
from trainlab.errors import DataWarning, UsageError

SHOWN_VALUES = 3  # unseen categories named in a warning


class TablePreprocess(Preprocess):
    """Rows (a DataFrame, dicts, CSV files) to float32 (N, F): the features standardised or one-hot, as fitted on
    the training rows."""

    kind, unit = "table", "rows"

    def __init__(self, classes: Sequence[str], *, features: Sequence[str], numeric: dict[str, Sequence[float]],
                 categories: dict[str, Sequence[str]], targets: Sequence[str], target_kind: TargetKind,
                 missing: Missing = "error", target_stats: dict[str, Sequence[float]] | None = None):  # fmt: skip
        super().__init__(classes)
        self.features, self.targets = list(features), list(targets)
        self.numeric = {name: (float(mean), float(std)) for name, (mean, std) in numeric.items()}  # column -> (mean, std)
        self.categories = {name: [str(c) for c in values] for name, values in categories.items()}
        if set(self.numeric) | set(self.categories) != set(self.features) or set(self.numeric) & set(self.categories):
            raise ValueError("every feature is either numeric (a mean and std) or categorical (its categories), not both")
        if target_kind not in ("classes", "values") or (target_kind == "classes") != bool(self.classes):
            raise ValueError(f"target_kind {target_kind!r} with {len(self.classes)} classes")
        self.target_kind: TargetKind = target_kind
        self.missing: Missing = missing
        self.target_stats = {name: (float(mean), float(std)) for name, (mean, std) in (target_stats or {}).items()}
        # The name of each of the F model inputs: a numeric column's name, or "column=category".
        self.columns = [f"{name}={c}" if name in self.categories else name for name in self.features
                        for c in self.categories.get(name, [None])]  # fmt: skip

    @classmethod
    def fit(cls, dataset: TableDataset, rows: pd.DataFrame) -> TablePreprocess:
        """The encoding of `dataset`'s features fitted on `rows` (its training rows)."""
        empty = [name for name in dataset.features if rows[name].isna().all()]
        if empty:
            raise UsageError(f"{dataset.files.get('train', dataset.source)}: no value in the training rows of column "
                             f"{', '.join(empty)}; list it in data.drop")  # fmt: skip
        numeric = {name: _mean_std(rows[name]) for name in dataset.features if name not in dataset.categorical}
        categories = {name: sorted(set(rows[name])) for name in dataset.categorical}
        stats = {name: _mean_std(rows[name]) for name in dataset.target} if dataset.kind == "values" else None
        return cls(dataset.classes or [], features=dataset.features, numeric=numeric, categories=categories,
                   targets=dataset.target, target_kind=dataset.kind, missing=dataset.missing, target_stats=stats)  # fmt: skip

    @property
    def outputs(self) -> int:
        return len(self.classes) if self.target_kind == "classes" else len(self.targets)

    def model_inputs(self) -> dict[str, Any]:
        return {"in_features": len(self.columns), "num_classes": self.outputs, "num_outputs": self.outputs}

    def example(self) -> torch.Tensor:
        """A row of the training means and no category: zeros (F,)."""
        return torch.zeros(len(self.columns))

    def encode(self, inputs: pd.DataFrame | Sequence[dict[str, Any] | str | Path | torch.Tensor] | str | Path) -> torch.Tensor:
        """float32 (N, F) from a DataFrame, a list of dicts (column -> cell), CSV/TSV/Parquet files (their rows one
        after another), or rows already encoded (F,) (what `gather` gives)."""
        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        if isinstance(inputs, pd.DataFrame):
            return self.encode_frame(inputs, "the rows")
        if len(inputs) == 0:
            return torch.empty(0, len(self.columns))
        if all(isinstance(x, str) for x in inputs) and set(self.features) <= set(inputs):
            raise UsageError("got a table's column names, not rows (list() of a DataFrame gives its columns): pass "
                             "frame.to_dict('records'), or the DataFrame itself to Predictor.predict")  # fmt: skip
        if all(isinstance(x, (str, Path)) for x in inputs):
            return torch.cat([self.encode_frame(*read_table(x, what="input")) for x in inputs])
        if all(isinstance(x, dict) for x in inputs):
            return self.encode_frame(pd.DataFrame(list(inputs), index=pd.RangeIndex(1, len(inputs) + 1)), "the rows")
        if all(isinstance(x, torch.Tensor) and x.shape == (len(self.columns),) for x in inputs):
            return torch.stack(list(inputs)).float()
        raise UsageError("a table model reads rows: a DataFrame, dicts of column -> value, or CSV/TSV/Parquet files")

    def encode_frame(self, frame: pd.DataFrame, source: str) -> torch.Tensor:
        """float32 (N, F) of a frame's feature columns (others ignored); `source` names it in messages."""
        check_columns(frame, self.features, source, "feature")
        if not frame.index.is_unique:  # messages name rows by their index
            frame = frame.set_axis(pd.RangeIndex(1, len(frame) + 1))
        blocks = []
        for name in self.features:
            values = frame[name]
            empty = values.isna().to_numpy()
            if empty.any() and self.missing != "fill":
                rows = frame.index[empty]
                where = f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows[:5]))}{', ...' * (len(rows) > 5)}"
                raise UsageError(f"{source}: column '{name}' is empty in {where}; the model was trained with "
                                 f"data.missing: {self.missing}, which fills no cell")  # fmt: skip
            if name in self.numeric:
                mean, std = self.numeric[name]
                numbers = as_numbers(values, name, source).fillna(mean).to_numpy(np.float64)
                blocks.append(((numbers - mean) / std)[:, None])  # (N, 1)
            else:
                blocks.append(self._one_hot(values.where(~empty, MISSING_CATEGORY), name, source))
        encoded = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))  # (N, F)
        return torch.from_numpy(encoded.astype(np.float32))

    def _one_hot(self, values: pd.Series, name: str, source: str) -> np.ndarray:
        known = self.categories[name]
        names = values.map(category_name)
        codes = pd.Categorical(names, categories=known).codes  # (N,), -1 for a category the training rows lack
        unseen = names[codes < 0]
        if len(unseen):
            shown = ", ".join(repr(v) for v in list(dict.fromkeys(unseen))[:SHOWN_VALUES])
            warnings.warn(f"{source}: column '{name}' holds {shown}, not among the training rows' categories "
                          f"({len(unseen)} of {len(names)} rows): encoded as none of them (all zeros)",
                          DataWarning, stacklevel=4)  # fmt: skip
        one_hot = np.zeros((len(names), len(known)))
        seen = codes >= 0
        one_hot[np.flatnonzero(seen), codes[seen]] = 1.0
        return one_hot  # (N, categories)

    def targets_of(self, frame: pd.DataFrame, source: str) -> torch.Tensor:
        """int64 class labels (N,), or float32 values (N, T), of a frame's target columns."""
        check_columns(frame, self.targets, source, "target")
        if self.target_kind == "values":
            values = [as_numbers(frame[name], name, source).to_numpy(np.float64) for name in self.targets]
            return torch.from_numpy(np.stack(values, axis=1).astype(np.float32))  # (N, T)
        label = self.targets[0]
        names = frame[label].map(category_name)
        check_classes(pd.DataFrame({label: names}, index=frame.index), label, self.classes, source)
        return torch.from_numpy(pd.Categorical(names, categories=self.classes).codes.astype(np.int64))

    def gather(self, arguments: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
        """Each row of CSV, TSV or Parquet files (`-`: CSV on standard input), named "FILE:ROW" (row 1: under the
        header), encoded here, file by file, so that a bad cell or an unseen category is reported with its file."""
        found: list[tuple[str, Any]] = []
        for argument in arguments:
            frame = read_csv_text(stdin) if argument == "-" else read_table(argument, what="input")[0]
            encoded = self.encode_frame(frame, "standard input" if argument == "-" else argument)  # (N, F)
            found += [(f"{argument}:{row}", x) for row, x in zip(frame.index, encoded)]
        return found

    def to_record(self) -> dict[str, Any]:
        return {
            "features": self.features, "columns": self.columns, "in_features": len(self.columns),
            "numeric": {name: {"mean": mean, "std": std} for name, (mean, std) in self.numeric.items()},
            "categories": self.categories, "missing": self.missing,
            "targets": self.targets, "target_kind": self.target_kind,
            "target_stats": {name: {"mean": mean, "std": std} for name, (mean, std) in self.target_stats.items()},
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> TablePreprocess:
        preprocess = cls(
            record["classes"], features=record["features"], categories=record["categories"], targets=record["targets"],
            numeric={name: (s["mean"], s["std"]) for name, s in record["numeric"].items()},
            target_kind=record["target_kind"], missing=record.get("missing", "error"),
            target_stats={name: (s["mean"], s["std"]) for name, s in record.get("target_stats", {}).items()},
        )  # fmt: skip
        if len(preprocess.columns) != record.get("in_features", len(preprocess.columns)):
            raise ValueError(f"in_features {record['in_features']}, but the features encode to {len(preprocess.columns)} columns")
        return preprocess


def _mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and std (population) of a column's cells, empty ones left out; a std of 0 is 1."""
    numbers = values.to_numpy(np.float64)
    mean, std = float(np.nanmean(numbers)), float(np.nanstd(numbers))
    return mean, (std if std > 0 else 1.0)
