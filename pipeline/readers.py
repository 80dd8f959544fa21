"""Reading raw directed edge lists into string/int id columns, with errors a user can act on.

Formats (``ingest.format``; ``auto`` picks by suffix):

- ``snap``: whitespace-separated ``<source> <target>`` lines, ``#`` comments, optionally gzipped,
  CRLF or LF (``.txt``, ``.txt.gz``, ``.edges``, ``.el``). SNAP ids are integers.
- ``csv`` / ``tsv``: a header row naming the source and target columns (``.csv``, ``.tsv``,
  optionally ``.gz``). Ids may be any strings (ASINs, SKUs).
- ``parquet``: the same two named columns.
- ``npz``: a gnn-benchmark ``SparseGraph`` (``cora_ml.npz``, ``citeseer.npz``): the adjacency's
  row -> column non-zeros, every row a node (isolated ones too), node features when present.

File checks (compression, encoding, the sha256 a data README lists) are
:mod:`pipeline.input_files`. The fast path parses with pandas' C reader. Only when it rejects
something does a line-by-line scan run, to name the first bad line: ``file:line: what was
expected, what was found``.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.input_files import InputError, check_compression, compression, open_text, raise_if_undecodable

FORMATS = ("snap", "csv", "tsv", "parquet", "npz")


@dataclass
class RawGraph:
    """Edges as read, before cleaning. ``source``/``target`` are int64 or str object arrays."""

    source: np.ndarray
    target: np.ndarray
    node_ids: np.ndarray | None = None  # every node's id when the format lists nodes (npz)
    features: sp.csr_matrix | None = None  # [num_nodes, F] aligned with node_ids


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    by_suffix = {".txt": "snap", ".edges": "snap", ".el": "snap", ".csv": "csv", ".tsv": "tsv",
                 ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
    if suffix not in by_suffix:
        raise InputError(
            f"{path}: unknown edge-list format '{suffix or path.name}'; expected one of "
            f"{', '.join(sorted(by_suffix))} (optionally .gz), or set ingest.format to one of "
            f"{', '.join(FORMATS)}"
        )
    return by_suffix[suffix]


def read_edges(
    path: str | Path,
    fmt: str = "auto",
    source_column: str = "source",
    target_column: str = "target",
    id_type: str = "auto",
) -> RawGraph:
    """Read a raw directed edge list. Raises :class:`InputError` naming file and line."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found (set ingest.edges in params.yaml)")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if id_type not in ("auto", "int", "string"):
        raise InputError(f"ingest.id_type must be auto, int or string, got '{id_type}'")
    integer_ids = id_type == "int" or (id_type == "auto" and fmt in ("snap", "npz"))
    if fmt == "npz":
        return _read_npz(path)
    if fmt in ("snap", "csv", "tsv"):
        check_compression(path)
    if fmt == "snap":
        source, target = _read_snap(path)
    elif fmt in ("csv", "tsv"):
        source, target = _read_delimited(path, "," if fmt == "csv" else "\t",
                                         source_column, target_column)
    else:
        source, target = _read_parquet(path, source_column, target_column)
    if len(source) == 0:
        raise InputError(f"{path}: empty: no edge lines found (expected '<source> <target>' lines)") from None
    _check_id_lengths(path, fmt, source, target)
    if integer_ids:
        source, target = _as_integer_ids(path, fmt, source, target)
    return RawGraph(source=source, target=target)


