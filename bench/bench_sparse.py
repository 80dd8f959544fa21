"""Sparse aggregation products, forward and backward, on this machine: the model's cached-transpose
CSR product (``models.sparse.AggregationMatrix``) against ``torch.sparse.mm`` and PyG's
``EdgeIndex.matmul`` (issue "The house in order": PyG where it serves).

    python bench/bench_sparse.py                      # amazon0302-sized: 262,111 nodes, 10 pairs each
    python bench/bench_sparse.py --nodes 3000 --pairs-per-node 5

Each product is ``A @ X`` with ``A`` a row-normalised (mean) aggregation over random pairs and
``X [N, dim]`` requiring a gradient; one repetition is the forward product and the backward of
its sum. Prints the median seconds over the repetitions and each method's time as a ratio of the
model's, all measured in this one run, and checks that every method gives the same product and
gradient (to 1e-5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.batching import aggregation_matrix  # noqa: E402


def timed(product, x: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Median seconds of forward + backward, and the last output and gradient."""
    seconds = []
    for _ in range(repeats):
        x.grad = None
        start = time.perf_counter()
        out = product(x)
        out.sum().backward()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out.detach(), x.grad.detach().clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=262_111)
    parser.add_argument("--pairs-per-node", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    n, m = args.nodes, args.nodes * args.pairs_per_node
    pairs = torch.stack([torch.randint(0, n, (m,), generator=generator),
                         torch.randint(0, n, (m,), generator=generator)])
    ours = aggregation_matrix(pairs, n)  # sorted CSR, mean weights, with its transpose
    csr = ours.matrix
    x = torch.randn(n, args.dim, generator=generator, requires_grad=True)

    from torch_geometric import EdgeIndex

    crow, col, value = csr.crow_indices(), csr.col_indices(), csr.values()
    row = torch.repeat_interleave(torch.arange(n), crow[1:] - crow[:-1])
    edge_index = EdgeIndex(torch.stack([row, col]), sparse_size=(n, n), sort_order="row")
    edge_index.get_csr()
    edge_index.get_csc()  # PyG's cached transpose, as ours
    methods = {
        "model: CSR with cached transpose": lambda inputs: ours @ inputs,
        "torch.sparse.mm (transpose rebuilt each backward)": lambda inputs: torch.sparse.mm(csr, inputs),
        "PyG EdgeIndex.matmul (CSR + cached CSC)":
            lambda inputs: edge_index.matmul(inputs, input_value=value),
    }
    print(f"{n:,} nodes, {m:,} pairs, dim {args.dim}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; median of {args.repeats}, forward + backward")
    reference = None
    for name, product in methods.items():
        timed(product, x, 1)  # warm-up
        seconds, out, grad = timed(product, x, args.repeats)
        if reference is None:
            reference = (seconds, out, grad)
        same = torch.allclose(out, reference[1], atol=1e-5) and torch.allclose(grad, reference[2], atol=1e-5)
        print(f"{name:52s} {seconds:7.3f} s   x{seconds / reference[0]:.2f} of the model's   "
              f"same result: {same}")


if __name__ == "__main__":
    main()
