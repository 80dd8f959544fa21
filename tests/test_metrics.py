import math

import pytest
import torch

from models.metrics import (
    bucketed_metrics,
    degree_buckets,
    filtered_ranks,
    hit_rate_at_k,
    mrr_at_k,
    out_neighbour_csr,
    ranking_metrics,
)
from models.pair_metrics import direction_auc, one_way_mask

# 5-node training graph: 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 3 -> 4
TRAIN = torch.tensor([[0, 0, 1, 2, 3], [1, 2, 3, 3, 4]])
N = 5
# Row q = score(q, x) for x = 0..4.
SCORES = torch.tensor([
    [9.0, 8.0, 7.0, 5.0, 5.0],  # q = 0: itself and its neighbours 1, 2 score highest
    [4.0, 6.0, 5.0, 9.0, 4.0],  # q = 1: itself (6) and neighbour 3 (9) above the target 0
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0, 2.0, 3.0, 0.0, 2.0],  # q = 3
    [0.0, 0.0, 0.0, 0.0, 0.0],
])


def fixed_scores(queries: torch.Tensor) -> torch.Tensor:
    return SCORES[queries]


# Evaluation edges and their filtered mid-ranks, worked out by hand:
# (0, 3): exclude 0, 1, 2 -> candidates 3 (5, target), 4 (5, tie) -> 1 + 0 + 1/2 = 1.5
#         (unfiltered: 0, 1, 2 above, 4 tied -> 4.5)
# (1, 0): exclude 1, 3 -> candidates 0 (4, target), 2 (5, above), 4 (4, tie) -> 1 + 1 + 1/2 = 2.5
#         (unfiltered: 1, 2, 3 above, 4 tied -> 4.5)
# (0, 4): same row as (0, 3) with 3 and 4 swapped -> 1.5 (query 0 repeats in the chunk)
# (3, 4): 4 is a training neighbour of 3 but the target is never excluded; exclude 3 ->
#         candidates 0 (1), 1 (2, tie), 2 (3, above), 4 (2, target) -> 1 + 1 + 1/2 = 2.5
EDGES = torch.tensor([[0, 1, 0, 3], [3, 0, 4, 4]])
EXPECTED = [1.5, 2.5, 1.5, 2.5]


def test_filtered_ranks_match_hand_computation():
    indptr, indices = out_neighbour_csr(TRAIN, N)
    ranks = filtered_ranks(fixed_scores, EDGES[0], EDGES[1], indptr, indices, N)
    assert ranks.tolist() == EXPECTED
    assert ranks.dtype == torch.float64


def test_exclusion_changes_the_rank():
    # Without training neighbours only q itself is excluded:
    # (0, 3): 1, 2 above, 4 tied -> 3.5;   (1, 0): 2, 3 above, 4 tied -> 3.5
    # (0, 4): 3.5;                         (3, 4): unchanged 2.5 (3 was the only exclusion)
    no_neighbours = torch.zeros(N + 1, dtype=torch.long)
    ranks = filtered_ranks(fixed_scores, EDGES[0], EDGES[1], no_neighbours,
                           torch.zeros(0, dtype=torch.long), N)
    assert ranks.tolist() == [3.5, 3.5, 3.5, 2.5]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1000])
def test_chunk_size_does_not_change_ranks(chunk_size):
    indptr, indices = out_neighbour_csr(TRAIN, N)
    ranks = filtered_ranks(fixed_scores, EDGES[0], EDGES[1], indptr, indices, N,
                           chunk_size=chunk_size)
    assert ranks.tolist() == EXPECTED


def test_filtered_ranks_equal_brute_force_with_heavy_ties():
    # Random small cases with many ties, +-inf scores, repeated queries and parallel edges,
    # against a direct count of the definition.
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = 12
        train = torch.randint(0, n, (2, 30), generator=generator)
        queries = torch.randint(0, n, (25,), generator=generator)
        targets = torch.randint(0, n, (25,), generator=generator)
        scores = torch.randint(0, 4, (n, n), generator=generator).float()
        scores[scores == 3] = float("-inf")
        scores[scores == 2] = float("inf")
        indptr, indices = out_neighbour_csr(train, n)
        ranks = filtered_ranks(lambda q, s=scores: s[q], queries, targets, indptr, indices, n,
                               chunk_size=7)
        expected = []
        for q, v in zip(queries.tolist(), targets.tolist(), strict=True):
            excluded = ({q} | set(train[1][train[0] == q].tolist())) - {v}
            others = [x for x in range(n) if x not in excluded and x != v]
            row, t = scores[q], scores[q, v]
            expected.append(1 + sum(float(row[x] > t) for x in others)
                            + 0.5 * sum(float(row[x] == t) for x in others))
        assert ranks.tolist() == expected


