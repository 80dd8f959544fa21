"""The GraphSAGE baseline's layer, forward and backward, on this machine: PyG's ``SAGEConv`` (what
``models.encoder.UndirectedSageEncoder`` uses) against the update it replaced, the model's
cached-transpose product ``A @ h`` with its own two linear maps (issue "The house in order": PyG
where it serves).

    python bench/bench_sage.py                        # amazon0302-sized: 262,111 nodes, 10 pairs each
    python bench/bench_sage.py --nodes 3000 --pairs-per-node 5

One repetition is one layer, ``mean_{v in S(u)} h_v W + h_u W_self``, forward and the backward of
its sum, with the same weights in both. Prints the median seconds over the repetitions and the
ratio SAGEConv / ours, measured in this one run, and checks that both give the same layer and
gradient (to 1e-4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sparse import timed  # noqa: E402
from models.batching import aggregation_matrix  # noqa: E402
from models.encoder import message_edges  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=262_111)
    parser.add_argument("--pairs-per-node", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from torch_geometric.nn import SAGEConv

    generator = torch.Generator().manual_seed(0)
    n, m = args.nodes, args.nodes * args.pairs_per_node
    pairs = torch.stack([torch.randint(0, n, (m,), generator=generator),
                         torch.randint(0, n, (m,), generator=generator)])
    pairs = torch.unique(pairs, dim=1)  # the sampler's pairs are distinct
    adjacency = aggregation_matrix(pairs, n)
    edges = message_edges(adjacency)
    x = torch.randn(n, args.dim, generator=generator, requires_grad=True)
    conv = SAGEConv(args.dim, args.dim, aggr="mean")
    neighbour, root = torch.nn.Linear(args.dim, args.dim), torch.nn.Linear(args.dim, args.dim, bias=False)
    with torch.no_grad():
        neighbour.weight.copy_(conv.lin_l.weight)
        neighbour.bias.copy_(conv.lin_l.bias)
        root.weight.copy_(conv.lin_r.weight)
    ours_seconds, ours_out, ours_grad = timed(lambda h: neighbour(adjacency @ h) + root(h), x, args.repeats)
    pyg_seconds, pyg_out, pyg_grad = timed(lambda h: conv(h, edges), x, args.repeats)
    torch.testing.assert_close(pyg_out, ours_out, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pyg_grad, ours_grad, atol=1e-4, rtol=1e-4)
    print(f"{n:,} nodes, {pairs.shape[1]:,} pairs, dim {args.dim}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"ours (cached-transpose A @ h + two linear maps): {ours_seconds:.3f} s")
    print(f"PyG SAGEConv (gather and scatter over the edges): {pyg_seconds:.3f} s, "
          f"{pyg_seconds / ours_seconds:.2f}x ours")


if __name__ == "__main__":
    main()
