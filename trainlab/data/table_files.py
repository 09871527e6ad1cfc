"""Reading a table file into a DataFrame: CSV, TSV or Parquet, local or fetched from https:// and checked against
its SHA-256. Rows are numbered as a spreadsheet's user counts them under the header: row 1 is the first row of data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from trainlab.data.base import DATA_ENV, cache_root, data_root
from trainlab.data.download import download
from trainlab.errors import UsageError

TableFormat = Literal["auto", "csv", "tsv", "parquet"]
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")  # pandas reads CSV files compressed so
SHA256_KEYS = {"data.path": "data.sha256", "data.test": "data.test_sha256"}  # a URL's config key -> its checksum's



def read_table(
    path: str | Path, *, format: TableFormat = "auto", sha256: str | None = None, what: str = "data.path"
) -> tuple[pd.DataFrame, str]:
    """A table file as a DataFrame indexed by row number (1 = the first row under the header), and its name for
    messages. An https:// URL is downloaded once into $TRAINLAB_CACHE/tables and checked against `sha256`."""
    file = _fetch(str(path), sha256, what) if str(path).startswith(("https://", "http://")) else _local(path, what)
    kind = format if format != "auto" else _format_of(file, what)
    try:
        if kind == "parquet":
            frame = _read_parquet(file)
        else:
            frame = pd.read_csv(file, sep="\t" if kind == "tsv" else ",", skipinitialspace=True)
    except ImportError as e:
        raise UsageError(f"{file}: reading Parquet needs pyarrow ({e}); pip install 'trainlab[tables]'") from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{file}: the file is empty; expected a header line of column names, then rows") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 CSV") from None
    except (OSError, ValueError) as e:  # pandas' ParserError and pyarrow's ArrowInvalid are ValueErrors
        raise UsageError(f"{file}: not a readable {kind.upper()} file ({' '.join(str(e).split())})") from None
    return numbered(frame), str(path) if str(path).startswith("https://") else str(file)


def read_csv_text(stream: Any, name: str = "standard input") -> pd.DataFrame:
    """CSV rows from an open text stream (`-` on a command line), numbered like a file's."""
    try:
        return numbered(pd.read_csv(stream, skipinitialspace=True))
    except pd.errors.EmptyDataError:
        raise UsageError(f"{name}: no CSV rows; expected a header line of column names, then rows") from None
    except ValueError as e:
        raise UsageError(f"{name}: not readable CSV ({' '.join(str(e).split())})") from None


def _read_parquet(file: Path) -> pd.DataFrame:
    import pyarrow.parquet  # noqa: F401  (an ImportError here says what to install)

    return pd.read_parquet(file)


def numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with stripped column names ("price " in a header is "price"), indexed by row number from 1."""
    frame = frame.copy()
    frame.columns = [str(name).strip() for name in frame.columns]
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame


def _local(path: str | Path, what: str) -> Path:
    """`path` as given (relative to the working directory), else under $TRAINLAB_DATA."""
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, data_root() / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
        if candidate.is_dir():
            raise UsageError(f"{what}: {candidate} is a folder; expected a .csv, .tsv or .parquet file")
    raise UsageError(f"{what}: table file '{path}' not found: looked for {' and '.join(map(str, candidates))} (${DATA_ENV})")


def _fetch(url: str, sha256: str | None, what: str) -> Path:
    if not url.startswith("https://") or what not in SHA256_KEYS:
        raise UsageError(f"{what}: {url}: a table is fetched from an https:// URL given as data.path or data.test, "
                         "with its SHA-256; download it and give the file")  # fmt: skip
    if not sha256:
        raise UsageError(f"{what}: {url} is fetched only with a SHA-256 to check it against: set {SHA256_KEYS[what]} "
                         "(`sha256sum FILE` of a copy you trust)")  # fmt: skip
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "table"
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    return download(url, cache_root() / "tables" / f"{key}-{name}", sha256=sha256.lower())


def _format_of(file: Path, what: str) -> TableFormat:
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    if suffixes and suffixes[-1] in SUFFIXES:
        return SUFFIXES[suffixes[-1]]  # type: ignore[return-value]
    raise UsageError(f"{what}: cannot tell the format of {file} from its name (.csv, .tsv or .parquet); "
                     "set data.format: csv, tsv or parquet")  # fmt: skip
