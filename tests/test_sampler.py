"""Tests of models/sampler.py on tiny digraphs whose neighbourhoods can be listed by hand."""

from __future__ import annotations

import pytest
import torch

from models.sampler import NeighbourhoodSampler

# Hand graph G (6 nodes); edge ids are the column numbers.
#   e0: 0->1   e1: 1->2   e2: 1->3   e3: 2->4   e4: 3->4   e5: 4->5   e6: 5->0
#
#        0 -> 1 -> 2 -> 4 -> 5 -> 0 (back to the start)
#             1 -> 3 -> 4
#
# Out-reach within 2 hops (hop 1 | hop 2):     In-reach within 2 hops (hop 1 | hop 2):
#   0: {1} | {2, 3}                              0: {5} | {4}
#   1: {2, 3} | {4} (via 2 and via 3)            1: {0} | {5}
#   2: {4} | {5}                                 2: {1} | {0}
#   3: {4} | {5}                                 3: {1} | {0}
#   4: {5} | {0}                                 4: {2, 3} | {1} (via 2 and via 3)
#   5: {0} | {1}                                 5: {4} | {2, 3}
G = torch.tensor([[0, 1, 1, 2, 3, 4, 5], [1, 2, 3, 4, 4, 5, 0]])
N_G = 6


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pairs(index: torch.Tensor, via: torch.Tensor, hop: torch.Tensor) -> set[tuple]:
    return set(zip(index[0].tolist(), index[1].tolist(), via.tolist(), hop.tolist(), strict=True))


def _per_node_counts(index: torch.Tensor, num_nodes: int) -> list[int]:
    return torch.bincount(index[0], minlength=num_nodes).tolist()


def _distances(edge_index: torch.Tensor, num_nodes: int, start: int, h_max: int) -> dict:
    """BFS hop distance (<= h_max) from start along the edges; start itself excluded."""
    adjacency: dict[int, list[int]] = {u: [] for u in range(num_nodes)}
    for u, v in edge_index.t().tolist():
        adjacency[u].append(v)
    dist, frontier = {start: 0}, [start]
    for h in range(1, h_max + 1):
        frontier = [v for u in frontier for v in adjacency[u] if v not in dist]
        for v in frontier:
            dist.setdefault(v, h)
        frontier = sorted(set(frontier))
    del dist[start]
    return dist


def test_sizes_are_respected_on_the_hand_graph():
    # Every node has quota 3 and out/in-degree <= 2, so each takes min(3, reach within 2 hops):
    # out-reach sizes 3, 3, 2, 2, 2, 2 and in-reach sizes 2, 2, 2, 2, 3, 3 (table above).
    sampler = NeighbourhoodSampler(G, N_G, torch.full((N_G,), 3), h_max=2)
    hoods = sampler.sample(_gen(0))
    assert _per_node_counts(hoods.out_index, N_G) == [3, 3, 2, 2, 2, 2]
    assert _per_node_counts(hoods.in_index, N_G) == [2, 2, 2, 2, 3, 3]


def test_h_max_one_never_exceeds_direct_degree():
    # Quota 3 but only hop 1: counts are the degrees, out 1, 2, 1, 1, 1, 1 and in 1, 1, 1, 1, 2, 1.
    sampler = NeighbourhoodSampler(G, N_G, torch.full((N_G,), 3), h_max=1)
    hoods = sampler.sample(_gen(0))
    assert _per_node_counts(hoods.out_index, N_G) == [1, 2, 1, 1, 1, 1]
    assert _per_node_counts(hoods.in_index, N_G) == [1, 1, 1, 1, 2, 1]
    assert bool((hoods.out_hop == 1).all()) and bool((hoods.in_hop == 1).all())


