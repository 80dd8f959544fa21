"""GPU check: BLADE trained with Lightning on CUDA against the same training on the CPU, in one
run, then the scoring path (PyTorch top-k on CUDA and CPU, the ONNX scorer in ONNX Runtime).

    make gpu-check                                   # amazon0302, params.yaml's defaults
    python bench/gpu_check.py [--max-epochs N] [--cpu-epochs N] [--tolerance 0.01]
    python bench/gpu_check.py --device cpu --max-nodes 20000   # test this script without a GPU

What it needs: torch, pytorch-lightning, numpy, pandas, scipy, PyYAML (and onnx with onnxruntime
for the ONNX part), ``params.yaml`` and the raw edge file. No MLflow, DVC, Optuna or pydantic:
it reads the file and splits it as ``blade ingest`` does (``pipeline.readers``,
``pipeline.edges``), and trains through the model library (``models.training``), the code path
of ``blade train``. The configuration is params.yaml's ``neighbourhood`` and ``train`` sections as
written (no tuned values), variant ``blade``.

1. **CUDA**: train until early stopping (``train.max_epochs`` caps it, or ``--max-epochs``).
2. **CPU**, same seed, same split, same sampling: train for as many epochs (``--cpu-epochs``
   caps it, to bound the run on a slow CPU; then the curves are compared over those epochs).
3. Print the training time per epoch on each (validation excluded; the first GPU epoch, which
   includes CUDA start-up, apart), their ratio, both validation MRR@10 curves and their largest
   difference. **Check:** the best validation MRR@10 of the two runs over the compared epochs
   differ by at most ``--tolerance`` (absolute; default 0.01). Floating-point sums run in a
   different order on the GPU (cuSPARSE, cuBLAS, atomics), so the runs are not bit-identical;
   the differences grow slowly over epochs.
4. Scoring, from the CUDA-trained embeddings: top-10 of ``--queries`` seeded queries with
   ``models.scoring.top_k`` on CUDA and on the CPU, and with the ONNX scorer
   (``models.onnx_scorer``) in ONNX Runtime (its CUDA provider when the installed build has one).
   **Check:** the top-10 lists agree (the same ids up to exact score ties) and scores differ by
   at most 1e-4 relative.

Exit status 0 when both checks pass, 1 when one fails, 2 on bad arguments or no CUDA device.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytorch_lightning as pl
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.scoring import top_k  # noqa: E402
from models.training import MONITOR, TrainingGraph, build_module  # noqa: E402
from models.variants import get_variant  # noqa: E402
from pipeline.edges import clean_edges, split_edges  # noqa: E402
from pipeline.fitting import fit_module  # noqa: E402
from pipeline.readers import read_edges  # noqa: E402

SCORE_RTOL = 1e-4


class EpochClock(pl.Callback):
    """Training seconds of every epoch (from its start to the start of its validation, with the
    device synchronised) and the validation score after it."""

    def __init__(self) -> None:
        self.train_seconds: list[float] = []
        self.scores: list[float] = []

    @staticmethod
    def _now(module: pl.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = self._now(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        self.train_seconds.append(self._now(pl_module) - self._start)

    def on_validation_end(self, trainer, pl_module) -> None:
        if MONITOR in trainer.callback_metrics:
            self.scores.append(float(trainer.callback_metrics[MONITOR]))


def load_graph(params: dict, edges: str | None, max_nodes: int | None) -> TrainingGraph:
    ingest = params["ingest"]
    raw = read_edges(edges or ingest["edges"], ingest.get("format", "auto"),
                     ingest.get("source_column", "source"), ingest.get("target_column", "target"),
                     ingest.get("id_type", "auto"))
    graph = clean_edges(raw)
    source, target, num_nodes = graph.source, graph.target, graph.num_nodes
    if max_nodes:  # a subgraph for testing the script: nodes 0..max_nodes-1 and their edges
        keep = (source < max_nodes) & (target < max_nodes)
        source, target, num_nodes = source[keep], target[keep], min(max_nodes, num_nodes)
    parts = split_edges(len(source), params["ingest"]["split"], int(params["base"]["seed"]))

    def edge_index(name: str) -> torch.Tensor:
        return torch.from_numpy(np.vstack([source[parts[name]], target[parts[name]]])).long()

    return TrainingGraph(num_nodes, edge_index("train"), edge_index("val"))


def fit(graph: TrainingGraph, params: dict, device: str, seed: int, variant: str = "blade",
        neighbourhood: dict | None = None, train: dict | None = None, callbacks: list | None = None):
    """Train ``variant`` on ``device`` with params.yaml's ``neighbourhood`` and ``train`` sections
    (plus the given overrides) as plain objects: the model library's own path, no pydantic."""
    config = SimpleNamespace(**{**params["train"], **(train or {}), "accelerator": device, "devices": 1})
    hood = SimpleNamespace(**{**params["neighbourhood"], **(neighbourhood or {})})
    pl.seed_everything(seed, workers=True, verbose=False)
    module = build_module(get_variant(variant), graph, hood, config, seed)
    return fit_module(module, config, callbacks=callbacks, progress=False,
                      label=f"{variant} ({device})")


