"""Does an ensemble of BLADE models (same split, different initialisation and sampling seeds)
pass through the walk channel where single better embeddings did not?

The mean of K models' scores is itself one dot product: concatenate each model's
sqrt(scale_k / K) s_k and sqrt(scale_k / K) t_k (priors included, they are coordinates of s and
t), so a kept ensemble would serve, export and score exactly as one model of dimension K x d.

Run from the repository root after `blade ingest` (seed 42 split), with params.yaml's values:
    python docs/experiments/embedding_ensemble.py K [SEED ...]
Validation edges only (training's sample of val_queries edges); docs/decisions.md has what it
printed.
"""
import sys
import time

import torch

from models.encoder import score as embedding_score
from models.metrics import filtered_ranks, ranking_metrics
from models.training import validation_set
from models.walk_channel import choose_walk_channel
from pipeline.artifacts import load_split_graph
from pipeline.config import load_params
from pipeline.settings import typed
from pipeline.train import channel_walks, fit_variant

torch.set_num_threads(2)
size = int(sys.argv[1])
seeds = [int(seed) for seed in sys.argv[2:]] or [42 + k for k in range(size)]
settings = typed(load_params())
graph = load_split_graph()
config = settings.train.model_dump() | {"walk_channel": False}
validation = validation_set(graph, settings.train.val_queries, settings.base.seed)
edges = validation.edges


def report(label: str, source: torch.Tensor, target: torch.Tensor) -> None:
    def scorer(queries: torch.Tensor) -> torch.Tensor:
        return embedding_score(source[queries], target, 1.0)

    ranks = filtered_ranks(scorer, edges[0], edges[1], validation.exclude_indptr,
                           validation.exclude_indices, graph.num_nodes)
    alone = ranking_metrics(ranks, (10,))["mrr@10"]
    started = time.time()
    search = channel_walks(graph, settings.evaluate.baselines)
    _, fused = choose_walk_channel(scorer, graph.num_nodes, edges, validation.exclude_indptr,
                                   validation.exclude_indices, search)
    print(f"{label}: embeddings alone {alone:.4f}; with the channel {fused} ({time.time() - started:.0f} s)",
          flush=True)


members = []
for seed in seeds[:size]:
    started = time.time()
    result = fit_variant("blade", graph, settings.neighbourhood, config, seed, None, progress=False,
                         baselines=settings.evaluate.baselines)
    source, target = result.module.embeddings()
    weight = float(result.module.encoder.scale.detach()) ** 0.5
    members.append((weight * source, weight * target))
    print(f"model seed {seed}: trained in {time.time() - started:.0f} s", flush=True)
    report(f"model seed {seed}", *members[-1])
    if len(members) > 1:
        k = len(members)
        report(f"ensemble of {k}", torch.cat([s for s, _ in members], 1) / k ** 0.5,
               torch.cat([t for _, t in members], 1) / k ** 0.5)
