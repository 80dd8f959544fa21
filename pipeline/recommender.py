"""The registered model: an MLflow pyfunc around the exported ONNX scorer.

    import mlflow
    model = mlflow.pyfunc.load_model("models:/blade-amazon0302@champion")
    model.predict(pd.DataFrame({"query_id": ["0", "42"]}), params={"k": 10})

Input: a DataFrame with a string column ``query_id`` (the raw ids of the edge list). Output: one
row per recommendation, ``query_id, rank, product_id, score`` (rank 1 = best, score =
``scale * s_q . t_v``); with ``params={"output": "lists"}``, one row per query instead,
``product_ids`` and ``scores`` as lists (what ``mlflow.pyfunc.spark_udf`` needs). The query
itself is never recommended; with ``params={"exclude_linked": True}`` neither is any product the
query already links to in the ingested graph. Ids the model does not know produce no rows
(empty lists with ``"lists"``; ``blade score`` counts them and writes them to a side file).

Artifacts (written by the ``export`` stage): ``scorer.onnx`` (:mod:`models.onnx_scorer`, the
embeddings inside), ``catalogue.npz`` (product ids in node order, and the CSR of known links).
ONNX Runtime runs it with the CUDA provider when one is usable and the CPU provider otherwise;
:func:`onnx_session` checks which providers the session really got and logs them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow.exceptions
import mlflow.protos.databricks_pb2
import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipeline.config import StageError

log = logging.getLogger(__name__)

# This file, pipeline/config.py and an empty pipeline/__init__.py are the registered model's code
# (register logs them as its code_paths): it loads and serves with only its requirements.txt
# (mlflow, onnxruntime, numpy, pandas), so it imports nothing else of the project. The ONNX
# scorer's input and output names, as models.onnx_scorer writes them (a test checks they agree).
SERVING_MODULES = ("__init__.py", "config.py", "recommender.py")
INPUT_QUERY, INPUT_K = "query", "k"
OUTPUT_IDS, OUTPUT_SCORES = "top_ids", "top_scores"
DEFAULT_K = 20
# What one predict call may ask (params.yaml registry.serving, stored in the model's config):
# the scorer holds a [chunk_size, N] score matrix at a time, whatever the request's size.
DEFAULT_LIMITS = {"max_k": 1000, "max_queries": 10000, "chunk_size": 256}
DEVICES = ("auto", "cpu", "cuda")
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


class ProviderError(StageError):
    """``device="cuda"`` was asked for and ONNX Runtime cannot use CUDA here."""


def onnx_session(path: str | Path, device: str = "auto"):
    """An ONNX Runtime session on ``device`` (auto: CUDA if usable, else CPU), checked.

    onnxruntime-gpu logs a CUDA load error when CUDA is requested on a machine without it; the
    request is made with ONNX Runtime's logger at FATAL for the duration, and the outcome is
    read back from ``session.get_providers()`` and logged as one line instead.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    wanted = [CPU]
    if device in ("auto", "cuda") and CUDA in ort.get_available_providers():
        wanted = [CUDA, CPU]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    finally:
        ort.set_default_logger_severity(2)
    used = session.get_providers()
    if device == "cuda" and CUDA not in used:
        raise ProviderError("device 'cuda' requested, but ONNX Runtime cannot use CUDA here "
                            f"(providers in use: {used}); use --device auto or cpu")
    if CUDA in wanted and CUDA not in used:
        log.info("onnxruntime: CUDA provider not usable on this machine (no GPU or CUDA libraries); "
                 "scoring on CPU")
    log.info("onnxruntime providers in use: %s", ", ".join(used))
    return session