def test_top_up_reaches_two_hop_nodes_through_the_first_edge():
    # Node 0 has one direct out-neighbour (1, edge e0) and quota 3: it takes 1 at hop 1 and
    # tops up with 2 and 3 at hop 2, both reached through e0.
    # Node 1 (quota 3) has 2 and 3 at hop 1 and 4 at hop 2, reachable via e1 (1->2) and via
    # e2 (1->3): 4 counts once and keeps the lowest first edge, e1.
    sampler = NeighbourhoodSampler(G, N_G, torch.full((N_G,), 3), h_max=2)
    hoods = sampler.sample(_gen(1))
    out = _pairs(hoods.out_index, hoods.out_via_edge, hoods.out_hop)
    assert {p for p in out if p[0] == 0} == {(0, 1, 0, 1), (0, 2, 0, 2), (0, 3, 0, 2)}
    assert {p for p in out if p[0] == 1} == {(1, 2, 1, 1), (1, 3, 2, 1), (1, 4, 1, 2)}
    # In-direction of node 5: 4 at hop 1 (e5), then 2 and 3 at hop 2 through e5.
    inn = _pairs(hoods.in_index, hoods.in_via_edge, hoods.in_hop)
    assert {p for p in inn if p[0] == 5} == {(5, 4, 5, 1), (5, 2, 5, 2), (5, 3, 5, 2)}


def test_top_up_draws_only_the_remaining_quota():
    # Node 0 with quota 2: 1 at hop 1, then exactly one of {2, 3} at hop 2; over seeds both occur.
    sizes = torch.tensor([2, 3, 3, 3, 3, 3])
    sampler = NeighbourhoodSampler(G, N_G, sizes, h_max=2)
    seen = set()
    for seed in range(40):
        hoods = sampler.sample(_gen(seed))
        mine = _pairs(hoods.out_index, hoods.out_via_edge, hoods.out_hop)
        mine = {p for p in mine if p[0] == 0}
        assert len(mine) == 2 and (0, 1, 0, 1) in mine
        (extra,) = mine - {(0, 1, 0, 1)}
        assert extra[1] in (2, 3) and extra[2:] == (0, 2)
        seen.add(extra[1])
    assert seen == {2, 3}


def test_hop_three_follows_a_chain():
    # Chain 0 -> 1 -> 2 -> 3 (e0, e1, e2). Quota 3, h_max 3: S_out(0) = 1, 2, 3 at hops 1, 2, 3,
    # all through e0; S_in(3) = 2, 1, 0 at hops 1, 2, 3 through e2. h_max 2 stops at 2 / 1.
    chain = torch.tensor([[0, 1, 2], [1, 2, 3]])
    hoods = NeighbourhoodSampler(chain, 4, torch.full((4,), 3), h_max=3).sample(_gen(0))
    out = _pairs(hoods.out_index, hoods.out_via_edge, hoods.out_hop)
    assert {p for p in out if p[0] == 0} == {(0, 1, 0, 1), (0, 2, 0, 2), (0, 3, 0, 3)}
    inn = _pairs(hoods.in_index, hoods.in_via_edge, hoods.in_hop)
    assert {p for p in inn if p[0] == 3} == {(3, 2, 2, 1), (3, 1, 2, 2), (3, 0, 2, 3)}
    hoods = NeighbourhoodSampler(chain, 4, torch.full((4,), 3), h_max=2).sample(_gen(0))
    assert _per_node_counts(hoods.out_index, 4) == [2, 2, 1, 0]


def test_no_self_pairs_no_duplicates_and_loops_or_parallel_edges_ignored():
    # 0 <-> 1, 1 -> 2, plus a self-loop 2 -> 2 (e3) and a parallel copy of 1 -> 2 (e4).
    # S_out(0), quota 3, h_max 2: 1 at hop 1; hop 2 offers 0 (itself: excluded) and 2 -> {1, 2}.
    # S_out(1): 0 and 2 at hop 1 (2 once, via the lower id e2), 1 itself never.
    edges = torch.tensor([[0, 1, 1, 2, 1], [1, 0, 2, 2, 2]])
    hoods = NeighbourhoodSampler(edges, 3, torch.full((3,), 3), h_max=2).sample(_gen(0))
    out = _pairs(hoods.out_index, hoods.out_via_edge, hoods.out_hop)
    assert {p for p in out if p[0] == 0} == {(0, 1, 0, 1), (0, 2, 0, 2)}
    assert {p for p in out if p[0] == 1} == {(1, 0, 1, 1), (1, 2, 2, 1)}
    for index in (hoods.out_index, hoods.in_index):
        assert bool((index[0] != index[1]).all())
        assert len(set(map(tuple, index.t().tolist()))) == index.size(1)


