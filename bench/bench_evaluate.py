"""Evaluation speed: filtered full ranking of 20,000 test edges against every node.

    blade ingest && python bench/bench_evaluate.py [--queries 20000] [--dim 64]

Scores the seeded sample the evaluate stage uses, with random unit-norm embeddings of the
trained model's width (the cost does not depend on the values), and with the two baselines.
Prints seconds and queries per second per method, measured in this one run.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from models.baselines import cooccurrence_scores, popularity_scores
from models.evaluation import embedding_scorers, evaluate_scorer, pairs_from_rows
from models.graph import in_out_degrees
from pipeline.artifacts import load_split_graph
from pipeline.evaluate import evaluation_set


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    graph = load_split_graph()
    evaluation, total = evaluation_set(graph, "test", args.queries, 42, (5, 10, 20), 2)
    count = evaluation.edges.shape[1]
    generator = torch.Generator().manual_seed(0)
    source = F.normalize(torch.randn(graph.num_nodes, args.dim, generator=generator), dim=1)
    target = F.normalize(torch.randn(graph.num_nodes, args.dim, generator=generator), dim=1)
    in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
    cooccurrence = cooccurrence_scores(graph.train, graph.num_nodes)
    methods = {
        f"embeddings (dim {args.dim})": embedding_scorers(source, target, 5.0),
        "popularity": (popularity_scores(in_degree), lambda u, v: in_degree[v].float()),
        "cooccurrence": (cooccurrence, pairs_from_rows(cooccurrence)),
    }
    print(f"{count:,} of {total:,} test edges ranked against all {graph.num_nodes:,} nodes, "
          f"{torch.get_num_threads()} threads")
    for name, (rows, pairs) in methods.items():
        started = time.perf_counter()
        evaluate_scorer(rows, pairs, evaluation)
        seconds = time.perf_counter() - started
        print(f"{name:>22}: {seconds:6.1f} s  {count / seconds:8,.0f} queries/s")


if __name__ == "__main__":
    main()