def _read_snap(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        frame = pd.read_csv(path, sep=r"\s+", comment="#", header=None, dtype=str,
                            engine="c", compression="infer" if path.suffix == ".gz" else None,
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        _raise_first_bad_snap_line(path)
        raise InputError(f"{path}: empty: no edge lines found (expected '<source> <target>' lines)") from None
    except UnicodeDecodeError:
        raise_if_undecodable(path)
        raise
    except (pd.errors.ParserError, EOFError, OSError):
        _raise_first_bad_snap_line(path)
        raise
    if (frame.shape[1] != 2 or frame.isna().any().any()
            or any(frame[column].str.contains(OTHER_WHITESPACE).any() for column in frame.columns)):
        _raise_first_bad_snap_line(path)
        raise InputError(f"{path}: expected 2 columns '<source> <target>' on every line")
    return frame[0].to_numpy(dtype=object), frame[1].to_numpy(dtype=object)


# Whitespace other than space and tab (U+00A0, U+2003, form feed, ...): pandas' reader and
# str.split() disagree on it, so an id containing it is refused rather than guessed at.
OTHER_WHITESPACE = r"[^\S \t\r\n]"


def _raise_first_bad_snap_line(path: Path) -> None:
    """Scan line by line and raise for the first line that is not two whitespace-separated ids."""
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip(" \t\r\n")
                if not stripped or stripped.startswith("#"):
                    continue
                odd = re.search(OTHER_WHITESPACE, stripped)
                if odd:
                    raise InputError(
                        f"{path}:{number}: expected ids separated by spaces or tabs, found the "
                        f"whitespace character U+{ord(odd.group()):04X} in {stripped[:80]!r}")
                fields = stripped.split()
                if len(fields) != 2:
                    raise InputError(
                        f"{path}:{number}: expected 2 whitespace-separated columns "
                        f"'<source> <target>', found {len(fields)}: {stripped[:80]!r}"
                    )
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"{path}: cannot be read as (gzipped) text: {error}") from error


def _read_delimited(path: Path, sep: str, source_column: str, target_column: str):
    try:
        # header=None: the header row fixes the field count, and a row with more fields is an
        # error (with header=0 pandas would take an extra first field as the index, shifting
        # every column: source B, target X for "A,B,X")
        frame = pd.read_csv(path, sep=sep, dtype=str, engine="c", keep_default_na=False,
                            comment=None, skip_blank_lines=True, header=None,
                            compression="gzip" if compression(path) == "gzip" else None)
    except UnicodeDecodeError:
        raise_if_undecodable(path)
        raise
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{path}: empty: expected a header row naming columns '{source_column}' and "
            f"'{target_column}', then one edge per line"
        ) from None
    except pd.errors.ParserError as error:
        line = _line_number_from_parser_error(str(error))
        where = f"{path}:{line}" if line else f"{path}"
        counts = re.search(r"Expected (\d+) fields in line \d+, saw (\d+)", str(error))
        found = f"found {counts.group(2)}" if counts else str(error)
        expected = counts.group(1) if counts else "as many"
        raise InputError(
            f"{where}: expected {expected} fields separated by {sep!r}, as in the header; {found}"
        ) from None
    # "A, B" means ids A and B: spaces and tabs around a field are not part of the id (blade
    # score strips query ids the same way)
    frame = frame.apply(lambda column: column.str.strip(" \t"))
    frame.columns = [str(name) for name in frame.iloc[0]]
    frame = frame.iloc[1:].reset_index(drop=True)
    repeated = sorted({name for name in frame.columns if list(frame.columns).count(name) > 1})
    if repeated:
        raise InputError(f"{path}:1: the header names column(s) {', '.join(map(repr, repeated))} more "
                         "than once; expected distinct names")
    _check_columns(path, list(frame.columns), source_column, target_column)
    source = frame[source_column].to_numpy(dtype=object)
    target = frame[target_column].to_numpy(dtype=object)
    empty = (frame[source_column] == "") | (frame[target_column] == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        # line = header (1) + row index + 1; blank lines are skipped by the reader, so scan.
        line = _nth_data_line(path, row)
        raise InputError(
            f"{path}:{line}: expected a value in both '{source_column}' and '{target_column}', "
            f"found an empty field (a line with one column?)"
        )
    return source, target


def _read_parquet(path: Path, source_column: str, target_column: str):
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a non-parquet file
        raise InputError(f"{path}: cannot be read as Parquet: {error}") from error
    _check_columns(path, list(frame.columns), source_column, target_column)
    if frame[[source_column, target_column]].isna().any().any():
        row = int(np.flatnonzero(frame[[source_column, target_column]].isna().any(axis=1))[0])
        raise InputError(f"{path}: row {row}: missing source or target id")
    return (frame[source_column].astype(str).to_numpy(dtype=object),
            frame[target_column].astype(str).to_numpy(dtype=object))


def _check_columns(path: Path, columns: list[str], source_column: str, target_column: str):
    missing = [name for name in (source_column, target_column) if name not in columns]
    if missing:
        raise InputError(
            f"{path}:1: header must name the source and target columns "
            f"('{source_column}', '{target_column}'; set ingest.source_column / "
            f"ingest.target_column), found {columns[:10]}"
        )


def _line_number_from_parser_error(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _nth_data_line(path: Path, row: int) -> int:
    """1-based file line of data row ``row`` (0-based, after the header; blank lines skipped)."""
    seen = -1
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 or not line.strip():
                continue
            seen += 1
            if seen == row:
                return number
    return row + 2


def _as_integer_ids(path: Path, fmt: str, source: np.ndarray, target: np.ndarray):
    """Convert string ids to int64, naming the first line whose id is not an integer.

    An id must be written as an integer (``[+-]digits``: not ``3.0`` or ``1e3``, which would
    silently become 3 and 1000) and fit int64 (an id above 2^63 - 1 would wrap around and merge
    products); otherwise the error names the line and ``ingest.id_type: string`` keeps ids as
    exact strings."""
    both = pd.Series(np.concatenate([source, target]), dtype=object).astype(str)
    digits = both.str.lstrip("+-").str.lstrip("0").str.len()
    integral = both.str.fullmatch(r"[+-]?\d+")
    # 19 significant digits may or may not fit; more never do
    fits = digits < 19
    edge = integral & (digits == 19)
    if edge.any():
        fits[edge] = [INT64_MIN <= int(token) <= INT64_MAX for token in both[edge]]
    valid = (integral & fits).to_numpy()
    if not valid.all():
        bad_position = int(np.flatnonzero(~valid)[0])
        row = bad_position % len(source)
        token = both.iloc[bad_position]
        if fmt == "parquet":  # a binary file: its rows, not lines
            where = f"{path}: row {row}"
        else:
            where = f"{path}:{_nth_snap_data_line(path, row) if fmt == 'snap' else _nth_data_line(path, row)}"
        what = ("an integer id outside int64" if integral.iloc[bad_position] else
                "a non-integer id")
        raise InputError(
            f"{where}: expected integer node ids in int64 (id_type int), found {what} "
            f"{token[:40]!r}; set ingest.id_type: string to keep ids as exact strings"
        )
    values = both.to_numpy().astype(np.int64)
    return values[: len(source)], values[len(source):]


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The catalogue stores ids as fixed-width strings: one 10,000-character id would make every
# product's entry 40 kB (10 GB for amazon0302).
MAX_ID_LENGTH = 256


def _check_id_lengths(path: Path, fmt: str, source: np.ndarray, target: np.ndarray) -> None:
    lengths = pd.Series(np.concatenate([source, target]), dtype=object).astype(str).str.len().to_numpy()
    if lengths.max(initial=0) <= MAX_ID_LENGTH:
        return
    first = int(np.flatnonzero(lengths > MAX_ID_LENGTH)[0])
    row = first % len(source)
    if fmt == "parquet":
        where = f"{path}: row {row}"
    else:
        where = f"{path}:{_nth_snap_data_line(path, row) if fmt == 'snap' else _nth_data_line(path, row)}"
    raise InputError(f"{where}: expected ids of at most {MAX_ID_LENGTH} characters, found one of "
                     f"{int(lengths[first])}")


def _nth_snap_data_line(path: Path, row: int) -> int:
    seen = -1
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            seen += 1
            if seen == row:
                return number
    return row + 1


def _read_npz(path: Path) -> RawGraph:
    try:
        archive = np.load(path, allow_pickle=False)  # a pickled object array could run code
    except Exception as error:
        raise InputError(f"{path}: cannot be read as .npz: {error}") from error
    with archive:
        keys = set(archive.files)
        try:
            adjacency = _csr_from_npz(archive, keys, ("adj_matrix.", "adj_"))
            features = _csr_from_npz(archive, keys, ("attr_matrix.", "attr_"))
        except ValueError as error:  # e.g. an object (pickled) array: refused, never unpickled
            raise InputError(f"{path}: expected numeric adjacency/attribute arrays: {error}") from None
        if adjacency is None:
            raise InputError(
                f"{path}: expected a gnn-benchmark SparseGraph with arrays adj_data/adj_indices/"
                f"adj_indptr/adj_shape (or adj_matrix.*), found {sorted(keys)[:8]}"
            )
    if adjacency.shape[0] != adjacency.shape[1]:
        raise InputError(f"{path}: adjacency must be square, got shape {adjacency.shape}")
    coo = adjacency.tocoo()
    order = np.lexsort((coo.col, coo.row))
    num_nodes = adjacency.shape[0]
    return RawGraph(
        source=coo.row[order].astype(np.int64),
        target=coo.col[order].astype(np.int64),
        node_ids=np.arange(num_nodes, dtype=np.int64),
        features=features,
    )


def _csr_from_npz(archive, keys: set[str], prefixes: tuple[str, ...]) -> sp.csr_matrix | None:
    for prefix in prefixes:
        names = [prefix + part for part in ("data", "indices", "indptr", "shape")]
        if all(name in keys for name in names):
            data, indices, indptr, shape = (archive[name] for name in names)
            return sp.csr_matrix((data, indices, indptr), shape=tuple(shape))
    return None
