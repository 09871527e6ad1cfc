"""The user's own labelled texts: CSV, TSV, JSON Lines or `text;label` files, local or downloaded once,
read into the same TextDataset as `emotion` (so preparation, vocabulary, predict and eval are unchanged).

The files are user input: a missing file or column, a cell that cannot be read or is empty, a label
that the training file does not have is a UsageError naming the file and the line (exit 2).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from trainlab.data.base import DATASETS, SPLIT_INPUTS, cache_root, warn
from trainlab.data.download import download
from trainlab.data.text import TextDataset, TextSplit, _clip, read_labelled_lines
from trainlab.errors import DataError, UsageError
from trainlab.registry import did_you_mean
from trainlab.text.processing import Tokenizer, tokenize

Format = Literal["auto", "csv", "tsv", "jsonl", "lines"]
# The format `auto` reads from a file's suffix; a .json file is read as JSON Lines (one object per line).
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                  ".txt": "lines"}  # fmt: skip
SPLITS = ("train", "val", "test")


@dataclass
class Rows:
    """The cells of one file, as read: texts and labels stripped, `lines[i]` where row i starts (header = line 1)."""

    path: Path
    texts: list[str]
    labels: list[str]
    lines: list[int]


def label_order(labels: Iterable[str]) -> list[str]:
    """The distinct labels sorted, numerically when every one is an integer ("2" before "10")."""
    distinct = set(labels)
    if all(re.fullmatch(r"[+-]?\d+", label) for label in distinct):
        return sorted(distinct, key=lambda label: (int(label), label))
    return sorted(distinct)


def read_rows(path: Path, format: Format = "auto", text: str = "text", label: str = "label") -> Rows:
    """The texts and labels of a file: columns `text` and `label` of a CSV, TSV or JSON Lines file,
    or `text;label` lines (`format: lines`, where the column names do not apply)."""
    if format == "auto":
        if path.suffix.lower() not in SUFFIX_FORMATS:
            raise UsageError(f"{path}: cannot tell the format from the suffix {path.suffix or '(none)'!r}; "
                             f"set data.format to csv, tsv, jsonl or lines")  # fmt: skip
        format = SUFFIX_FORMATS[path.suffix.lower()]
    if not path.is_file():
        raise UsageError(f"{path}: file not found; expected a {format} file of labelled texts")
    if format == "lines":
        classes = _line_labels(path)
        texts, index, lines = read_labelled_lines(path, classes)
        return Rows(path, texts, [classes[i] for i in index], lines)
    content = _decode(path)
    if format == "jsonl":
        rows = _read_json_lines(path, content, text, label)
    else:
        rows = _read_delimited(path, content, "\t" if format == "tsv" else ",", text, label)
    if not rows.texts:
        raise UsageError(f"{path}: no rows in the file; expected {format} rows with the columns {text!r} and {label!r}")
    return rows


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UsageError(f"{path}, line {line}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def _read_delimited(path: Path, content: str, delimiter: str, text: str, label: str) -> Rows:
    """A CSV or TSV file with a header line; quoted cells may hold the delimiter, quotes and line breaks."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    rows = Rows(path, [], [], [])
    header: list[str] | None = None
    start = 1  # the line where the next record starts
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):  # a blank line
                continue
            if header is None:
                header = [name.strip() for name in record]
                columns = [_column(path, header, name, key) for name, key in ((text, "text"), (label, "label"))]
                continue
            if len(record) != len(header):
                raise UsageError(f"{path}, line {line}: {len(record)} cells where the header has {len(header)}; "
                                 f"a text that holds {'a tab' if kind == 'TSV' else 'a comma'} or a line break must be "
                                 f"in double quotes")  # fmt: skip
            _add(rows, line, *(record[i] for i in columns), text, label)
    except csv.Error as e:
        raise UsageError(f"{path}, line {start}: not readable as {kind} ({e})") from None
    if header is None:
        raise UsageError(f"{path}: the file is empty; expected a header line naming the columns {text!r} and {label!r}")
    return rows


def _column(path: Path, header: list[str], name: str, key: str) -> int:
    if name not in header:
        raise UsageError(f"{path}: no column {name!r}{did_you_mean(name, header)}; the columns are: {', '.join(header)} "
                         f"(data.{key} names the column of the {key}s)")  # fmt: skip
    return header.index(name)


def _read_json_lines(path: Path, content: str, text: str, label: str) -> Rows:
    """One JSON object per line, blank lines skipped."""
    rows = Rows(path, [], [], [])
    for line, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}, line {line}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise UsageError(f"{where}: not JSON ({e.msg} at column {e.colno}); expected one JSON object per line") from None
        if not isinstance(record, dict):
            raise UsageError(f"{where}: a JSON {type(record).__name__}, not an object; expected one JSON object per line")
        cells = []
        for name, key in ((text, "text"), (label, "label")):
            if name not in record:
                raise UsageError(f"{where}: no key {name!r}{did_you_mean(name, record)}; the keys are: {', '.join(record)} "
                                 f"(data.{key} names the key of the {key}s)")  # fmt: skip
            cells.append(_json_cell(record[name], where, name))
        _add(rows, line, *cells, text, label)
    return rows