def test_nodes_without_neighbours_get_no_pairs():
    # 0 -> 1 only; node 2 is isolated; 0 has no in-neighbours, 1 no out-neighbours.
    edges = torch.tensor([[0], [1]])
    hoods = NeighbourhoodSampler(edges, 3, torch.full((3,), 5), h_max=3).sample(_gen(0))
    assert _per_node_counts(hoods.out_index, 3) == [1, 0, 0]
    assert _per_node_counts(hoods.in_index, 3) == [0, 1, 0]


def test_matches_breadth_first_search_on_a_random_graph():
    # Quotas at least every node's degree keep all sampled 1-hop lists complete, so every node
    # must get exactly min(n_u, #reachable within h_max) pairs, each labelled with its BFS
    # distance, and via_edge = the lowest id of an edge u -> x with dist(x, v) = hop - 1.
    g = _gen(7)
    n, h_max = 30, 3
    edges = torch.randint(0, n, (2, 70), generator=g)
    edges = edges[:, edges[0] != edges[1]]
    edges = torch.unique(edges, dim=1)
    degree = torch.maximum(torch.bincount(edges[0], minlength=n), torch.bincount(edges[1], minlength=n))
    sizes = degree + torch.randint(0, 5, (n,), generator=g)
    hoods = NeighbourhoodSampler(edges, n, sizes, beta=1.0, h_max=h_max).sample(_gen(3))
    sides = [
        (edges, hoods.out_index, hoods.out_via_edge, hoods.out_hop, 1),
        (edges.flip(0), hoods.in_index, hoods.in_via_edge, hoods.in_hop, 0),
    ]
    for directed, index, via, hop, far_end in sides:
        for u in range(n):
            dist = _distances(directed, n, u, h_max)
            mine = index[0] == u
            assert int(mine.sum()) == min(int(sizes[u]), len(dist))
            for v, e, h in zip(index[1, mine].tolist(), via[mine].tolist(), hop[mine].tolist(),
                               strict=True):
                assert dist[v] == h
                first_edges = [
                    i for i in range(directed.size(1))
                    if directed[0, i] == u
                    and (h == 1 and int(directed[1, i]) == v
                         or h > 1 and _distances(directed, n, int(directed[1, i]), h - 1).get(v)
                         == h - 1)
                ]
                assert e == min(first_edges)
                assert int(edges[1 - far_end, e]) == u


def test_no_leakage_from_edges_not_given_to_the_sampler():
    # The full graph also has 0 -> 2 (held out); the sampler only sees G. (0, 2) may appear at
    # hop 2 through 0 -> 1 -> 2 but never at hop 1, and every hop-1 pair is its via_edge.
    sampler = NeighbourhoodSampler(G, N_G, torch.full((N_G,), 3), h_max=2)
    for seed in range(20):
        hoods = sampler.sample(_gen(seed))
        hop1 = hoods.out_hop == 1
        assert not any(p == (0, 2) for p in map(tuple, hoods.out_index[:, hop1].t().tolist()))
        assert torch.equal(hoods.out_index[:, hop1], G[:, hoods.out_via_edge[hop1]])
        in_hop1 = hoods.in_hop == 1
        assert torch.equal(hoods.in_index[:, in_hop1], G.flip(0)[:, hoods.in_via_edge[in_hop1]])
        # first hop always leaves u (out) / enters u (in)
        assert torch.equal(G[0, hoods.out_via_edge], hoods.out_index[0])
        assert torch.equal(G[1, hoods.in_via_edge], hoods.in_index[0])


