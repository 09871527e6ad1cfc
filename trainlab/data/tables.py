"""Table datasets: your own CSV, TSV or Parquet files (`csv`, read by `table_files.py`) and scikit-learn's bundled
tables (`sklearn_table`), their columns sorted into features and targets, checked, converted and split into train and test.

A table is user input: a missing file or column, missing cells, a column that cannot be encoded, a test class the
training rows lack are UsageErrors naming the file (exit 2). Rows are numbered as a spreadsheet's user counts them
under the header: row 1 is the first row of data. The encoding (standardised numbers, one-hot categories) is fitted
on the training rows by `TablePreprocess` (table_encoding.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.model_selection import train_test_split

from trainlab.data.base import DATASETS, SPLIT_INPUTS
from trainlab.data.table_files import TableFormat, numbered, read_table
from trainlab.errors import DataWarning, UsageError
from trainlab.registry import did_you_mean

TargetKind = Literal["classes", "values"]  # classification, or regression on one or more columns
Missing = Literal["error", "drop", "fill"]
SKLEARN_TABLES = Literal["diabetes", "breast_cancer", "wine", "iris"]

CLASS_LIMIT = 20  # an integer target with at most this many distinct values is a class label, else a value
FREE_TEXT = 10  # a text column with more distinct values than this and than half its rows is not a category
MISSING_CATEGORY = "missing"  # data.missing=fill: the category of an empty cell in a text column


@dataclass
class TableDataset:
    train: pd.DataFrame | None  # feature and target columns, indexed by row number in its file; None: built with test_only
    test: pd.DataFrame
    source: str  # in words: "table houses.csv, target price"
    target: list[str]  # one column (classes or values), or several (values)
    classes: list[str] | None  # the training rows' class names, sorted; None: the targets are values
    features: list[str]  # input columns, in the file's order
    categorical: list[str]  # the features one-hot encoded; the others are numbers
    missing: Missing = "error"
    files: dict[str, str] = field(default_factory=dict)  # split -> the file its rows came from, for messages
    dropped: dict[str, int] = field(default_factory=dict)  # file -> rows left out for empty cells (data.missing)
    empty: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> column -> empty cells found (before drop or fill)

    @property
    def kind(self) -> TargetKind:
        return "values" if self.classes is None else "classes"


# ---------------------------------------------------------------- columns


def category_name(value: Any) -> str:
    """A cell as a category or class name: 3, 3.0 and "3" are all "3"; True is "True"."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def check_columns(frame: pd.DataFrame, wanted: Sequence[str], file: str, role: str) -> None:
    """A UsageError naming the columns of `wanted` that `frame` lacks, with a suggestion and the columns it has."""
    absent = [name for name in wanted if name not in frame.columns]
    if not absent:
        return
    columns = [str(c) for c in frame.columns]
    hint = did_you_mean(absent[0], columns)
    listed = ", ".join(f"'{name}'" for name in absent)
    raise UsageError(f"{file}: no {role} column {listed}{hint}; its columns: {', '.join(columns)}")


def missing_counts(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, int]:
    """Empty cells per column of `columns` that has any, in the frame's column order."""
    counts = frame[list(columns)].isna().sum()
    return {name: int(counts[name]) for name in frame.columns if name in columns and counts[name]}


def _rows(count: int) -> str:
    return f"{count} {'row' if count == 1 else 'rows'}"


def _also(count: int) -> str:
    """What follows a message about the first of `count` rows."""
    return "" if count == 1 else f" ({_rows(count - 1)} more like it)"


def handle_missing(
    frame: pd.DataFrame, features: Sequence[str], target: Sequence[str], missing: Missing, file: str
) -> tuple[pd.DataFrame, int]:
    """data.missing on one file's rows: error (one message listing every column with empty cells), drop (rows with any
    empty cell), fill (rows without a target dropped; empty features are filled when encoded). Returns the rows kept
    and how many were dropped."""
    used = [*features, *target]
    counts = missing_counts(frame, used)
    if not counts:
        return frame, 0
    if missing == "error":
        columns = ", ".join(f"{name} ({_rows(n)})" for name, n in counts.items())
        raise UsageError(f"{file}: missing values in {len(counts)} {'column' if len(counts) == 1 else 'columns'}: "
                         f"{columns}; set data.missing: drop or fill")  # fmt: skip
    empty = frame[list(used if missing == "drop" else target)].isna().any(axis=1)
    if empty.any():
        why = "empty cells" if missing == "drop" else "no target"
        warnings.warn(f"{file}: {_rows(int(empty.sum()))} with {why} left out (data.missing: {missing})", DataWarning, stacklevel=3)
    return frame[~empty], int(empty.sum())


