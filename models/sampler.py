"""Locally adaptive, degree-biased neighbourhood sampling (the "LA" and "B" of BLADE).

For every node u the sampler draws two neighbourhoods from the training graph:

- ``S_out(u)``: nodes v that u reaches by following out-edges u -> ... -> v (1..h_max hops);
- ``S_in(u)``:  nodes v that reach u by following edges v -> ... -> u (1..h_max hops).

Each holds up to ``n_u`` nodes (``models.power_law.neighbourhood_sizes``). Direct neighbours are
drawn first, without replacement, with probability biased towards well-connected nodes; a node
with fewer than ``n_u`` direct neighbours takes all of them and is topped up from 2-hop
neighbours (then 3-hop, ... up to ``h_max``) by the same biased draw.

Every pair remembers the training edges of the path that reached it (``path_edges``; the first
one is ``via_edge``), so that a supervision split can drop the pairs built on its own positive
edges at any hop (:meth:`models.batching.EpochAggregation.matrix`): a positive edge is never part of the
message passing that produces the embeddings it is scored on.

The DAEMON configuration (fixed uniform fan-out) is ``beta=0, adaptive=False`` with
``sizes = torch.full((num_nodes,), fanout)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SampledNeighbourhoods:
    """One draw of every node's out- and in-neighbourhood.

    Pairs are sorted by anchor node u, then by hop; within a hop the order is unspecified.

    Attributes:
        out_index: ``[2, M_out]`` rows (u, v): v in S_out(u).
        out_via_edge: ``[M_out]`` column in the training ``edge_index`` of the first-hop edge
            u -> x on the path that reached v (for hop 1, the edge u -> v itself).
        out_hop: ``[M_out]`` hop distance of v from u, in 1..h_max.
        in_index: ``[2, M_in]`` rows (u, v): v in S_in(u), i.e. v -> ... -> u.
        in_via_edge: ``[M_in]`` column of the first-hop edge x -> u on the path from v.
        in_hop: ``[M_in]`` hop distance, in 1..h_max.
        out_path_edges: ``[M_out, H]`` every training edge on the path that reached v, hop by
            hop (column 0 is ``out_via_edge``), ``-1`` after the path's end; H is the farthest
            hop drawn. Masking uses all of them: a pair whose path runs through a batch's
            positive edge at any hop would carry that edge into the embeddings it is scored on.
        in_path_edges: ``[M_in, H]`` the same for S_in.
    """

    out_index: torch.Tensor
    out_via_edge: torch.Tensor
    out_hop: torch.Tensor
    in_index: torch.Tensor
    in_via_edge: torch.Tensor
    in_hop: torch.Tensor
    out_path_edges: torch.Tensor
    in_path_edges: torch.Tensor



def _select_smallest_keys(
    group: torch.Tensor,
    log_weight: torch.Tensor,
    quota: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Weighted sampling without replacement per group (Efraimidis & Spirakis 2006).

    Candidate i of group g gets the key ``k_i = E_i / w_i`` with ``E_i ~ Exp(1)``; keeping the
    ``quota[g]`` smallest keys of each group is a draw without replacement with probabilities
    proportional to ``w``.

    Args:
        group: ``[M]`` group (anchor node) of each candidate, sorted ascending.
        log_weight: ``[M]`` log w_i.
        quota: ``[num_nodes]`` how many candidates each group keeps.
        generator: source of the exponential draws.

    Returns:
        ``[K]`` ascending indices of the kept candidates (so still grouped).
    """
    num_groups = quota.numel()
    counts = torch.bincount(group, minlength=num_groups)
    # Groups with no more candidates than quota keep them all: no random draw, no sort.
    needs_draw = (counts > quota)[group]
    contested = needs_draw.nonzero().squeeze(1)
    keep = ~needs_draw
    if contested.numel() == 0:
        return keep.nonzero().squeeze(1)
    contested_group = group[contested]
    key = torch.empty(contested.numel(), dtype=torch.float64)
    key.exponential_(generator=generator).mul_(torch.exp(-log_weight[contested]))
    order = torch.argsort(_group_major_key(contested_group, key, num_groups), stable=True)
    sorted_group = contested_group[order]
    group_count = torch.bincount(sorted_group, minlength=num_groups)
    group_start = group_count.cumsum(0) - group_count
    rank = torch.arange(sorted_group.numel()) - group_start[sorted_group]
    keep[contested[order[rank < quota[sorted_group]]]] = True
    return keep.nonzero().squeeze(1)


