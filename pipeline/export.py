"""Stage ``export``: the trained model's scorer as ONNX, checked against PyTorch before it ships.

    blade export                          # what `dvc repro export` runs

Builds :func:`models.onnx_scorer.build_scorer` from ``outputs/train/<registry.variant>/
embeddings.pt`` (query ids -> top-k product ids and scores, dynamic batch; the walk channel's
tables inside where the model has one), then checks it:

1. the ONNX checker (full check, in ``build_scorer``);
2. parity on ``export.check_queries`` seeded random queries run through ONNX Runtime and through
   :func:`models.scoring.top_k`: the same top-k ids (where two scores tie, either order is
   accepted) and scores within ``export.rtol`` relative.

Only a model that passes is written: ``outputs/export/scorer.onnx`` and ``catalogue.npz`` (raw
product ids in node order, known links for "exclude what it already links to"), plus
``metrics/export.json``. The ``register`` stage logs both to the registered model version.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from models.metrics import out_neighbour_csr
from models.onnx_scorer import INPUT_K, INPUT_QUERY, OUTPUT_IDS, OUTPUT_SCORES, build_scorer
from models.scoring import top_k
from models.walk_channel import WalkChannel, pair_bonus
from pipeline.artifacts import load_split_graph
from pipeline.config import StageError
from pipeline.recommender import Catalogue, onnx_session
from pipeline.settings import typed
from pipeline.storage import atomic_directory, whole_outputs, write_json
from pipeline.train import OUTPUT_DIR as TRAIN_DIR

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/export")
SCORER, CATALOGUE = "scorer.onnx", "catalogue.npz"
METRICS_PATH = Path("metrics/export.json")


class ParityError(StageError):
    """ONNX Runtime and PyTorch disagree on the top-k: the export is not written."""


def check_parity(session, source: torch.Tensor, target: torch.Tensor, scale: float, queries: np.ndarray,
                 k: int, rtol: float, walk: WalkChannel | None = None) -> dict[str, float]:
    """Compare ONNX Runtime with PyTorch on ``queries``; raise :class:`ParityError` on a mismatch."""
    onnx_ids, onnx_scores = session.run([OUTPUT_IDS, OUTPUT_SCORES], {
        INPUT_QUERY: queries.astype(np.int64), INPUT_K: np.array([k], dtype=np.int64)})
    walk_index, walk_bonus = (walk.index, walk.bonus_table()) if walk is not None else (None, None)
    torch_ids, torch_scores = (t.numpy() for t in top_k(source, target, scale, torch.from_numpy(queries), k,
                                                        walk_index=walk_index, walk_bonus=walk_bonus))
    scale_of = np.maximum(np.abs(torch_scores), 1e-12)
    worst = float(np.max(np.abs(onnx_scores - torch_scores) / scale_of)) if queries.size else 0.0
    if worst > rtol:
        raise ParityError(f"ONNX scores differ from PyTorch by {worst:.2e} relative (allowed {rtol:.0e})")
    differing = onnx_ids != torch_ids
    # A differing id is acceptable only where PyTorch's own score there ties with ONNX's choice.
    if differing.any():
        rows, cols = np.nonzero(differing)
        s = source.numpy()[queries[rows]]
        t_onnx = target.numpy()[onnx_ids[rows, cols]]
        t_torch = target.numpy()[torch_ids[rows, cols]]
        query_rows = torch.from_numpy(queries[rows])
        bonus_onnx = pair_bonus(walk, query_rows, torch.from_numpy(onnx_ids[rows, cols])).numpy()
        bonus_torch = pair_bonus(walk, query_rows, torch.from_numpy(torch_ids[rows, cols])).numpy()
        gap = np.abs(scale * (s * t_onnx).sum(1) + bonus_onnx - scale * (s * t_torch).sum(1) - bonus_torch)
        tolerance = rtol * np.maximum(np.abs(torch_scores[rows, cols]), 1e-12)
        if (gap > tolerance).any():
            row = int(rows[np.argmax(gap - tolerance)])
            raise ParityError(f"ONNX top-{k} differs from PyTorch for query node {int(queries[row])}: "
                              f"{onnx_ids[row].tolist()} vs {torch_ids[row].tolist()}")
    return {"queries": int(queries.size), "k": k, "max_relative_score_error": worst,
            "tied_positions_in_other_order": int(differing.sum())}


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    settings = typed(params)
    config, variant = settings.export, settings.registry.variant
    path = TRAIN_DIR / variant / "embeddings.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the {variant!r} variant first (train.variants)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    source, target, scale = saved["source"].float(), saved["target"].float(), float(saved["scale"])
    graph = load_split_graph()
    started = time.perf_counter()
    walk = WalkChannel.from_dict(saved.get("walk_channel"))
    if walk is not None and walk.weight == 0.0:
        walk = None
    model = build_scorer(source.numpy(), target.numpy(), scale,
                         walk.index.numpy() if walk is not None else None,
                         walk.bonus_table().numpy() if walk is not None else None)
    k = config.check_k
    generator = np.random.default_rng(settings.base.seed)
    count = min(config.check_queries, graph.num_nodes)
    queries = generator.choice(graph.num_nodes, size=count, replace=False)
    link_indptr, link_indices = out_neighbour_csr(graph.all_edges, graph.num_nodes)
    with atomic_directory(OUTPUT_DIR) as tmp:
        onnx.save_model(model, tmp / SCORER)
        session = onnx_session(tmp / SCORER, "cpu")
        parity = check_parity(session, source, target, scale, queries, min(k, graph.num_nodes - 1),
                              config.rtol, walk)
        Catalogue.save(tmp / CATALOGUE, graph.product_ids, link_indptr.numpy(), link_indices.numpy())
        onnx_bytes = (tmp / SCORER).stat().st_size  # the directory lands when the stage succeeds
    metrics = {"variant": variant, "nodes": graph.num_nodes, "dim": int(source.shape[1]),
               "walk_channel_width": int(walk.index.shape[1]) if walk is not None else 0,
               "onnx_bytes": onnx_bytes, "opset": model.opset_import[0].version,
               "parity": parity, "seconds": round(time.perf_counter() - started, 1)}
    write_json(METRICS_PATH, metrics)
    log.info("export: %s scorer for %s nodes (%.0f MB) passed the ONNX checker and PyTorch parity on %d "
             "queries (max relative score error %.1e)", variant, f"{graph.num_nodes:,}",
             metrics["onnx_bytes"] / 1e6, parity["queries"], parity["max_relative_score_error"])
    return metrics