class Catalogue:
    """Product ids in node order and the known links (CSR), from ``catalogue.npz``."""

    def __init__(self, path: str | Path) -> None:
        data = np.load(path, allow_pickle=False)
        self.product_ids = data["product_ids"].astype(str)
        self.index = pd.Index(self.product_ids)
        self.link_indptr = data["link_indptr"]
        self.link_indices = data["link_indices"]

    @staticmethod
    def save(path: str | Path, product_ids: np.ndarray, link_indptr: np.ndarray,
             link_indices: np.ndarray) -> None:
        np.savez(path, product_ids=np.asarray(product_ids, dtype=str),
                 link_indptr=np.asarray(link_indptr, dtype=np.int64),
                 link_indices=np.asarray(link_indices, dtype=np.int64))

    def positions(self, query_ids: np.ndarray) -> np.ndarray:
        """Node index of each id, -1 for ids not in the catalogue."""
        return self.index.get_indexer(np.asarray(query_ids, dtype=str))

    def links(self, node: int) -> np.ndarray:
        return self.link_indices[self.link_indptr[node]:self.link_indptr[node + 1]]


class Recommender:
    """Top-k for node indices, the query excluded, optionally without its known links.

    Subclasses supply :meth:`raw_top_k` (best ``ask`` targets, the query already excluded).
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def raw_top_k(self, nodes: np.ndarray, ask: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def top_k(self, nodes: np.ndarray, k: int, exclude_linked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [Q, k'], scores [Q, k'])`` for node indices ``nodes``, best first; k' = k unless
        the catalogue is too small to fill k after the exclusions."""
        num_nodes = len(self.catalogue.product_ids)
        nodes = np.asarray(nodes, dtype=np.int64)
        extra = int(np.diff(self.catalogue.link_indptr)[nodes].max()) if exclude_linked and len(nodes) else 0
        ask = min(k + extra, num_nodes - 1)
        ids, scores = self.raw_top_k(nodes, ask)
        if not extra:
            return ids[:, :k], scores[:, :k]
        allowed = np.stack([~np.isin(ids[row], self.catalogue.links(node)) for row, node in enumerate(nodes)])
        width = min(k, int(allowed.sum(axis=1).min()))
        order = np.argsort(~allowed, axis=1, kind="stable")[:, :width]  # allowed first, rank kept
        return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)

    def recommendations(self, query_ids: np.ndarray, nodes: np.ndarray, k: int,
                        exclude_linked: bool = False) -> pd.DataFrame:
        """Rows ``query_id, rank, product_id, score`` for known queries (``nodes >= 0``)."""
        ids, scores = self.top_k(nodes, k, exclude_linked)
        width = ids.shape[1]
        return pd.DataFrame({
            "query_id": np.repeat(np.asarray(query_ids, dtype=str), width),
            "rank": np.tile(np.arange(1, width + 1, dtype=np.int64), len(nodes)),
            "product_id": self.catalogue.product_ids[ids.reshape(-1)],
            "score": scores.reshape(-1).astype(np.float64),
        })