def target_kind(values: pd.Series) -> TargetKind:
    """Classes for text, booleans and categories, and for whole numbers with at most CLASS_LIMIT distinct values;
    values for other numbers."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classes"
    present = values.dropna()
    whole = pd.api.types.is_integer_dtype(values) or bool(np.all(np.mod(present.to_numpy(dtype=np.float64), 1) == 0))
    return "classes" if whole and present.nunique() <= CLASS_LIMIT else "values"


def sorted_classes(values: pd.Series) -> list[str]:
    """The distinct class names of a target column, numbers in numeric order, others in string order."""
    present = values.dropna().unique()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        present = np.sort(present)
        return list(dict.fromkeys(category_name(v) for v in present))
    return sorted({category_name(v) for v in present})


def as_numbers(values: pd.Series, column: str, file: str) -> pd.Series:
    """A column as float64 (empty cells NaN); a cell that is not a number is a UsageError naming its row."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(np.float64)
    numbers = pd.to_numeric(values.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        row = bad.idxmax()
        raise UsageError(f"{file}, row {row}: column '{column}' holds {values[row]!r}, not a number{_also(int(bad.sum()))}; "
                         "fix the cells, or list the column in data.categorical or data.drop")  # fmt: skip
    return numbers.astype(np.float64)


def check_categorical(values: pd.Series, column: str, file: str, role: str = "feature") -> None:
    """A text column that cannot be one-hot encoded (or be a class label): numbers mixed with text, or an identifier
    or free text (more distinct values than FREE_TEXT and than half its rows). A UsageError saying what to do."""
    present = values.dropna()
    numbers = pd.to_numeric(present.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    texts = numbers.isna()
    advice = ("list the column in data.drop" if role == "feature"
              else "fix the column (numbers written as numbers: 1200, not 1,200), or choose another data.target")  # fmt: skip
    if numbers.notna().sum() >= len(present) / 2 and texts.any():
        row = texts.idxmax()
        raise UsageError(f"{file}: {role} column '{column}' mixes numbers and text: {present[row]!r} in row {row}"
                         f"{_also(int(texts.sum()))}; empty those cells and set data.missing, or {advice}")  # fmt: skip
    distinct = present.map(category_name).nunique()
    if distinct > max(FREE_TEXT, len(present) / 2):
        what = "one-hot encoding cannot learn from" if role == "feature" else "not classes to learn"
        anyway = " (or in data.categorical to encode it anyway)" if role == "feature" else ""
        raise UsageError(f"{file}: {role} column '{column}' has {distinct} distinct values in {_rows(len(present))}: an "
                         f"identifier or free text, {what}; {advice}{anyway}")  # fmt: skip


# ---------------------------------------------------------------- datasets


@DATASETS.register("csv", injected=SPLIT_INPUTS)
def csv_table(
    *,
    path: str,
    target: str | Annotated[list[str], Field(min_length=1)],
    test: str | None = None,
    features: list[str] | None = None,
    drop: list[str] = [],  # noqa: B006
    categorical: list[str] | None = None,
    missing: Missing = "error",
    format: TableFormat = "auto",
    sha256: str | None = None,
    test_sha256: str | None = None,
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    test_split_seed: int = 0,
    test_only: bool = False,
) -> TableDataset:
    """Your own table: a CSV, TSV or Parquet file (or an https:// URL with its `sha256`), one row per example.

    `target` is the column to predict: text, booleans and whole numbers with few distinct values are classes
    (classification), other numbers and several columns are values (regression). The features are `features`, else
    every other column, less `drop`; `categorical` ones are one-hot encoded (default: the columns that are not
    numbers), the others standardised. Without a `test` file, `test_size` of the rows (stratified by class, drawn
    with `test_split_seed`, the same in every run) is the test split. `missing`: error, drop the rows, or fill
    (numbers with the training mean, text with its own category "missing").
    """
    targets = [target] if isinstance(target, str) else list(target)
    train = test_frame = None
    files: dict[str, str] = {}
    if test is None or not test_only:
        train, files["train"] = read_table(path, format=format, sha256=sha256)
    if test is not None:
        test_frame, files["test"] = read_table(test, format=format, sha256=test_sha256, what="data.test")
    files.setdefault("train", files.get("test", ""))
    files.setdefault("test", files["train"])
    reference = train if train is not None else test_frame
    chosen = _feature_columns(reference, files["train"], targets, features, drop, categorical)
    return build_table(train, test_frame, files=files, target=targets, features=chosen, categorical=categorical,
                       missing=missing, test_size=test_size, test_split_seed=test_split_seed, test_only=test_only,
                       source=f"table {files['train']}" + (f" (test {files['test']})" if files["test"] != files["train"] else "")
                       + f", target {', '.join(targets)}")  # fmt: skip


@DATASETS.register(injected=SPLIT_INPUTS)
def sklearn_table(
    *,
    table: SKLEARN_TABLES,
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    test_split_seed: int = 0,
    test_only: bool = False,
) -> TableDataset:
    """A table scikit-learn ships, read offline: diabetes, breast_cancer, wine or iris.

    `table` names it: diabetes (values to regress, 442 rows), breast_cancer (2 classes, 569 rows), wine (3 classes,
    178 rows), iris (3 classes, 150 rows). `test_size` of the rows, stratified and drawn with `test_split_seed`,
    is the test split."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{table}")(as_frame=True)
    frame = bunch.frame
    if getattr(bunch, "target_names", None) is not None and not pd.api.types.is_float_dtype(frame["target"]):
        frame = frame.assign(target=[str(bunch.target_names[i]) for i in frame["target"]])  # 0 -> "class_0"
    file = f"scikit-learn's {table} table"
    features = [c for c in frame.columns if c != "target"]
    return build_table(numbered(frame), None, files={"train": file, "test": file}, target=["target"], features=features,
                       categorical=None, missing="error", test_size=test_size, test_split_seed=test_split_seed,
                       test_only=test_only, source=file)  # fmt: skip


def _feature_columns(frame: pd.DataFrame, file: str, target: list[str], features: list[str] | None, drop: list[str],
                     categorical: list[str] | None) -> list[str]:  # fmt: skip
    check_columns(frame, target, file, "target")
    for role, names in (("feature", features or []), ("data.drop", drop), ("data.categorical", categorical or [])):
        check_columns(frame, names, file, role)
    both = sorted(set(target) & set(features or []))
    if both:
        raise UsageError(f"data.features: {', '.join(both)} is the target; a model does not get its answer as an input")
    chosen = [name for name in (features or frame.columns) if name not in target and name not in drop]
    if not chosen:
        raise UsageError(f"{file}: no feature column is left besides the target {', '.join(target)} (data.drop, data.features)")
    return chosen


def build_table(
    train: pd.DataFrame | None, test: pd.DataFrame | None, *, files: dict[str, str], target: list[str], features: list[str],
    categorical: list[str] | None, missing: Missing, test_size: float, test_split_seed: int, test_only: bool, source: str,
) -> TableDataset:  # fmt: skip
    """Check, convert and split the rows: `test` None splits `test_size` of `train` off as the test split; `train`
    None (test_only with a test file) reads only `test`. The training rows (the test rows with test_only) decide
    the target's kind, the classes and which features are categories."""
    frames: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    empty: dict[str, dict[str, int]] = {}
    for split, frame in (("train", train), ("test", test)):
        if frame is not None:
            check_columns(frame, [*target, *features], files[split], "target or feature")
            empty[files[split]] = missing_counts(frame, [*features, *target])
            kept = frame[[*features, *target]]
            frames[split], dropped[files[split]] = handle_missing(kept, features, target, missing, files[split])
            if frames[split].empty:
                raise UsageError(f"{files[split]}: no rows{' left (data.missing: drop)' if dropped[files[split]] else ''}")
    split = "train" if "train" in frames else "test"
    reference, file = frames[split], files[split]
    kinds = {_target_kind(reference[name], name, file, len(target)) for name in target}
    kind: TargetKind = "classes" if kinds == {"classes"} else "values"
    order = sorted_classes(reference[target[0]]) if kind == "classes" else []
    if categorical is None:
        categorical = [name for name in features if not pd.api.types.is_numeric_dtype(reference[name])]
        checked = [] if test_only else categorical  # a run's own record decides how its test rows are encoded
    else:
        categorical, checked = [name for name in features if name in categorical], []
    for name in checked:
        check_categorical(reference[name], name, file)
    frames = {split: _convert(frame, features, categorical, target, kind, files[split]) for split, frame in frames.items()}
    if "test" not in frames:
        frames["train"], frames["test"] = _split_off_test(frames["train"], target[0] if kind == "classes" else None,
                                                          test_size, test_split_seed, files["train"])  # fmt: skip
    classes = None
    if kind == "classes":
        present = set(frames["test" if test_only else "train"][target[0]])
        classes = [name for name in order if name in present]
        check_classes(frames["test"], target[0], classes, files["test"])
    return TableDataset(None if test_only else frames["train"], frames["test"], source,
                        target, classes, list(features), categorical, missing, dict(files), dropped, empty)  # fmt: skip


def _target_kind(values: pd.Series, name: str, file: str, count: int) -> TargetKind:
    kind = target_kind(values)
    if count > 1:  # several columns: values to regress, each a number
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise UsageError(f"{file}: target column '{name}' is not numbers; a target of several columns is values "
                             "to regress, each a number (one column of text is a class label)")  # fmt: skip
        return "values"
    if kind == "classes" and not pd.api.types.is_numeric_dtype(values):
        check_categorical(values, name, file, role="target")
    return kind


def _convert(frame: pd.DataFrame, features: list[str], categorical: list[str], target: list[str], kind: TargetKind,
             file: str) -> pd.DataFrame:  # fmt: skip
    """Categories and classes as names (an empty category cell: "missing"), numbers and values as float64."""
    columns: dict[str, pd.Series] = {}
    for name in features:
        if name in categorical:
            columns[name] = frame[name].map(lambda v: MISSING_CATEGORY if pd.isna(v) else category_name(v)).astype(object)
        else:
            columns[name] = as_numbers(frame[name], name, file)
    for name in target:
        columns[name] = frame[name].map(category_name).astype(object) if kind == "classes" else as_numbers(frame[name], name, file)
    return pd.DataFrame(columns, index=frame.index)


def _split_off_test(
    frame: pd.DataFrame, label: str | None, test_size: float, seed: int, file: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded test split of `test_size` of the rows, stratified by the `label` column when every class has two
    rows or more; both parts keep the file's order."""
    n = len(frame)
    count = math.ceil(test_size * n)  # scikit-learn's rounding of a fractional test_size
    if n < 2 or count >= n:
        raise UsageError(f"{file}: {_rows(n)} cannot be split into training and test rows (data.test_size={test_size:g}); "
                         "add rows or give a test file (data.test)")  # fmt: skip
    stratify = None
    if label is not None:
        counts = frame[label].value_counts()
        if counts.min() >= 2 and len(counts) <= min(count, n - count):
            stratify = frame[label].to_numpy()
    train, test = train_test_split(frame.index.to_numpy(), test_size=count, random_state=seed % 2**32, shuffle=True,
                                   stratify=stratify)  # fmt: skip
    return frame.loc[np.sort(train)], frame.loc[np.sort(test)]


def check_classes(frame: pd.DataFrame, label: str, classes: Sequence[str], file: str) -> None:
    """A UsageError for the first row of a class the model was not trained on, naming it and the known classes."""
    unknown = ~frame[label].isin(list(classes))
    if unknown.any():
        row = unknown.idxmax()
        raise UsageError(f"{file}, row {row}: class {frame[label][row]!r} of column '{label}' is not among the training "
                         f"rows' classes ({', '.join(classes)}){_also(int(unknown.sum()))}")  # fmt: skip