def _bias_graph(extra_in_edges: int, copies: int) -> tuple[torch.Tensor, int]:
    """``copies`` disjoint copies of: 0 -> 1, 0 -> 2, and k -> 2 for k = 3..2 + extra_in_edges.

    Node 0 chooses one of its two out-neighbours; node 2 is the heavy one.
    """
    feeders = torch.arange(3, 3 + extra_in_edges)
    one = torch.stack([
        torch.cat([torch.tensor([0, 0]), feeders]),
        torch.cat([torch.tensor([1, 2]), torch.full_like(feeders, 2)]),
    ])
    per_copy = 3 + extra_in_edges
    offsets = torch.arange(copies).repeat_interleave(one.size(1)) * per_copy
    return one.repeat(1, copies) + offsets, per_copy


@pytest.mark.parametrize(
    ("extra", "beta", "low", "high"),
    [
        # w(1) = 1 + 0 + 1 = 2, w(2) = 17 + 0 + 1 = 18 -> p(2) = 0.9
        (16, 1.0, 0.87, 0.93),
        # beta = 0 is uniform whatever the degrees -> p(2) = 0.5
        (16, 0.0, 0.46, 0.54),
    ],
)
def test_degree_bias_shows_over_many_draws(extra, beta, low, high):
    # 4000 independent draws = one sample() over 4000 disjoint copies (each copy's node 0 has
    # quota 1). Binomial sd is 0.005 at p = 0.9 and 0.008 at p = 0.5: the bands are >= 5 sd.
    copies = 4000
    edges, per_copy = _bias_graph(extra, copies)
    n = per_copy * copies
    sampler = NeighbourhoodSampler(edges, n, torch.ones(n, dtype=torch.long), beta=beta, h_max=2)
    hoods = sampler.sample(_gen(11))
    anchors = torch.arange(copies) * per_copy
    of_anchor = torch.isin(hoods.out_index[0], anchors)
    chosen = hoods.out_index[1, of_anchor] - hoods.out_index[0, of_anchor]
    assert chosen.numel() == copies
    share_heavy = float((chosen == 2).double().mean())
    assert low <= share_heavy <= high


def test_in_direction_bias_prefers_the_heavy_source():
    # Mirror of the case above: 1 -> 0 and 2 -> 0, node 2 has 16 extra out-edges.
    # S_in(0) with quota 1: w(1) = 0 + 1 + 1 = 2, w(2) = 0 + 17 + 1 = 18 -> p(2) = 0.9.
    copies = 4000
    edges, per_copy = _bias_graph(16, copies)
    edges = edges.flip(0)
    n = per_copy * copies
    hoods = NeighbourhoodSampler(edges, n, torch.ones(n, dtype=torch.long)).sample(_gen(5))
    anchors = torch.arange(copies) * per_copy
    of_anchor = torch.isin(hoods.in_index[0], anchors)
    chosen = hoods.in_index[1, of_anchor] - hoods.in_index[0, of_anchor]
    assert chosen.numel() == copies
    assert 0.87 <= float((chosen == 2).double().mean()) <= 0.93


def _random_graph(seed: int, n: int = 200, e: int = 800) -> torch.Tensor:
    edges = torch.randint(0, n, (2, e), generator=_gen(seed))
    return edges[:, edges[0] != edges[1]]


def test_same_seed_same_draw_different_seed_different_draw():
    edges = _random_graph(0)
    sampler = NeighbourhoodSampler(edges, 200, torch.full((200,), 2), h_max=2)
    first, again, other = (sampler.sample(_gen(s)) for s in (42, 42, 43))
    for name in ("out_index", "out_via_edge", "out_hop", "in_index", "in_via_edge", "in_hop"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.out_index, other.out_index)
    assert not torch.equal(first.in_index, other.in_index)
    # one generator, two calls: a fresh draw each epoch
    g = _gen(42)
    assert not torch.equal(sampler.sample(g).out_index, sampler.sample(g).out_index)