def train_on(device: str, graph: TrainingGraph, params: dict, max_epochs: int) -> tuple:
    clock = EpochClock()
    started = time.perf_counter()
    result = fit(graph, params, device, int(params["base"]["seed"]), train={"max_epochs": max_epochs},
                 callbacks=[clock])
    print(f"[{device}] {len(clock.scores)} epochs in {time.perf_counter() - started:.1f} s "
          f"(untrained val MRR@10 {result.untrained_score:.4f}, best {result.best_score:.4f})", flush=True)
    return result, clock


def epoch_seconds(clock: EpochClock) -> float:
    """Mean training seconds per epoch, the first epoch left out when there are others."""
    times = clock.train_seconds[1:] or clock.train_seconds
    return sum(times) / len(times)


def check_training(args: argparse.Namespace, graph: TrainingGraph, params: dict) -> tuple[bool, object]:
    accelerator = "cuda" if args.device == "cuda" else "cpu"
    max_epochs = args.max_epochs or int(params["train"]["max_epochs"])
    gpu, gpu_clock = train_on(accelerator, graph, params, max_epochs)
    cpu_epochs = len(gpu_clock.scores) if not args.cpu_epochs else min(args.cpu_epochs, len(gpu_clock.scores))
    cpu, cpu_clock = train_on("cpu", graph, params, cpu_epochs)
    epochs = min(len(gpu_clock.scores), len(cpu_clock.scores))
    gpu_seconds, cpu_seconds = epoch_seconds(gpu_clock), epoch_seconds(cpu_clock)
    print(f"\ntraining seconds per epoch (validation excluded): {accelerator} {gpu_seconds:.3f} "
          f"(first epoch {gpu_clock.train_seconds[0]:.2f}), cpu {cpu_seconds:.3f} "
          f"({torch.get_num_threads()} threads): cpu / {accelerator} = {cpu_seconds / gpu_seconds:.1f}x")
    print("epoch  " + "  ".join(f"{i + 1:>6d}" for i in range(epochs)))
    print(f"{accelerator:<6} " + "  ".join(f"{v:.4f}" for v in gpu_clock.scores[:epochs]))
    print(f"{'cpu':<6} " + "  ".join(f"{v:.4f}" for v in cpu_clock.scores[:epochs]))
    largest = max(abs(a - b) for a, b in zip(gpu_clock.scores[:epochs], cpu_clock.scores[:epochs]))
    best_gpu, best_cpu = max(gpu_clock.scores[:epochs]), max(cpu_clock.scores[:epochs])
    passed = abs(best_gpu - best_cpu) <= args.tolerance
    print(f"best validation MRR@10 over {epochs} epochs: {accelerator} {best_gpu:.4f}, cpu {best_cpu:.4f}, "
          f"difference {abs(best_gpu - best_cpu):.4f} (largest per epoch {largest:.4f}); "
          f"tolerance {args.tolerance}: {'PASS' if passed else 'FAIL'}", flush=True)
    return passed, gpu.module


def same_lists(ids_a: torch.Tensor, scores_a: torch.Tensor, ids_b: torch.Tensor,
               scores_b: torch.Tensor) -> bool:
    """Top-k lists agree: equal scores within SCORE_RTOL and, where ids differ, tied scores."""
    close = torch.allclose(scores_a, scores_b, rtol=SCORE_RTOL, atol=SCORE_RTOL)
    differ = ids_a != ids_b
    return close and bool(torch.all(~differ | torch.isclose(scores_a, scores_b, rtol=SCORE_RTOL)))