def _json_cell(value: object, where: str, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise UsageError(f"{where}: {name!r} is a JSON {type(value).__name__}; expected a string or a number")
    return value if isinstance(value, str) else json.dumps(value)  # 5 -> "5", as a CSV cell reads


def _add(rows: Rows, line: int, text_cell: str, label_cell: str, text: str, label: str) -> None:
    text_cell, label_cell = text_cell.strip(), label_cell.strip()
    for cell, name in ((text_cell, text), (label_cell, label)):
        if not cell:
            raise UsageError(f"{rows.path}, line {line}: the {name!r} cell is empty")
    rows.texts.append(text_cell)
    rows.labels.append(label_cell)
    rows.lines.append(line)


def _line_labels(path: Path) -> list[str]:
    """The labels of a file of `text;label` lines, for read_labelled_lines (which reports any other fault of a line)."""
    labels = set()
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
                except UnicodeDecodeError:
                    break  # read_labelled_lines names the line
                _, separator, label = line.rpartition(";")
                if separator and not label.strip():
                    raise UsageError(f"{path}, line {number}: the label after the last ';' is empty")
                if separator:
                    labels.add(label.strip())
    except OSError:
        pass  # read_labelled_lines says why the file cannot be read
    return sorted(labels)


def is_url(given: str) -> bool:
    return re.match(r"https?://", given, re.IGNORECASE) is not None


def fetch(given: str, split: str, sha256: str | None = None) -> Path:
    """The local file of data.`split`, checked against `sha256` when given; an http(s) URL is downloaded
    once into cache_root()/text_files/, named by its checksum (or the URL's hash) and its file name."""
    if is_url(given):
        name = Path(urllib.parse.unquote(urllib.parse.urlparse(given).path)).name or "data"
        key = sha256.lower()[:16] if sha256 else hashlib.sha256(given.encode()).hexdigest()[:16]
        return download(given, cache_root() / "text_files" / f"{key}-{name}", sha256=sha256)
    path = Path(given).expanduser()
    if not path.is_file():
        raise UsageError(f"{path}: file not found (data.{split})")
    if sha256:
        with open(path, "rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        if actual != sha256.lower():
            raise DataError(f"{path}: expected SHA-256 {sha256} (data.sha256.{split}), got {actual}")
    return path


@DATASETS.register(injected=SPLIT_INPUTS)
def text_files(
    *,
    train: str,
    test: str,
    val: str | None = None,
    text: str = "text",
    label: str = "label",
    format: Format = "auto",
    labels: Annotated[list[str], Field(min_length=2)] | None = None,
    tokenizer: Tokenizer = "whitespace",
    lowercase: bool = True,
    min_freq: Annotated[int, Field(ge=1)] = 1,
    max_vocab: Annotated[int, Field(ge=1)] | None = None,
    max_length: Annotated[int, Field(ge=1)] | None = None,
    sha256: dict[str, str] | None = None,
    test_only: bool = False,
) -> TextDataset:
    """Your own labelled texts: CSV, TSV, JSON Lines (columns `text` and `label`) or `text;label` files, paths or URLs.

    `format` auto reads the suffix: .csv, .tsv/.tab, .jsonl/.ndjson/.json, .txt (`text;label` lines).
    The classes are `labels`, default the training file's labels sorted (numerically when all are
    integers). Without `val`, data.val_size of train is held out. An http(s) URL is downloaded once
    into $TRAINLAB_CACHE/text_files, checked against `sha256[split]` when given. With test_only, the
    training file is not read and the classes are the test file's (a run maps them onto its own).
    """
    sha256 = sha256 or {}
    if set(sha256) - set(SPLITS):
        raise UsageError(f"data.sha256: keys are train, val and test; got {', '.join(sorted(sha256))}")
    if labels is not None and len(set(labels)) != len(labels):
        raise UsageError(f"data.labels: each label once, got {labels}")
    given = {"train": train, "val": val, "test": test}
    wanted = ["test"] if test_only else [split for split in SPLITS if given[split]]
    unverified = [given[split] for split in wanted if is_url(given[split]) and not sha256.get(split)]
    for url in unverified:
        warn(f"data: {url} is downloaded without a check of its contents; set data.sha256 to check it")
    files = {split: fetch(given[split], split, sha256.get(split)) for split in wanted}
    rows = {split: read_rows(path, format, text, label) for split, path in files.items()}

    classes = labels or label_order(rows["train" if "train" in rows else "test"].labels)
    if labels is None and "train" in rows and len(classes) < 2:
        raise UsageError(f"{files['train']}: every row has the label {classes[0]!r}; a classifier needs 2 labels or more "
                         f"(data.label names the column of the labels)")  # fmt: skip

    splits = {split: _tokenized(read, classes, tokenizer, lowercase, max_length) for split, read in rows.items()}
    source = f"text files {train}" + (f" (not checked against a SHA-256: {', '.join(unverified)})" if unverified else "")
    return TextDataset(splits.get("train"), splits.get("val"), splits["test"], list(classes), source, tokenizer, lowercase,
                       max_length, min_freq, max_vocab)  # fmt: skip


def _tokenized(rows: Rows, classes: list[str], tokenizer: Tokenizer, lowercase: bool, max_length: int | None) -> TextSplit:
    index = {name: i for i, name in enumerate(classes)}
    tokens = []
    for text, label, line in zip(rows.texts, rows.labels, rows.lines):
        where = f"{rows.path}, line {line}"
        if label not in index:
            raise UsageError(f"{where}: unknown label {label!r}{did_you_mean(label, classes)}; "
                             f"expected one of: {', '.join(classes)}")  # fmt: skip
        found = tokenize(text.lower() if lowercase else text, tokenizer)[:max_length]
        if not found:
            raise UsageError(f"{where}: the {tokenizer} tokenizer finds no token in {_clip(text)!r}")
        tokens.append(found)
    return TextSplit(rows.texts, tokens, np.array([index[label] for label in rows.labels], dtype=np.int64))