def test_filtered_ranks_reports_progress_and_handles_no_edges():
    indptr, indices = out_neighbour_csr(TRAIN, N)
    seen = []
    filtered_ranks(fixed_scores, EDGES[0], EDGES[1], indptr, indices, N, chunk_size=3,
                   progress=seen.append)
    assert seen == [3, 4]
    empty = torch.zeros(0, dtype=torch.long)
    assert filtered_ranks(fixed_scores, empty, empty, indptr, indices, N).numel() == 0


def test_filtered_ranks_rejects_bad_inputs():
    indptr, indices = out_neighbour_csr(TRAIN, N)
    with pytest.raises(ValueError, match="shape"):
        filtered_ranks(lambda q: SCORES[q][:, :4], EDGES[0], EDGES[1], indptr, indices, N)
    with pytest.raises(ValueError, match="NaN"):
        filtered_ranks(lambda q: torch.full((q.numel(), N), float("nan")), EDGES[0], EDGES[1],
                       indptr, indices, N)
    with pytest.raises(ValueError, match="N \\+ 1"):
        filtered_ranks(fixed_scores, EDGES[0], EDGES[1], indptr[:-1], indices, N)


def test_out_neighbour_csr():
    indptr, indices = out_neighbour_csr(torch.tensor([[2, 0, 2, 0], [1, 3, 0, 4]]), 4)
    assert indptr.tolist() == [0, 2, 2, 4, 4]
    assert indices.tolist() == [3, 4, 1, 0]


def test_hit_rate_and_mrr_at_k():
    ranks = torch.tensor([1.0, 3.0, 12.0, 2.5])
    # HR@5: 1, 3, 2.5 are within 5 -> 3/4; MRR@5 = (1 + 1/3 + 0 + 1/2.5) / 4
    assert hit_rate_at_k(ranks, 5) == pytest.approx(0.75)
    assert mrr_at_k(ranks, 5) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2.5) / 4)
    # k = 3: rank 3 counts (rank <= k) -> HR 3/4, MRR (1 + 1/3 + 1/2.5) / 4
    assert hit_rate_at_k(ranks, 3) == pytest.approx(0.75)
    assert mrr_at_k(ranks, 3) == pytest.approx((1 + 1 / 3 + 1 / 2.5) / 4)
    # k = 2: only rank 1 -> HR 1/4, MRR 1/4 (2.5 > 2 is a miss)
    assert hit_rate_at_k(ranks, 2) == pytest.approx(0.25)
    assert mrr_at_k(ranks, 2) == pytest.approx(0.25)
    metrics = ranking_metrics(ranks, ks=(5, 20))
    assert metrics == pytest.approx({
        "hit_rate@5": 0.75, "mrr@5": (1 + 1 / 3 + 1 / 2.5) / 4,
        "hit_rate@20": 1.0, "mrr@20": (1 + 1 / 3 + 1 / 12 + 1 / 2.5) / 4,
        "count": 4,
    })
    assert math.isnan(hit_rate_at_k(torch.zeros(0), 5))
    assert math.isnan(mrr_at_k(torch.zeros(0), 5))


def test_direction_auc_counts_ties_as_half():
    # pairs (pos, neg): (.9,.5) 1, (.9,.1) 1, (.5,.5) 1/2, (.5,.1) 1, (.3,.5) 0, (.3,.1) 1
    # -> 4.5 / 6 = 0.75
    pos = torch.tensor([0.9, 0.5, 0.3])
    neg = torch.tensor([0.5, 0.1])
    assert direction_auc(pos, neg) == pytest.approx(0.75)
    assert direction_auc(neg, pos) == pytest.approx(0.25)
    assert direction_auc(torch.ones(3), torch.ones(2)) == pytest.approx(0.5)
    assert math.isnan(direction_auc(pos, torch.zeros(0)))


def test_one_way_mask_with_one_reciprocal_pair():
    # graph: 0 <-> 1 reciprocal, 1 -> 2, 2 -> 3
    graph = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 3]])
    # (0,1), (1,0) two-way; (1,2), (2,3) one-way; (3,2) not in graph but its reverse is;
    # (3,0) has no reverse
    edges = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 0, 2, 3, 2, 0]])
    mask = one_way_mask(edges, graph, num_nodes=4)
    assert mask.tolist() == [False, False, True, True, False, True]


