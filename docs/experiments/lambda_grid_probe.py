"""How far must lambda go for the walk to lead? Trains BLADE once per seed on the ingested split
(`blade ingest` first; params.yaml's values), prints the spread of its embedding scores, the
channel the shipped search picks, and the best validation MRR@10 of that walk at each lambda of
a wide grid (up to 1e6). Validation edges only; docs/decisions.md has what it printed:
    python docs/experiments/lambda_grid_probe.py SEED [SEED ...]
"""
import sys

import torch

from models.encoder import score as embedding_score
from models.training import validation_set
from models.walk_channel import TABLE_WIDTH, choose_walk_channel, fit_walk_channel, top_table
from pipeline.artifacts import load_split_graph
from pipeline.config import load_params
from pipeline.settings import typed
from pipeline.train import channel_walks, fit_variant

WIDE_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 1e4, 1e6)

torch.set_num_threads(2)
settings = typed(load_params())
graph = load_split_graph()
config = settings.train.model_dump() | {"walk_channel": False}
validation = validation_set(graph, settings.train.val_queries, settings.base.seed)
search = channel_walks(graph, settings.evaluate.baselines)
for seed in [int(arg) for arg in sys.argv[1:]]:
    result = fit_variant("blade", graph, settings.neighbourhood, config, seed, None, progress=False,
                         baselines=settings.evaluate.baselines)
    source, target = result.module.embeddings()
    scale = float(result.module.encoder.scale.detach())

    def rows(queries: torch.Tensor, source=source, target=target, scale=scale) -> torch.Tensor:
        return embedding_score(source[queries], target, scale)

    sample = rows(torch.arange(min(200, graph.num_nodes)))
    top = sample.topk(10, dim=1).values
    print(f"seed {seed}: scale {scale:.2f}, score std within a row {sample.std(1).mean():.2f}, "
          f"first minus tenth score {(top[:, 0] - top[:, 9]).mean():.2f}", flush=True)
    _, report = choose_walk_channel(rows, graph.num_nodes, validation.edges, validation.exclude_indptr,
                                    validation.exclude_indices, search)
    print("  shipped search:", {key: report[key] for key in ("walk", "weight", "floor", "val_mrr@10")})
    build, _ = search.walks[report["walk"]]
    table = top_table(build(**report["settings"]), graph.num_nodes, TABLE_WIDTH)
    fit = fit_walk_channel(rows, table, validation.edges, validation.exclude_indptr,
                           validation.exclude_indices, weights=WIDE_GRID,
                           floors=(1e-4, 1e-3, 1e-2, 1e-1, 1.0))
    best = {}
    for weight, _, mrr in fit["grid"]:
        best[weight] = max(best.get(weight, 0.0), mrr)
    print("  best per lambda:", best, flush=True)
