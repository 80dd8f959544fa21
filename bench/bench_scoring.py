"""Top-k for every product: ONNX Runtime vs PyTorch vs FAISS exact search, on this machine.

    dvc repro train && python bench/bench_scoring.py [--queries all] [--k 20] [--variant blade]

Scores the trained embeddings (``outputs/train/<variant>/embeddings.pt``) of every product (or
``--queries N`` of them, seeded) against all products, the query excluded, with

- ONNX Runtime on the exported graph (:mod:`models.onnx_scorer`, CPU provider here),
- PyTorch (:func:`models.scoring.top_k`),
- FAISS ``IndexFlatIP`` (exact inner product, k + 1 then the query dropped),

and prints, from this one run: seconds, queries per second, agreement of the top-k with PyTorch,
and each as a share of the machine's matrix-multiply peak, measured here as the best of five
float32 2048^3 GEMMs. The share counts only the ``2 * Q * N * d`` flops of the score matrix;
top-k selection is the rest of the time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from models.onnx_scorer import build_scorer
from models.scoring import top_k
from pipeline.recommender import onnx_session


def matmul_peak(repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply peak: best GFLOP/s of a 2048^3 GEMM in PyTorch."""
    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up the BLAS threads
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def timed(label: str, run, queries: int, flops: float, peak: float) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    ids = run()
    seconds = time.perf_counter() - started
    print(f"{label:<22} {seconds:8.1f} s  {queries / seconds:10,.0f} queries/s  "
          f"{flops / seconds / 1e9:7.1f} GFLOP/s = {flops / seconds / 1e9 / peak:6.1%} of peak")
    return ids, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="blade")
    parser.add_argument("--queries", default="all", help="'all' or a number of seeded random products")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=4096, help="queries per ONNX Runtime / FAISS call")
    parser.add_argument("--skip-faiss", action="store_true")
    args = parser.parse_args()

    saved = torch.load(Path("outputs/train") / args.variant / "embeddings.pt", weights_only=True)
    source, target, scale = saved["source"].float(), saved["target"].float(), float(saved["scale"])
    num_nodes, dim = target.shape
    if args.queries == "all":
        queries = np.arange(num_nodes)
    else:
        queries = np.random.default_rng(0).choice(num_nodes, int(args.queries), replace=False)
    flops = 2.0 * len(queries) * num_nodes * dim
    peak = matmul_peak()
    print(f"{len(queries):,} queries x {num_nodes:,} products, d = {dim}, top-{args.k}; "
          f"{torch.get_num_threads()} threads; matmul peak {peak:.1f} GFLOP/s")

    scorer = Path("outputs/bench_scorer.onnx")
    import onnx

    onnx.save_model(build_scorer(source.numpy(), target.numpy(), scale), scorer)
    session = onnx_session(scorer, "auto")

    def run_onnx() -> np.ndarray:
        out = []
        for start in range(0, len(queries), args.chunk):
            chunk = queries[start:start + args.chunk].astype(np.int64)
            out.append(session.run(["top_ids"], {"query": chunk, "k": np.array([args.k])})[0])
        return np.concatenate(out)

    def run_torch() -> np.ndarray:
        return top_k(source, target, scale, torch.from_numpy(queries), args.k)[0].numpy()

    torch_ids, torch_seconds = timed("PyTorch", run_torch, len(queries), flops, peak)
    onnx_ids, onnx_seconds = timed(f"ONNX Runtime ({session.get_providers()[0]})", run_onnx, len(queries),
                                   flops, peak)
    print(f"  ONNX top-{args.k} ids equal to PyTorch's: {np.mean(onnx_ids == torch_ids):.4%} of positions "
          f"(differences are tied scores); ONNX / PyTorch time {onnx_seconds / torch_seconds:.2f}")
    if not args.skip_faiss:
        import faiss

        index = faiss.IndexFlatIP(dim)
        index.add(target.numpy())
        queries_source = source.numpy()[queries]

        def run_faiss() -> np.ndarray:
            out = []
            for start in range(0, len(queries), args.chunk):
                _, found = index.search(queries_source[start:start + args.chunk], args.k + 1)
                own = found == queries[start:start + args.chunk, None]
                keep = np.where(own.any(1, keepdims=True), ~own, np.arange(args.k + 1) < args.k)
                out.append(found[keep].reshape(len(found), args.k))
            return np.concatenate(out)

        faiss_ids, faiss_seconds = timed("FAISS IndexFlatIP", run_faiss, len(queries), flops, peak)
        agreement = np.mean(faiss_ids == torch_ids)
        print(f"  FAISS top-{args.k} ids equal to PyTorch's: {agreement:.4%} of positions; "
              f"ONNX / FAISS time {onnx_seconds / faiss_seconds:.2f}")
    scorer.unlink()
    print(f"all {num_nodes:,} products within 2 minutes: ONNX "
          f"{'yes' if onnx_seconds * num_nodes / len(queries) < 120 else 'no'} "
          f"({onnx_seconds * num_nodes / len(queries):.0f} s extrapolated to all)")


if __name__ == "__main__":
    main()
