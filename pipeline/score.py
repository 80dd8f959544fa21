"""``blade score``: batch recommendations from a registered model, written to Parquet.

    blade score --model models:/blade-amazon0302@champion --input queries.csv --output recs.parquet
    blade score --model models:/blade-amazon0302/3 --input queries.parquet --output recs.parquet --k 10
    blade score                            # the DVC stage: params.yaml `score` (every product)

Input: CSV or Parquet with a ``query_id`` column (or a single column), ids as in the raw data
(read as strings), or ``all`` for every product in the catalogue. The model is loaded by
registry URI (alias or version) and runs in ONNX Runtime (CUDA when usable, else CPU; the
providers in use are logged). Queries stream through in chunks with a progress bar.

Output: ``query_id, rank, product_id, score`` in Parquet, written to a temporary file and
renamed at the end, so a failed run leaves no partial file. Query ids the model does not know
are counted, logged and written to ``<output stem>.unknown.csv``; they never stop the run.
The query itself is never recommended; ``--exclude-linked`` also drops the products it already
links to.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from pipeline import tracking
from pipeline.config import section, with_values
from pipeline.readers import InputError
from pipeline.recommender import (
    DEVICES,
    BladeRecommender,
    FaissRecommender,
    OnnxRecommender,
    Recommender,
    onnx_session,
    recall_at_k,
)
from pipeline.settings import check_params
from pipeline.storage import atomic_path, whole_outputs, write_json

log = logging.getLogger(__name__)

QUERY_COLUMN = "query_id"
ALL = "all"
METRICS_PATH = Path("metrics/score.json")
SCHEMA = pa.schema([("query_id", pa.string()), ("rank", pa.int64()), ("product_id", pa.string()),
                    ("score", pa.float64())])


# command-line options that stand for the score.* key of the same name
CLI_OPTIONS = ("model", "input", "output", "k", "exclude_linked", "device", "chunk_size", "index",
               "nlist", "nprobe")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="registry URI, e.g. models:/blade-amazon0302@champion "
                        "(default: score.model)")
    parser.add_argument("--input", help="CSV/Parquet of query ids, or 'all' (default: score.input)")
    parser.add_argument("--output", help="Parquet file to write (default: score.output)")
    parser.add_argument("--k", type=int, help="recommendations per query (default: score.k)")
    parser.add_argument("--exclude-linked", action="store_true", default=None,
                        help="also drop products the query already links to")
    parser.add_argument("--device", choices=DEVICES, help="auto: CUDA when usable, else CPU")
    parser.add_argument("--chunk-size", type=int, help="queries per ONNX Runtime call")
    parser.add_argument("--index", choices=("exact", "ivf"), help="exact: ONNX Runtime over every "
                        "product (default); ivf: approximate FAISS inverted-file index (huge catalogues)")
    parser.add_argument("--nlist", type=int, help="ivf: cells (default 4 sqrt(N))")
    parser.add_argument("--nprobe", type=int, help="ivf: cells searched per query (default 16)")


def read_queries(path: Path) -> np.ndarray:
    """Query ids as strings from CSV or Parquet; clear errors for a missing, empty or bad file."""
    if not path.is_file():
        raise InputError(f"{path}: query file not found")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".txt", ".tsv"):
        raise InputError(f"{path}: unknown query file type {suffix!r}; expected .csv, .tsv or .parquet")
    unreadable = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError)
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False)
    except unreadable as error:
        raise InputError(f"{path}: cannot read query ids ({error}); expected a CSV/Parquet file with a "
                         f"'{QUERY_COLUMN}' column") from error
    if QUERY_COLUMN in frame.columns:
        column = frame[QUERY_COLUMN]
    elif len(frame.columns) == 1:
        column = frame.iloc[:, 0]
    else:
        raise InputError(f"{path}: expected a '{QUERY_COLUMN}' column (or a single column), "
                         f"got {list(frame.columns)}")
    missing = column.isna() | (column.astype(str).str.strip() == "")
    if missing.any():
        line = int(np.flatnonzero(missing.to_numpy())[0]) + 2  # header is line 1
        raise InputError(f"{path}, line {line}: empty query id")
    return column.astype(str).str.strip().to_numpy()


def resolved_version(model_uri: str) -> int | None:
    """The registered version ``models:/<name>@<alias>`` or ``models:/<name>/<n>`` points at now
    (None for a URI outside the registry), recorded with the scores so the run says which model
    made them."""
    from mlflow.exceptions import MlflowException

    if not model_uri.startswith("models:/"):
        return None
    name, at, alias = model_uri.removeprefix("models:/").partition("@")
    try:
        if at:
            return int(tracking.client().get_model_version_by_alias(name, alias).version)
        return int(name.rsplit("/", 1)[1])
    except (MlflowException, IndexError, ValueError):
        return None


def load_recommender(model_uri: str, device: str) -> OnnxRecommender:
    import mlflow

    tracking.client()  # the project's store (or MLFLOW_TRACKING_URI)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"{model_uri}: no such registered model or alias in {mlflow.get_registry_uri()} "
                         f"({first}); `dvc repro` registers one") from None
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, BladeRecommender):
        raise InputError(f"{model_uri} is not a BLADE recommender (got {type(python_model).__name__})")
    recommender = python_model.recommender
    if device != "auto":  # the pyfunc opened its session with "auto": re-open on the requested device
        recommender.session = onnx_session(recommender.scorer_path, device)
    return recommender


def score(recommender: Recommender, query_ids: np.ndarray, output: Path, k: int,
          exclude_linked: bool = False, chunk_size: int = 4096, progress: bool = True) -> dict[str, Any]:
    """Write recommendations for ``query_ids`` to ``output`` (atomically); returns counts."""
    nodes = recommender.catalogue.positions(query_ids)
    known = nodes >= 0
    unknown_ids = query_ids[~known]
    unknown_path = output.with_name(f"{output.stem}.unknown.csv")
    started = time.perf_counter()
    rows = 0
    with atomic_path(output) as tmp:
        with pq.ParquetWriter(tmp, SCHEMA) as writer:
            known_ids, known_nodes = query_ids[known], nodes[known]
            bar = tqdm(total=len(known_nodes), unit="query", disable=not progress, desc="score")
            for start in range(0, len(known_nodes), chunk_size):
                frame = recommender.recommendations(known_ids[start:start + chunk_size],
                                                    known_nodes[start:start + chunk_size], k, exclude_linked)
                writer.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False))
                rows += len(frame)
                bar.update(min(chunk_size, len(known_nodes) - start))
            bar.close()
    if len(unknown_ids):
        with atomic_path(unknown_path) as tmp:
            pd.DataFrame({QUERY_COLUMN: unknown_ids}).to_csv(tmp, index=False)
        log.warning("score: %d of %d query ids are not in the model's catalogue; written to %s",
                    len(unknown_ids), len(query_ids), unknown_path)
    else:
        unknown_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return {"queries": int(len(query_ids)), "scored": int(known.sum()), "unknown": int(len(unknown_ids)),
            "rows": rows, "k": k, "exclude_linked": exclude_linked, "seconds": round(seconds, 2),
            "queries_per_second": round(int(known.sum()) / seconds, 1) if seconds > 0 else None,
            "output": str(output), "unknown_file": str(unknown_path) if len(unknown_ids) else None}


@whole_outputs
def main(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    for option in CLI_OPTIONS:  # each given option is checked like the score.* key it replaces
        value = getattr(args, option, None)
        if value is not None:
            params = check_params(with_values(params, {f"score.{option}": value}),
                                  f"--{option.replace('_', '-')} {value}")
    config = section(params, "score")
    model_uri = str(config["model"])
    source = str(config["input"])
    output = Path(config["output"])
    k = int(config["k"])
    exclude_linked = bool(config["exclude_linked"])
    device = str(config["device"])
    chunk = int(config["chunk_size"])
    if output.is_dir():
        raise InputError(f"{output}: is a directory; --output names the Parquet file to write")
    query_ids = None if source == ALL else read_queries(Path(source))  # a bad file fails before loading
    exact = load_recommender(model_uri, device)
    if query_ids is None:
        query_ids = exact.catalogue.product_ids
    if len(query_ids) == 0:
        log.warning("score: %s holds no query ids; writing an empty result", source)
    index = str(config["index"])
    recommender, recall = exact, None
    if index == "ivf":
        recommender = FaissRecommender(exact.scorer_path, exact.catalogue, config["nlist"],
                                       int(config["nprobe"]))
        sample = np.random.default_rng(0).choice(len(exact.catalogue.product_ids),
                                                 min(1000, len(exact.catalogue.product_ids)), replace=False)
        recall = recall_at_k(recommender, exact, sample, k)
        log.info("score: FAISS IVF index (nlist %d, nprobe %d): recall@%d %.4f against exact scoring on %d "
                 "seeded queries", recommender.index.nlist, recommender.index.nprobe, k, recall, len(sample))
    result = score(recommender, query_ids, output, k, exclude_linked, chunk)
    result.update({"model": model_uri, "model_version": resolved_version(model_uri), "index": index,
                   "providers": exact.session.get_providers()})
    if recall is not None:
        result["recall_at_k_vs_exact"] = round(recall, 4)
    if args.output is None and args.input is None:  # the DVC stage: keep its metrics
        write_json(METRICS_PATH, result)
    log.info("score: %d queries (%d unknown) -> %s rows in %s, %.1f s (%s queries/s) on %s",
             result["queries"], result["unknown"], f"{result['rows']:,}", output, result["seconds"],
             result["queries_per_second"], ", ".join(result["providers"]))
    return result