def test_degree_buckets_merge_tied_quartiles():
    # sorted degrees 0 0 0 0 1 1 5 9 (Q = 8): lower quantiles at positions 7j//4 = 1, 3, 5, 7
    # -> upper bounds 0, 0, 1, 9: q1 and q2 share 0 and merge
    degree = torch.tensor([5, 0, 1, 0, 9, 0, 1, 0])
    buckets = degree_buckets(degree, low_degree_max=2)
    assert list(buckets) == ["q1-q2: d_in 0", "q3: d_in 1", "q4: d_in 5-9", "low: d_in <= 2"]
    assert buckets["q1-q2: d_in 0"].tolist() == [False, True, False, True, False, True, False,
                                                 True]
    assert buckets["q4: d_in 5-9"].tolist() == [True, False, False, False, True, False, False,
                                                False]
    assert buckets["low: d_in <= 2"].tolist() == (degree <= 2).tolist()
    quartiles = torch.stack([m for name, m in buckets.items() if not name.startswith("low")])
    assert quartiles.sum(0).tolist() == [1] * 8  # disjoint and covering
    assert bool(quartiles.any(1).all())  # non-empty


def test_degree_buckets_distinct_and_constant_degrees():
    buckets = degree_buckets(torch.tensor([7, 6, 5, 4, 3, 2, 1, 0]))
    assert list(buckets) == ["q1: d_in 0-1", "q2: d_in 2-3", "q3: d_in 4-5", "q4: d_in 6-7",
                             "low: d_in <= 2"]
    constant = degree_buckets(torch.tensor([3, 3, 3]))
    assert list(constant) == ["q1-q4: d_in 3", "low: d_in <= 2"]
    assert constant["q1-q4: d_in 3"].all() and not constant["low: d_in <= 2"].any()
    assert list(degree_buckets(torch.zeros(0, dtype=torch.long))) == ["low: d_in <= 2"]


def test_bucketed_metrics():
    ranks = torch.tensor([1.0, 3.0, 12.0, 2.5])
    buckets = {"a": torch.tensor([True, True, False, False]),
               "b": torch.tensor([False, False, True, True])}
    metrics = bucketed_metrics(ranks, buckets, ks=(5,))
    # a: ranks 1, 3 -> HR@5 1, MRR@5 (1 + 1/3)/2;  b: 12, 2.5 -> HR@5 1/2, MRR@5 (0 + 0.4)/2
    assert metrics["a"] == pytest.approx({"hit_rate@5": 1.0, "mrr@5": 2 / 3, "count": 2})
    assert metrics["b"] == pytest.approx({"hit_rate@5": 0.5, "mrr@5": 0.2, "count": 2})


def test_global_link_metrics_follow_the_ogb_rule():
    from models.pair_metrics import global_link_metrics

    # negatives sorted: 5, 2, 0. Hits@1: above 5 -> none; Hits@2: above 2 -> 3 only;
    # Hits@3: above 0 -> both; Hits@4: the pool has 3 negatives, every positive counts.
    # AUC: 3 beats 2 and 0, 1 beats 0 -> 3 of 6 pairs
    metrics = global_link_metrics(torch.tensor([3.0, 1.0]), torch.tensor([2.0, 0.0, 5.0]), ks=(1, 2, 3, 4))
    assert metrics == {"auc": 0.5, "hits@1": 0.0, "hits@2": 0.5, "hits@3": 1.0, "hits@4": 1.0}
    # a query-only term moves the global metric, never a per-query ranking: +10 on the
    # positives' queries puts both above every negative
    assert global_link_metrics(torch.tensor([13.0, 11.0]), torch.tensor([2.0, 0.0, 5.0]),
                               ks=(1,))["hits@1"] == 1.0


def test_uniform_non_edges_are_seeded_distinct_non_edges():
    from models.pair_metrics import uniform_non_edges

    edges = torch.tensor([[0, 1], [1, 2]])
    # 3 nodes: 6 ordered pairs u != v, 2 of them edges -> at most 4 non-edges
    pool = uniform_non_edges(edges, 3, 10, seed=0)
    assert sorted(map(tuple, pool.T.tolist())) == [(0, 2), (1, 0), (2, 0), (2, 1)]
    big = torch.randint(0, 50, (2, 300), generator=torch.Generator().manual_seed(1))
    pool = uniform_non_edges(big, 50, 500, seed=4)
    assert pool.shape == (2, 500)
    assert (pool[0] != pool[1]).all()
    keys = pool[0] * 50 + pool[1]
    assert torch.unique(keys).numel() == 500
    assert not torch.isin(keys, big[0] * 50 + big[1]).any()
    assert torch.equal(pool, uniform_non_edges(big, 50, 500, seed=4))