def test_in_direction_mirrors_out_direction_on_the_reversed_graph():
    # With quotas covering every reachable set the draw is fully determined, so S_in on G must
    # equal S_out on the reversed graph pair for pair, via_edge and hop included.
    edges = _random_graph(1, n=40, e=90)
    sizes = torch.full((40,), 1000)
    forward = NeighbourhoodSampler(edges, 40, sizes, h_max=2).sample(_gen(0))
    backward = NeighbourhoodSampler(edges.flip(0), 40, sizes, h_max=2).sample(_gen(0))
    assert _pairs(forward.in_index, forward.in_via_edge, forward.in_hop) == _pairs(
        backward.out_index, backward.out_via_edge, backward.out_hop
    )
    assert _pairs(forward.out_index, forward.out_via_edge, forward.out_hop) == _pairs(
        backward.in_index, backward.in_via_edge, backward.in_hop
    )
    assert forward.in_index.size(1) > 0


def test_fixed_fan_out_ignores_h_max():
    # adaptive=False with fan-out 2: min(2, degree) direct neighbours, never a hop 2.
    edges = _random_graph(2)
    out_degree = torch.bincount(torch.unique(edges, dim=1)[0], minlength=200)
    sampler = NeighbourhoodSampler(edges, 200, torch.full((200,), 2), beta=0.0, h_max=3,
                                   adaptive=False)
    hoods = sampler.sample(_gen(0))
    assert bool((hoods.out_hop == 1).all()) and bool((hoods.in_hop == 1).all())
    assert torch.equal(torch.bincount(hoods.out_index[0], minlength=200), out_degree.clamp(max=2))


@pytest.mark.parametrize(
    "kwargs",
    [{"beta": -1.0}, {"h_max": 0}, {"sizes": torch.ones(5, dtype=torch.long)}],
)
def test_bad_arguments_are_refused(kwargs):
    args = {"edge_index": G, "num_nodes": N_G, "sizes": torch.ones(N_G, dtype=torch.long)}
    with pytest.raises(ValueError):
        NeighbourhoodSampler(**{**args, **kwargs})


def test_path_edges_list_every_hop_of_the_path():
    # n_u = 3, h_max = 2 on G: 0's out-pairs are 1 [e0], 2 [e0 e1], 3 [e0 e2];
    # 5's in-pairs are 4 [e5], 2 [e5 e3], 3 [e5 e4]. Hop-1 rows end in -1 padding.
    hoods = NeighbourhoodSampler(G, N_G, torch.full((N_G,), 3), h_max=2).sample(_gen(0))
    out = {(u, v): path for (u, v), path in zip(hoods.out_index.T.tolist(),
                                                hoods.out_path_edges.tolist(), strict=True)}
    assert out[(0, 1)] == [0, -1] and out[(0, 2)] == [0, 1] and out[(0, 3)] == [0, 2]
    inn = {(u, v): path for (u, v), path in zip(hoods.in_index.T.tolist(),
                                                hoods.in_path_edges.tolist(), strict=True)}
    assert inn[(5, 4)] == [5, -1] and inn[(5, 2)] == [5, 3] and inn[(5, 3)] == [5, 4]
    assert torch.equal(hoods.out_path_edges[:, 0], hoods.out_via_edge)


def test_path_edges_are_walks_from_u_to_v_on_a_random_graph():
    g = _gen(11)
    n = 40
    edges = torch.randint(0, n, (2, 120), generator=g)
    edges = torch.unique(edges[:, edges[0] != edges[1]], dim=1)
    hoods = NeighbourhoodSampler(edges, n, torch.randint(1, 8, (n,), generator=g), h_max=3).sample(_gen(5))
    for index, paths, hops, (start, end) in (
        (hoods.out_index, hoods.out_path_edges, hoods.out_hop, (0, 1)),
        (hoods.in_index, hoods.in_path_edges, hoods.in_hop, (1, 0)),  # walks against the edges
    ):
        assert paths.shape[1] == int(hops.max())
        for (u, v), path, hop in zip(index.T.tolist(), paths.tolist(), hops.tolist(), strict=True):
            walk = [e for e in path if e >= 0]
            assert len(walk) == hop and path[hop:] == [-1] * (len(path) - hop)
            node = u
            for e in walk:
                assert int(edges[start, e]) == node
                node = int(edges[end, e])
            assert node == v
