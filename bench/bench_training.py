"""Training throughput of BLADE on the ingested graph (default: amazon0302), on this machine.

    blade ingest && python bench/bench_training.py [--epochs 1] [--set train.dim=32 ...]

Runs real Lightning epochs (no validation) of the configured `blade` variant and prints, measured
in this one run: seconds per epoch, training edges per second, and the share of the epoch spent
in the neighbourhood sampler (drawn once per epoch) and in building each batch's computation
graph (leakage masks, node sets, sub-matrices).
"""

from __future__ import annotations

import argparse
import time
import warnings

import pytorch_lightning as pl
import torch

from models.batching import computation_graph
from models.loss import sample_negatives
from models.variants import get_variant
from pipeline.artifacts import load_split_graph
from pipeline.config import apply_overrides, load_params
from pipeline.train import build_module, fit_variant


class SamplerClock(pl.Callback):
    """Times the sampler + epoch aggregation (on_train_epoch_start) and the batch masks."""

    def __init__(self) -> None:
        self.sampling = 0.0

    def setup(self, trainer, pl_module, stage) -> None:
        original = pl_module.on_train_epoch_start

        def timed() -> None:
            started = time.perf_counter()
            original()
            self.sampling += time.perf_counter() - started

        pl_module.on_train_epoch_start = timed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variant", default="blade")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = apply_overrides(load_params(), args.overrides)
    config = dict(params["train"], max_epochs=args.epochs, val_queries=0)
    graph = load_split_graph()
    graph.val = graph.val[:, :0]  # no validation: time training alone
    edges = graph.train.shape[1]

    module = build_module(get_variant(args.variant), graph, params["neighbourhood"], config, 0)
    started = time.perf_counter()
    hoods = module.sampler.sample(torch.Generator().manual_seed(0))
    sample_seconds = time.perf_counter() - started
    started = time.perf_counter()
    out_agg, in_agg = module._aggregations(hoods)
    aggregation_seconds = time.perf_counter() - started
    batch = int(config["batch_size"])
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    repeats = 5
    for _ in range(repeats):  # what every step does before the encoder runs
        edge_ids = torch.randperm(edges, generator=generator)[:batch]
        excluded = torch.zeros(edges, dtype=torch.bool)
        excluded[edge_ids] = True
        positives = graph.train[:, edge_ids]
        negatives = sample_negatives(batch, int(config["num_negatives"]), graph.num_nodes, generator,
                                     int(config.get("negative_pool", 0)))
        computation = computation_graph(out_agg, in_agg, positives.reshape(-1),
                                        torch.cat([positives.reshape(-1), negatives.reshape(-1)]),
                                        int(config["num_layers"]), excluded)
    batch_graph_seconds = (time.perf_counter() - started) / repeats
    layer_nodes = [len(nodes) for nodes in computation.source_nodes + computation.target_nodes]

    clock = SamplerClock()
    result = fit_variant(args.variant, graph, params["neighbourhood"], config, 0, None,
                         callbacks=[clock], progress=False)
    epoch = result.seconds_per_epoch
    steps = -(-edges // int(config["batch_size"]))
    print(f"graph: {graph.num_nodes:,} nodes, {edges:,} training edges; variant {args.variant}; "
          f"dim {config['dim']}, L {config['num_layers']}, batch {config['batch_size']:,} "
          f"({steps} steps/epoch); {torch.get_num_threads()} threads")
    print(f"epoch: {epoch:.1f} s  ->  {edges / epoch:,.0f} training edges/s")
    print(f"sampler (one draw, both directions): {sample_seconds:.2f} s = "
          f"{sample_seconds / epoch:.1%} of the epoch")
    print(f"epoch aggregation build: {aggregation_seconds:.2f} s = {aggregation_seconds / epoch:.1%}")
    print(f"per-batch computation graph (leakage masks, node sets, sub-matrices): "
          f"{batch_graph_seconds * 1000:.0f} ms x {steps} = {batch_graph_seconds * steps / epoch:.1%}; "
          f"nodes per layer (source 0..L, target 0..L): {layer_nodes} of {graph.num_nodes:,}")
    sampler_share = (sample_seconds + aggregation_seconds + batch_graph_seconds * steps) / epoch
    print(f"sampling, all parts: {sampler_share:.1%} of the epoch")
    step = (epoch - clock.sampling / args.epochs) / steps - batch_graph_seconds
    print(f"encode + loss + backward + LazyAdam: {step:.3f} s/step = {step * steps / epoch:.1%}")


if __name__ == "__main__":
    main()