class OnnxRecommender(Recommender):
    """Exact top-k through the exported ONNX scorer (``scorer_path``, for re-opening or FAISS)."""

    def __init__(self, session, catalogue: Catalogue, scorer_path: str | Path | None = None) -> None:
        super().__init__(catalogue)
        self.session = session
        self.scorer_path = scorer_path

    def raw_top_k(self, nodes: np.ndarray, ask: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.session.run([OUTPUT_IDS, OUTPUT_SCORES],
                                       {INPUT_QUERY: nodes, INPUT_K: np.array([ask], dtype=np.int64)})
        return ids, scores


class FaissRecommender(Recommender):
    """Approximate top-k from a FAISS inverted-file inner-product index over the targets.

    For catalogues too large to score exactly: ``IndexIVFFlat`` with ``nlist`` cells (default
    4 sqrt(N)), of which ``nprobe`` are searched per query. The embeddings (and the walk
    channel's tables, where the model has one) come out of the ONNX scorer's initialisers, so it
    serves exactly the registered model: the index proposes ``ask + 1`` targets, the query's walk
    table adds its own, and all of them are scored exactly. Report its recall@k against exact
    scoring with :func:`recall_at_k`.
    """

    def __init__(self, scorer_path: str | Path, catalogue: Catalogue, nlist: int | None = None,
                 nprobe: int = 16) -> None:
        import faiss
        import onnx
        from onnx import numpy_helper

        super().__init__(catalogue)
        graph = onnx.load(str(scorer_path)).graph
        weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        self.source = np.ascontiguousarray(weights["source"], dtype=np.float32)
        target = np.ascontiguousarray(weights["target_t"].T, dtype=np.float32)
        self.target = target
        self.scale = float(weights["scale"])
        self.walk_index = weights.get("walk_index")  # [N, w] int32, or None without a walk channel
        self.walk_bonus = weights.get("walk_bonus")
        nlist = min(int(nlist or max(1, int(4 * np.sqrt(len(target))))), len(target))
        quantizer = faiss.IndexFlatIP(target.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, target.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        self.index.train(target)
        self.index.add(target)
        self.index.nprobe = min(nprobe, nlist)
        self._quantizer = quantizer  # the index refers to it: keep it alive

    def raw_top_k(self, nodes: np.ndarray, ask: int) -> tuple[np.ndarray, np.ndarray]:
        if self.walk_index is not None:
            ids, scores = self._with_walk_channel(nodes, ask)
        else:
            scores, ids = self.index.search(self.source[nodes], ask + 1)
            own = ids == nodes[:, None]
            # drop the query itself where found, else the last of the ask + 1
            drop = np.where(own.any(axis=1), own.argmax(axis=1), ask)
            keep = np.ones_like(own)
            keep[np.arange(len(nodes)), drop] = False
            ids = ids[keep].reshape(len(nodes), ask)
            scores = (scores[keep].reshape(len(nodes), ask) * self.scale).astype(np.float32)
        # The probed cells can hold fewer than ask products (FAISS pads with id -1): those
        # queries are scored exactly, so no padding is ever returned as a product.
        short = (ids < 0).any(axis=1) | ~np.isfinite(scores).all(axis=1)
        if short.any():
            ids[short], scores[short] = self._exact(nodes[short], ask)
        return ids, scores

    def _exact(self, nodes: np.ndarray, ask: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``ask`` of ``nodes`` over the whole catalogue (walk bonus included)."""
        scores = self.scale * (self.source[nodes] @ self.target.T)
        if self.walk_index is not None:
            np.add.at(scores, (np.arange(len(nodes))[:, None], self.walk_index[nodes].astype(np.int64)),
                      self.walk_bonus[nodes])
        scores[np.arange(len(nodes)), nodes] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :ask]
        return best, np.take_along_axis(scores, best, 1).astype(np.float32)

    def _with_walk_channel(self, nodes: np.ndarray, ask: int) -> tuple[np.ndarray, np.ndarray]:
        """The index's ``ask + 1`` candidates and the walk table's, scored exactly, best ``ask``."""
        _, found = self.index.search(self.source[nodes], ask + 1)
        walk_ids = self.walk_index[nodes].astype(np.int64)
        candidates = np.concatenate([found, walk_ids], axis=1)  # -1: the index found fewer
        safe = np.maximum(candidates, 0)
        scores = self.scale * np.einsum("qd,qcd->qc", self.source[nodes], self.target[safe])
        match = candidates[:, :, None] == walk_ids[:, None, :]
        scores = scores + (match * self.walk_bonus[nodes][:, None, :]).sum(axis=2)
        order = np.argsort(candidates, axis=1, kind="stable")
        ordered = np.take_along_axis(candidates, order, 1)
        repeat = np.zeros_like(ordered, dtype=bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        duplicate = np.zeros_like(repeat)
        np.put_along_axis(duplicate, order, repeat, 1)
        invalid = duplicate | (candidates < 0) | (candidates == nodes[:, None])
        scores = np.where(invalid, -np.inf, scores).astype(np.float32)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :ask]
        return np.take_along_axis(candidates, best, 1), np.take_along_axis(scores, best, 1)


def recall_at_k(approximate: Recommender, exact: Recommender, nodes: np.ndarray, k: int) -> float:
    """Share of the exact top-k that the approximate top-k also returns, over ``nodes``."""
    approx_ids, _ = approximate.top_k(nodes, k)
    exact_ids, _ = exact.top_k(nodes, k)
    hits = sum(len(np.intersect1d(a, e)) for a, e in zip(approx_ids, exact_ids))
    return hits / max(exact_ids.size, 1)


class RequestError(mlflow.exceptions.MlflowException):
    """A request the model refuses (bad k, too many queries, a missing column): one sentence,
    answered by ``mlflow models serve`` with HTTP 400 and no stack trace."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=mlflow.protos.databricks_pb2.INVALID_PARAMETER_VALUE)


class BladeRecommender(mlflow.pyfunc.PythonModel):
    """pyfunc: ``query_id`` -> ``query_id, rank, product_id, score`` (see the module docstring).

    Limits (the model's config, from params.yaml ``registry.serving``): ``k`` from 1 to
    ``max_k``, at most ``max_queries`` rows per call, scored ``chunk_size`` queries at a time."""

    def load_context(self, context) -> None:
        scorer = context.artifacts["scorer"]
        self.recommender = OnnxRecommender(onnx_session(scorer), Catalogue(context.artifacts["catalogue"]),
                                           scorer)
        self.limits = DEFAULT_LIMITS | dict(getattr(context, "model_config", None) or {})

    def checked_request(self, model_input: pd.DataFrame, params: dict | None) -> tuple[int, bool, str]:
        """``(k, exclude_linked, output)`` of a request, or :class:`RequestError` naming the problem."""
        params = params or {}
        limits = getattr(self, "limits", DEFAULT_LIMITS)
        if not isinstance(model_input, pd.DataFrame) or "query_id" not in model_input.columns:
            got = list(model_input.columns) if isinstance(model_input, pd.DataFrame) else type(model_input)
            raise RequestError(f"input needs a column 'query_id', got {got}")
        if len(model_input) > limits["max_queries"]:
            raise RequestError(f"at most {limits['max_queries']} query ids per request, got "
                               f"{len(model_input)}; split the request (or use `blade score` for batches)")
        k = params.get("k", DEFAULT_K)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limits["max_k"]:
            raise RequestError(f"params k must be an integer from 1 to {limits['max_k']}, got {k!r}")
        exclude_linked = params.get("exclude_linked", False)
        if not isinstance(exclude_linked, (bool, np.bool_)):
            raise RequestError(f"params exclude_linked must be true or false, got {exclude_linked!r}")
        output = params.get("output", "rows")
        if output not in ("rows", "lists"):
            raise RequestError(f"params output must be 'rows' or 'lists', got {output!r}")
        return int(k), bool(exclude_linked), str(output)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k, exclude_linked, output = self.checked_request(model_input, params)
        chunk = int(getattr(self, "limits", DEFAULT_LIMITS)["chunk_size"])
        query_ids = model_input["query_id"].astype(str).to_numpy()
        nodes = self.recommender.catalogue.positions(query_ids)
        known = np.flatnonzero(nodes >= 0)
        if output == "lists":  # one row per input row, as Spark UDFs need (empty for unknown ids)
            product_ids = [[] for _ in query_ids]
            score_lists = [[] for _ in query_ids]
            for start in range(0, len(known), chunk):
                positions = known[start:start + chunk]
                ids, scores = self.recommender.top_k(nodes[positions], k, exclude_linked)
                for row, position in enumerate(positions):
                    product_ids[position] = self.recommender.catalogue.product_ids[ids[row]].tolist()
                    score_lists[position] = scores[row].astype(float).tolist()
            return pd.DataFrame({"product_ids": product_ids, "scores": score_lists})
        frames = [self.recommender.recommendations(query_ids[known[start:start + chunk]],
                                                   nodes[known[start:start + chunk]], k, exclude_linked)
                  for start in range(0, len(known), chunk)]
        if not frames:
            return self.recommender.recommendations(query_ids[:0], nodes[:0], k, exclude_linked)
        return pd.concat(frames, ignore_index=True)
