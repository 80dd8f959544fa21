"""Reading raw directed edge lists into string/int id columns, with errors a user can act on.

Formats (``ingest.format``; ``auto`` picks by suffix):

- ``snap``: whitespace-separated ``<source> <target>`` lines, ``#`` comments, optionally gzipped,
  CRLF or LF (``.txt``, ``.txt.gz``, ``.edges``, ``.el``). SNAP ids are integers.
- ``csv`` / ``tsv``: a header row naming the source and target columns (``.csv``, ``.tsv``,
  optionally ``.gz``). Ids may be any strings (ASINs, SKUs).
- ``parquet``: the same two named columns.
- ``npz``: a gnn-benchmark ``SparseGraph`` (``cora_ml.npz``, ``citeseer.npz``): the adjacency's
  row -> column non-zeros, every row a node (isolated ones too), node features when present.

The fast path parses with pandas' C reader. Only when it rejects something does a line-by-line
scan run, to name the first bad line: ``file:line: what was expected, what was found``.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

FORMATS = ("snap", "csv", "tsv", "parquet", "npz")


class InputError(ValueError):
    """Bad raw input. The message names the file (and line) and what was expected."""


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
    if fmt == "snap":
        source, target = _read_snap(path)
    elif fmt in ("csv", "tsv"):
        source, target = _read_delimited(path, "," if fmt == "csv" else "\t",
                                         source_column, target_column)
    else:
        source, target = _read_parquet(path, source_column, target_column)
    if len(source) == 0:
        raise InputError(f"{path}: empty: no edge lines found (expected '<source> <target>' lines)") from None
    if integer_ids:
        source, target = _as_integer_ids(path, fmt, source, target)
    return RawGraph(source=source, target=target)


def _open_text(path: Path):
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def _read_snap(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        frame = pd.read_csv(path, sep=r"\s+", comment="#", header=None, dtype=str,
                            engine="c", compression="infer" if path.suffix == ".gz" else None,
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        _raise_first_bad_snap_line(path)
        raise InputError(f"{path}: empty: no edge lines found (expected '<source> <target>' lines)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError):
        _raise_first_bad_snap_line(path)
        raise
    if frame.shape[1] != 2 or frame.isna().any().any():
        _raise_first_bad_snap_line(path)
    return frame[0].to_numpy(dtype=object), frame[1].to_numpy(dtype=object)


def _raise_first_bad_snap_line(path: Path) -> None:
    """Scan line by line and raise for the first line that is not two whitespace-separated ids."""
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
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
        frame = pd.read_csv(path, sep=sep, dtype=str, engine="c", keep_default_na=False,
                            comment=None, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{path}: empty: expected a header row naming columns '{source_column}' and "
            f"'{target_column}', then one edge per line"
        ) from None
    except pd.errors.ParserError as error:
        line = _line_number_from_parser_error(str(error))
        where = f"{path}:{line}" if line else f"{path}"
        raise InputError(
            f"{where}: expected {2 if sep else ''} columns separated by {sep!r} as in the "
            f"header; {error}"
        ) from error
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
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 or not line.strip():
                continue
            seen += 1
            if seen == row:
                return number
    return row + 2


def _as_integer_ids(path: Path, fmt: str, source: np.ndarray, target: np.ndarray):
    """Convert string ids to int64, naming the first line whose id is not an integer."""
    both = pd.Series(np.concatenate([source, target]))
    numeric = pd.to_numeric(both, errors="coerce")
    integral = numeric.notna() & (numeric == numeric.round())
    if not integral.all():
        bad_position = int(np.flatnonzero(~integral.to_numpy())[0])
        row = bad_position % len(source)
        token = both.iloc[bad_position]
        line = _nth_snap_data_line(path, row) if fmt == "snap" else _nth_data_line(path, row)
        raise InputError(
            f"{path}:{line}: expected integer node ids (id_type int), found {token!r}; "
            f"set ingest.id_type: string for product ids such as ASINs"
        )
    values = numeric.to_numpy(dtype=np.int64)
    return values[: len(source)], values[len(source):]


def _nth_snap_data_line(path: Path, row: int) -> int:
    seen = -1
    with _open_text(path) as handle:
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
        archive = np.load(path, allow_pickle=True)
    except Exception as error:
        raise InputError(f"{path}: cannot be read as .npz: {error}") from error
    with archive:
        keys = set(archive.files)
        adjacency = _csr_from_npz(archive, keys, ("adj_matrix.", "adj_"))
        if adjacency is None:
            raise InputError(
                f"{path}: expected a gnn-benchmark SparseGraph with arrays adj_data/adj_indices/"
                f"adj_indptr/adj_shape (or adj_matrix.*), found {sorted(keys)[:8]}"
            )
        features = _csr_from_npz(archive, keys, ("attr_matrix.", "attr_"))
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


# --- checksums -------------------------------------------------------------------------------

_README_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|[^|]*\|\s*`([0-9a-f]{64})`\s*\|", re.MULTILINE)


def expected_sha256(path: Path) -> str | None:
    """The sha256 that the README.md beside ``path`` lists for it, or None if none is listed."""
    readme = path.parent / "README.md"
    if not readme.is_file():
        return None
    for name, digest in _README_ROW.findall(readme.read_text(encoding="utf-8")):
        if name == path.name:
            return digest
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | Path) -> str | None:
    """Check ``path`` against its README's sha256. Returns the digest checked, None if unlisted."""
    path = Path(path)
    expected = expected_sha256(path)
    if expected is None:
        return None
    actual = sha256_of(path)
    if actual != expected:
        raise InputError(
            f"{path}: sha256 {actual} does not match {expected} listed in "
            f"{path.parent / 'README.md'}; the file is corrupt or was changed (dvc pull restores it)"
        )
    return actual
