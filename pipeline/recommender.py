"""The registered model: an MLflow pyfunc that turns query product ids into top-k recommendations.

    import mlflow
    model = mlflow.pyfunc.load_model("models:/blade-amazon0302@champion")
    model.predict(pd.DataFrame({"query_id": ["0", "42"]}), params={"k": 10})

Input: a DataFrame with a string column ``query_id`` (the raw ids of the edge list). Output: one
row per recommendation, ``query_id, rank, product_id, score`` (rank 1 = best, score =
``scale * s_q . t_v``), the query itself excluded. Ids the model does not know produce no rows
(``blade score`` counts and reports them).

The model holds precomputed embeddings (``embeddings.npz``: source, target, scale, product ids);
the GNN is not needed to serve.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

DEFAULT_K = 20
CHUNK = 256  # queries per matrix product: 256 x 262,111 float32 scores = 268 MB at a time


def save_embedding_artifact(path: Path, source: torch.Tensor, target: torch.Tensor, scale: float,
                            product_ids: np.ndarray) -> None:
    np.savez(path, source=source.numpy().astype(np.float32), target=target.numpy().astype(np.float32),
             scale=np.float32(scale), product_ids=np.asarray(product_ids, dtype=str))


class TopKScorer:
    """Exact top-k over all targets for source embeddings, in chunks, the query excluded."""

    def __init__(self, source: np.ndarray, target: np.ndarray, scale: float) -> None:
        self.source = torch.from_numpy(np.ascontiguousarray(source))
        self.target_t = torch.from_numpy(np.ascontiguousarray(target)).T.contiguous()
        self.scale = float(scale)

    def top_k(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [Q, k], scores [Q, k])`` for node indices ``queries``; best first."""
        k = min(k, self.target_t.shape[1] - 1)
        ids, scores = [], []
        with torch.inference_mode():
            for start in range(0, len(queries), CHUNK):
                chunk = torch.from_numpy(np.asarray(queries[start:start + CHUNK], dtype=np.int64))
                block = (self.source[chunk] @ self.target_t).mul_(self.scale)
                block[torch.arange(len(chunk)), chunk] = -torch.inf
                top = torch.topk(block, k, dim=1)
                ids.append(top.indices.numpy())
                scores.append(top.values.numpy())
        if not ids:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
        return np.concatenate(ids), np.concatenate(scores)


class BladeRecommender(mlflow.pyfunc.PythonModel):
    """pyfunc: ``query_id`` -> ``query_id, rank, product_id, score`` (see the module docstring)."""

    def load_context(self, context) -> None:
        data = np.load(context.artifacts["embeddings"])
        self.product_ids = data["product_ids"].astype(str)
        self.index = pd.Index(self.product_ids)
        self.scorer = TopKScorer(data["source"], data["target"], float(data["scale"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", DEFAULT_K))
        if "query_id" not in model_input.columns:
            raise ValueError(f"input needs a column 'query_id', got {list(model_input.columns)}")
        query_ids = model_input["query_id"].astype(str).to_numpy()
        positions = self.index.get_indexer(query_ids)
        known = positions >= 0
        ids, scores = self.scorer.top_k(positions[known], k)
        width = ids.shape[1]
        return pd.DataFrame({
            "query_id": np.repeat(query_ids[known], width),
            "rank": np.tile(np.arange(1, width + 1, dtype=np.int64), int(known.sum())),
            "product_id": self.product_ids[ids.reshape(-1)],
            "score": scores.reshape(-1).astype(np.float64),
        })