def check_scoring(args: argparse.Namespace, module) -> bool:
    source, target = module.embeddings()
    scale = float(module.encoder.scale.detach())
    generator = torch.Generator().manual_seed(0)
    queries = torch.randint(0, source.shape[0], (args.queries,), generator=generator)
    k = 10
    timings = {}
    started = time.perf_counter()
    cpu_ids, cpu_scores = top_k(source, target, scale, queries, k)
    timings["torch cpu"] = time.perf_counter() - started
    passed = True
    if args.device == "cuda":
        device = torch.device("cuda")
        s, t, q = source.to(device), target.to(device), queries.to(device)
        top_k(s, t, scale, q[:256], k)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        gpu_ids, gpu_scores = top_k(s, t, scale, q, k, chunk=4096)
        torch.cuda.synchronize()
        timings["torch cuda"] = time.perf_counter() - started
        agree = same_lists(gpu_ids.cpu(), gpu_scores.cpu(), cpu_ids, cpu_scores)
        print(f"scoring: top-{k} of {args.queries} queries, torch cuda vs cpu: "
              f"{'agree' if agree else 'DIFFER'}", flush=True)
        passed &= agree
    try:
        import onnxruntime as ort

        from models.onnx_scorer import build_scorer
    except ImportError as error:
        print(f"scoring: ONNX part skipped ({error})")
    else:
        wanted = ("CUDAExecutionProvider", "CPUExecutionProvider") if args.device == "cuda" else (
            "CPUExecutionProvider",)
        model = build_scorer(source.numpy(), target.numpy(), scale).SerializeToString()
        ran = []
        for provider in (p for p in wanted if p in ort.get_available_providers()):
            session = ort.InferenceSession(model, providers=[provider])
            if session.get_providers()[0] != provider:  # listed, but its libraries did not load
                continue
            ran.append(provider)
            feed = {"query": queries.numpy(), "k": np.array([k], dtype=np.int64)}
            session.run(None, {"query": feed["query"][:16], "k": feed["k"]})  # warm-up
            started = time.perf_counter()
            ids, scores = session.run(None, feed)
            timings[f"onnxruntime {provider.removesuffix('ExecutionProvider').lower()}"] = (
                time.perf_counter() - started)
            agree = same_lists(torch.from_numpy(ids), torch.from_numpy(scores), cpu_ids, cpu_scores)
            print(f"scoring: ONNX Runtime {provider} vs torch cpu: {'agree' if agree else 'DIFFER'}")
            passed &= agree
        if args.device == "cuda" and "CUDAExecutionProvider" not in ran:
            print("scoring: no usable CUDA provider in this onnxruntime build (onnxruntime-gpu with "
                  "its CUDA libraries has it)")
    print("scoring throughput, queries/s: " + ", ".join(
        f"{name} {args.queries / seconds:,.0f}" for name, seconds in timings.items()), flush=True)
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--edges", help="edge file (default: ingest.edges of params.yaml)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: run the 'GPU' side on the CPU too, to test this script")
    parser.add_argument("--max-epochs", type=int, help="cap on the GPU run (default: train.max_epochs)")
    parser.add_argument("--cpu-epochs", type=int, help="cap on the CPU run (default: as many as the GPU's)")
    parser.add_argument("--tolerance", type=float, default=0.01, help="allowed |best MRR@10 difference|")
    parser.add_argument("--queries", type=int, default=8192, help="scoring check queries")
    parser.add_argument("--max-nodes", type=int, help="train on nodes 0..N-1 only (a quick test)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); "
              "`--device cpu` runs both sides on the CPU to test the script", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    params = yaml.safe_load(Path(args.params).read_text())
    started = time.perf_counter()
    graph = load_graph(params, args.edges, args.max_nodes)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "none (--device cpu)"
    print(f"torch {torch.__version__}, pytorch-lightning {pl.__version__}; GPU: {name}; "
          f"{torch.get_num_threads()} CPU threads")
    print(f"graph: {graph.num_nodes:,} nodes, {graph.train.shape[1]:,} training and "
          f"{graph.val.shape[1]:,} validation edges "
          f"(read and split in {time.perf_counter() - started:.1f} s)",
          flush=True)
    trained, module = check_training(args, graph, params)
    scored = check_scoring(args, module)
    print(f"gpu_check: training {'PASS' if trained else 'FAIL'}, scoring {'PASS' if scored else 'FAIL'} "
          f"({time.perf_counter() - started:.0f} s in all)")
    return 0 if trained and scored else 1


if __name__ == "__main__":
    sys.exit(main())