def _group_major_key(group: torch.Tensor, key: torch.Tensor, num_groups: int) -> torch.Tensor:
    """One int64 whose order is the lexicographic order of (group, key), for a single sort.

    The bits of a non-negative float64 read as int64 grow with its value, so the key's top
    ``63 - ceil(log2 num_groups)`` bits (45 for 262k nodes: exponent and 34 mantissa bits)
    go below the group id. Keys closer than that resolution tie and keep their input order.
    """
    group_bits = max(1, (num_groups - 1).bit_length())
    key_bits = key.clamp(min=0.0).view(torch.int64) >> group_bits
    return (group << (63 - group_bits)) | key_bits


def _expand_csr(
    ptr: torch.Tensor, count: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All entries of the CSR rows ``rows`` (with repetition).

    Returns ``(source, position)``: for each produced entry, its index into ``rows`` and its
    position in the CSR value arrays.
    """
    row_count = count[rows]
    source = torch.repeat_interleave(torch.arange(rows.numel()), row_count)
    row_start = row_count.cumsum(0) - row_count
    offset = torch.arange(source.numel()) - row_start[source]
    return source, ptr[rows][source] + offset


def _unique_pairs_lowest_edge(
    pair: torch.Tensor, edge_id: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted unique ``pair`` ids ``[P]``, the lowest ``edge_id`` seen with each ``[P]`` and the
    first position in ``pair`` holding that pair with that edge id ``[P]``."""
    unique_pair, inverse = torch.unique(pair, return_inverse=True)
    big = torch.iinfo(torch.long).max
    lowest = torch.full((unique_pair.numel(),), big, dtype=torch.long)
    lowest.scatter_reduce_(0, inverse, edge_id, reduce="amin")
    position = torch.arange(pair.numel())
    position = torch.where(edge_id == lowest[inverse], position, torch.full_like(position, big))
    first = torch.full((unique_pair.numel(),), big, dtype=torch.long)
    first.scatter_reduce_(0, inverse, position, reduce="amin")
    return unique_pair, lowest, first


class _OneSidedSampler:
    """Sampler for one direction; the in-direction is this class on the reversed graph.

    ``anchor -> candidate`` edges are the out-edges for S_out and the reversed in-edges for
    S_in; ``_log_weight`` gives beta log w(candidate) for any pair, at any hop.
    """

    def __init__(
        self,
        anchor: torch.Tensor,
        candidate: torch.Tensor,
        edge_id: torch.Tensor,
        num_nodes: int,
        sizes: torch.Tensor,
        log_node_weight: torch.Tensor,
        beta: float,
        h_max: int,
    ) -> None:
        self.num_nodes = num_nodes
        self.sizes = sizes
        self.h_max = h_max
        self.beta = beta
        self.log_node_weight = log_node_weight  # beta * log w(v) of every node

        # Self-loops would make u its own neighbour; parallel edges would count v twice.
        # Keep one candidate per (anchor, candidate), the lowest edge id, in CSR order.
        not_loop = anchor != candidate
        pair = anchor[not_loop] * num_nodes + candidate[not_loop]
        unique_pair, first_edge, _ = _unique_pairs_lowest_edge(pair, edge_id[not_loop])
        self.anchor = unique_pair // num_nodes
        self.candidate = unique_pair % num_nodes
        self.edge_id = first_edge
        self.log_weight = self._log_weight(self.anchor, self.candidate)

    def _log_weight(self, anchor: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        if self.beta == 0.0:
            return torch.zeros(anchor.numel(), dtype=torch.float64)
        return self.log_node_weight[candidate]

    def sample(
        self, generator: torch.Generator, adaptive: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw S(u) for all u. Returns ``(index [2, M], via_edge [M], hop [M], path_edges [M, H])``."""
        n = self.num_nodes
        kept = _select_smallest_keys(self.anchor, self.log_weight, self.sizes, generator)
        hop1_anchor = self.anchor[kept]
        hop1_node = self.candidate[kept]
        hop1_edge = self.edge_id[kept]
        anchors, nodes, edges = [hop1_anchor], [hop1_node], [hop1_edge]
        paths = [hop1_edge[:, None]]  # [M_h, h] edges of each pair's path, hop by hop
        hops = [torch.ones_like(hop1_anchor)]

        # CSR of the sampled 1-hop lists: hop h+1 = sampled neighbours of hop-h nodes, which
        # bounds the candidates by sum(n_u * n_x) instead of materialising A^h.
        hop1_count = torch.bincount(hop1_anchor, minlength=n)
        hop1_ptr = hop1_count.cumsum(0) - hop1_count
        chosen_count = hop1_count
        frontier_anchor, frontier_node, frontier_edge = hop1_anchor, hop1_node, hop1_edge
        frontier_path = paths[0]
        # pairs chosen so far as anchor * n + node ids, excluded from later hops
        chosen_pair = hop1_anchor * n + hop1_node

        for hop in range(2, self.h_max + 1 if adaptive else 1):
            remaining = self.sizes - chosen_count
            # A node that still has quota left took every candidate of the last hop, so its
            # whole last-hop list is the frontier.
            open_frontier = remaining[frontier_anchor] > 0
            if not bool(open_frontier.any()):
                break
            f_anchor = frontier_anchor[open_frontier]
            f_node = frontier_node[open_frontier]
            f_edge = frontier_edge[open_frontier]
            f_path = frontier_path[open_frontier]
            source, position = _expand_csr(hop1_ptr, hop1_count, f_node)
            c_anchor = f_anchor[source]
            c_node = hop1_node[position]
            c_edge = f_edge[source]
            c_path = torch.cat([f_path[source], hop1_edge[position][:, None]], dim=1)
            keep = c_anchor != c_node
            c_pair = c_anchor[keep] * n + c_node[keep]
            c_edge = c_edge[keep]
            c_path = c_path[keep]
            # Pairs already chosen enter the dedup with via_edge -1, which wins the minimum and
            # marks every candidate equal to them; one sort instead of isin + unique.
            open_chosen = chosen_pair[(remaining > 0)[chosen_pair // n]]
            unique_pair, via, first = _unique_pairs_lowest_edge(
                torch.cat([open_chosen, c_pair]),
                torch.cat([torch.full_like(open_chosen, -1), c_edge]),
            )
            # A node reachable along several paths is one candidate with the lowest via_edge
            # (the first such path in candidate order), so that the result depends only on
            # the generator.
            fresh = via >= 0
            unique_pair, via = unique_pair[fresh], via[fresh]
            path = c_path[first[fresh] - open_chosen.numel()]
            if unique_pair.numel() == 0:
                break
            u_anchor = unique_pair // n
            u_node = unique_pair % n
            kept = _select_smallest_keys(
                u_anchor, self._log_weight(u_anchor, u_node), remaining.clamp(min=0), generator
            )
            frontier_anchor, frontier_node, frontier_edge = u_anchor[kept], u_node[kept], via[kept]
            frontier_path = path[kept]
            anchors.append(frontier_anchor)
            nodes.append(frontier_node)
            edges.append(frontier_edge)
            paths.append(frontier_path)
            hops.append(torch.full_like(frontier_anchor, hop))
            chosen_count = chosen_count + torch.bincount(frontier_anchor, minlength=n)
            chosen_pair = torch.cat([chosen_pair, frontier_anchor * n + frontier_node])

        hop = torch.cat(hops)
        anchor = torch.cat(anchors)
        node = torch.cat(nodes)
        edge = torch.cat(edges)
        width = len(paths)
        path_edges = torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1]), value=-1)
                                for p in paths])
        if len(anchors) > 1:
            order = torch.argsort(anchor, stable=True)
            anchor, node, edge, hop = anchor[order], node[order], edge[order], hop[order]
            path_edges = path_edges[order]
        return torch.stack([anchor, node]), edge, hop, path_edges


class NeighbourhoodSampler:
    r"""Locally adaptive, degree-biased sampler of S_out(u) and S_in(u) for every node.

    A direct (1-hop) candidate v of u is drawn without replacement with probability

    .. math::
        p(v \mid u) \propto w(v)^{\beta}, \qquad w(v) = d_{in}(v) + d_{out}(v) + 1

    with degrees of the training graph given here; ``beta = 0`` is uniform. (Biases by the
    in-degree alone and by ``d_out(u) d_in(v)`` were flags once; no default, tuning or
    ablation used them: ``docs/decisions.md``, 2026-12-06.)

    Each node takes ``n_u = sizes[u]`` neighbours per direction. With ``adaptive=True`` a node
    with fewer than n_u direct neighbours takes all of them, then tops up with 2-hop nodes
    (then 3-hop, ..., up to ``h_max``) by the same biased draw. Hop-(h+1) candidates are the
    sampled 1-hop lists of the hop-h nodes (neighbours of sampled neighbours, never the full
    A^2), minus u itself and nodes chosen at a smaller hop; a node reached along several paths
    is one candidate and keeps the lowest first-hop edge id. With ``adaptive=False`` only
    direct neighbours are drawn and ``h_max`` is ignored: a fixed fan-out (pass
    ``sizes = torch.full((num_nodes,), fanout)``). Nodes without neighbours get no pairs.

    Self-loops are ignored; parallel edges count once (their lowest edge id is the via_edge).

    Args:
        edge_index: ``[2, E]`` training edges, row 0 = source u, row 1 = target v.
        num_nodes: N.
        sizes: ``[num_nodes]`` n_u >= 0, used for both S_out and S_in.
        beta: bias exponent, >= 0.
        h_max: farthest hop of the adaptive top-up, >= 1.
        adaptive: top up from farther hops (True) or fixed 1-hop fan-out (False).

    Example::

        sampler = NeighbourhoodSampler(train_edge_index, n, sizes, beta=1.0)
        hoods = sampler.sample(torch.Generator().manual_seed(epoch))
        out_agg = EpochAggregation(hoods.out_index, hoods.out_via_edge, n)  # models.batching
    """

    def __init__(
        self,
        edge_index: torch.Tensor,
        num_nodes: int,
        sizes: torch.Tensor,
        beta: float = 1.0,
        h_max: int = 2,
        adaptive: bool = True,
    ) -> None:
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
        if sizes.shape != (num_nodes,):
            raise ValueError(f"sizes must have shape [{num_nodes}], got {list(sizes.shape)}")
        if bool((sizes < 0).any()):
            raise ValueError("sizes must be >= 0")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if h_max < 1:
            raise ValueError(f"h_max must be >= 1, got {h_max}")
        edge_index = edge_index.to(torch.long)
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
            raise ValueError(f"edge_index holds node ids outside 0..{num_nodes - 1}")
        self.num_nodes = num_nodes
        self.adaptive = adaptive
        sizes = sizes.to(torch.long)
        source, target = edge_index[0], edge_index[1]
        out_degree = torch.bincount(source, minlength=num_nodes).to(torch.float64)
        in_degree = torch.bincount(target, minlength=num_nodes).to(torch.float64)

        log_node_weight = beta * (in_degree + out_degree + 1.0).log()
        edge_id = torch.arange(edge_index.size(1))
        common = dict(num_nodes=num_nodes, sizes=sizes, log_node_weight=log_node_weight,
                      beta=beta, h_max=h_max)
        self._out = _OneSidedSampler(source, target, edge_id, **common)
        self._in = _OneSidedSampler(target, source, edge_id, **common)

    def sample(self, generator: torch.Generator) -> SampledNeighbourhoods:
        """Draw fresh S_out(u) and S_in(u) for every node.

        Args:
            generator: CPU generator; identically seeded generators give identical output.

        Returns:
            :class:`SampledNeighbourhoods`. Per direction a node u gets ``min(n_u, degree)``
            pairs without adaptation, and with it ``min(n_u, #nodes reachable within h_max
            hops)`` as long as every intermediate node x keeps its whole 1-hop list
            (degree <= n_x); farther hops only see the sampled lists, so the count can fall
            short of the full reach around hubs.
        """
        out_index, out_via, out_hop, out_path = self._out.sample(generator, self.adaptive)
        in_index, in_via, in_hop, in_path = self._in.sample(generator, self.adaptive)
        return SampledNeighbourhoods(out_index, out_via, out_hop, in_index, in_via, in_hop,
                                     out_path, in_path)


__all__ = ["NeighbourhoodSampler", "SampledNeighbourhoods"]
