"""Training speed of BLADE on the ingested graph (default: amazon0302): epoch time and time to
convergence, on this machine, in one run.

    blade ingest && python bench/bench_training.py [--variant blade] [--set train.dim=32 ...]

Trains the configured variant with ``params.yaml``'s ``train`` settings (no tuned values, no
checkpoints) until early stopping ends it, validating after every epoch as training does, and
prints:

- seconds per training epoch (sampling, split and steps; without validation), its parts
  (the epoch's neighbourhood draw and matrices, the optimiser steps) and training edges per second;
- seconds per validation (full-graph inference and ranking ``train.val_queries`` edges);
- the validation MRR@10 curve, the best epoch, the wall time to reach it (time to convergence)
  and the wall time until early stopping.

``--max-epochs`` caps the run (the default is ``train.max_epochs``).
"""

from __future__ import annotations

import argparse
import time
import warnings

import pytorch_lightning as pl
import torch

from pipeline.artifacts import load_split_graph
from pipeline.config import apply_overrides, load_params
from pipeline.train import MONITOR, fit_variant


class Clock(pl.Callback):
    """Wall times of every epoch's start hook (sampling, split, matrices), training part and
    validation, and the validation score after each epoch."""

    def __init__(self) -> None:
        self.epoch_start = 0.0
        self.setup_seconds: list[float] = []
        self.train_seconds: list[float] = []
        self.validation_seconds: list[float] = []
        self.scores: list[float] = []
        self.ends: list[float] = []

    def setup(self, trainer, pl_module, stage) -> None:
        original = pl_module.on_train_epoch_start

        def timed() -> None:
            started = time.perf_counter()
            original()
            self.setup_seconds.append(time.perf_counter() - started)

        pl_module.on_train_epoch_start = timed
        self.started = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Lightning runs the epoch-end validation before this hook: take its time out
        ran = len(self.validation_seconds) > len(self.train_seconds)
        validated = self.validation_seconds[-1] if ran else 0.0
        self.train_seconds.append(time.perf_counter() - self.epoch_start - validated)

    def on_validation_start(self, trainer, pl_module) -> None:
        self.validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.validation_seconds.append(time.perf_counter() - self.validation_start)
        self.scores.append(float(trainer.callback_metrics[MONITOR]))
        self.ends.append(time.perf_counter() - self.started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="blade")
    parser.add_argument("--max-epochs", type=int, help="cap on epochs (default: train.max_epochs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="section.key=value, as for `blade train --set`")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = apply_overrides(load_params(), args.overrides)
    config = dict(params["train"])
    if args.max_epochs:
        config["max_epochs"] = args.max_epochs
    graph = load_split_graph()
    edges = graph.train.shape[1]
    clock = Clock()
    result = fit_variant(args.variant, graph, params["neighbourhood"], config, args.seed, None,
                         callbacks=[clock], progress=False)
    module = result.module
    steps = getattr(module, "steps_per_epoch", -(-edges // int(config["batch_size"])))
    epoch = sum(clock.train_seconds) / len(clock.train_seconds)
    setup = sum(clock.setup_seconds) / len(clock.setup_seconds)
    validation = sum(clock.validation_seconds) / max(len(clock.validation_seconds), 1)
    best = max(range(len(clock.scores)), key=clock.scores.__getitem__)
    print(f"graph: {graph.num_nodes:,} nodes, {edges:,} training edges; variant {args.variant}; "
          f"dim {config['dim']}, "
          f"L {config['num_layers']}, {steps} steps/epoch; {torch.get_num_threads()} threads")
    print(f"epoch (training, no validation): {epoch:.1f} s  ->  {edges / epoch:,.0f} training edges/s")
    print(f"  of which the epoch's draw, split and matrices: {setup:.2f} s ({setup / epoch:.1%}); "
          f"steps: {(epoch - setup) / steps:.2f} s each")
    print(f"validation ({int(config.get('val_queries', 5000)):,} edges ranked): {validation:.1f} s per epoch")
    print("validation MRR@10 per epoch: " + " ".join(f"{score:.4f}" for score in clock.scores))
    if config["learn_scale"]:
        print(f"learned score scale (best epoch): {float(module.encoder.scale):.2f} "
              f"(starts at {config['score_scale']})")
    print(f"converged: best epoch {best + 1} (MRR@10 {clock.scores[best]:.4f}) reached after "
          f"{clock.ends[best]:.0f} s; early stopping after {result.epochs} epochs, {clock.ends[-1]:.0f} s")


if __name__ == "__main__":
    main()
