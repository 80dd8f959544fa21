import pytest
import torch

from models.baselines import cooccurrence_scores, popularity_scores
from models.metrics import filtered_ranks, out_neighbour_csr

# 5-node training graph: 0 -> 1, 0 -> 2, 1 -> 2, 1 -> 3, 2 -> 3, 3 -> 4
TRAIN = torch.tensor([[0, 0, 1, 1, 2, 3], [1, 2, 2, 3, 3, 4]])
N = 5
IN_DEGREE = torch.tensor([0, 1, 2, 2, 1])

# Paths q -> a -> x (A @ A):
#   q = 0: via 1 -> 2, 3; via 2 -> 3       => x2: 1, x3: 2
#   q = 1: via 2 -> 3; via 3 -> 4          => x3: 1, x4: 1
#   q = 2: via 3 -> 4                      => x4: 1
#   q = 3: via 4 -> (none);  q = 4: none
PATHS = torch.tensor([
    [0, 0, 1, 2, 0],
    [0, 0, 0, 1, 1],
    [0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
], dtype=torch.float32)
# tie-break eps = 1 / (2 (max d_in + 1)) = 1/6, times d_in = [0, 1, 2, 2, 1]
TIE_BREAK = torch.tensor([0, 1, 2, 2, 1], dtype=torch.float32) / 6


def test_popularity_scores_repeat_in_degree():
    score_fn = popularity_scores(IN_DEGREE)
    scores = score_fn(torch.tensor([3, 0]))
    assert scores.dtype == torch.float32
    assert scores.tolist() == [[0, 1, 2, 2, 1], [0, 1, 2, 2, 1]]
    scores[1, 0] = 99.0  # a fresh tensor: writing must not leak into the next call or row
    assert scores[0, 0] == 0.0
    assert score_fn(torch.tensor([1])).tolist() == [[0, 1, 2, 2, 1]]


def test_cooccurrence_scores_match_hand_computed_matrix():
    score_fn = cooccurrence_scores(TRAIN, N)
    scores = score_fn(torch.arange(N))
    assert scores.dtype == torch.float32 and scores.shape == (N, N)
    torch.testing.assert_close(scores, PATHS + TIE_BREAK)
    # row 0 = [0, 1/6, 1 + 2/6, 2 + 2/6, 1/6]
    torch.testing.assert_close(scores[0], torch.tensor([0, 1 / 6, 4 / 3, 7 / 3, 1 / 6]))
    # query order and repeats are respected
    torch.testing.assert_close(score_fn(torch.tensor([2, 0, 2])), scores[[2, 0, 2]])


def test_cooccurrence_tie_break_never_beats_a_count():
    # 0 -> 1 -> 2 (x = 2: one path, in-degree 1); hub 3 has in-degree 4 but no path from 0.
    # eps = 1 / (2 * 5) = 0.1: hub 0.4 < x 1.1
    edges = torch.tensor([[0, 1, 4, 5, 6, 7], [1, 2, 3, 3, 3, 3]])
    row = cooccurrence_scores(edges, 8)(torch.tensor([0]))[0]
    assert row[2].item() == pytest.approx(1.1)
    assert row[3].item() == pytest.approx(0.4)
    assert row[2] > row[3]


def test_cooccurrence_counts_parallel_edges_once():
    # 0 -> 1 twice, 1 -> 2: one path 0 -> 1 -> 2; d_in = [0, 1, 1], eps = 1/4
    edges = torch.tensor([[0, 0, 1], [1, 1, 2]])
    row = cooccurrence_scores(edges, 3)(torch.tensor([0]))[0]
    torch.testing.assert_close(row, torch.tensor([0.0, 0.25, 1.25]))


def test_cooccurrence_through_filtered_ranks():
    # (0, 4): exclude 0, 1, 2 -> 3 (7/3) above 4 (1/6)                      -> rank 2
    # (0, 3): 3 is the best candidate                                       -> rank 1
    # (1, 0): exclude 1, 2, 3 -> 4 (1 + 1/6) above 0 (0)                    -> rank 2
    # (3, 2): exclude 3, 4 -> 0 (0), 1 (1/6), 2 (2/6): no path from 3, so popularity
    #         decides                                                        -> rank 1
    #         (without the tie-break 0, 1, 2 would tie: rank 1 + 2/2 = 2)
    # (3, 0): 1 and 2 above                                                 -> rank 3
    edges = torch.tensor([[0, 0, 1, 3, 3], [4, 3, 0, 2, 0]])
    indptr, indices = out_neighbour_csr(TRAIN, N)
    ranks = filtered_ranks(cooccurrence_scores(TRAIN, N), edges[0], edges[1], indptr, indices,
                           N, chunk_size=2)
    assert ranks.tolist() == [2.0, 1.0, 2.0, 1.0, 3.0]


def test_popularity_through_filtered_ranks_gives_mid_ranks():
    # (4, 2): exclude 4 -> 0 (0), 1 (1), 2 (2, target), 3 (2, tie)          -> rank 1.5
    # (4, 1): 2, 3 above, nothing else at 1 (4 excluded)                    -> rank 3
    edges = torch.tensor([[4, 4], [2, 1]])
    indptr, indices = out_neighbour_csr(TRAIN, N)
    ranks = filtered_ranks(popularity_scores(IN_DEGREE), edges[0], edges[1], indptr, indices, N)
    assert ranks.tolist() == [1.5, 3.0]


# --- training-free graph recommenders -------------------------------------------------------
#
# A + A^T of TRAIN (binary): 0-1, 0-2, 1-2, 1-3, 2-3, 3-4; degrees [2, 3, 3, 3, 1].
# Symmetric P rows: P0 = [0, 1/2, 1/2, 0, 0], P1 = [1/3, 0, 1/3, 1/3, 0],
#                   P2 = [1/3, 1/3, 0, 1/3, 0], P3 = [0, 1/3, 1/3, 0, 1/3], P4 = [0, 0, 0, 1, 0].
# Unreached nodes fall back to -1 + d_in / (max d_in + 1) = -1 + [0, 1, 2, 2, 1] / 3.
FALLBACK = -1 + torch.tensor([0, 1, 2, 2, 1], dtype=torch.float32) / 3


def test_walk_on_symmetrised_graph_sums_weighted_steps():
    from models.baselines import walk_scores

    # (P + P^2)[0]: P^2[0] = (P1 + P2) / 2 = [1/3, 1/6, 1/6, 1/3, 0]; node 4 is unreached
    row = walk_scores(TRAIN, N, (1, 1), symmetric=True)(torch.tensor([0]))[0]
    torch.testing.assert_close(row, torch.tensor([1 / 3, 2 / 3, 2 / 3, 1 / 3, FALLBACK[4]]))
    # one step only: the reverse edge 1 -> 0 makes 0 reachable from 1
    row = walk_scores(TRAIN, N, (1,), symmetric=True)(torch.tensor([1]))[0]
    torch.testing.assert_close(row, torch.tensor([1 / 3, FALLBACK[1], 1 / 3, 1 / 3, FALLBACK[4]]))


def test_directed_walk_follows_edges_only():
    from models.baselines import walk_scores

    # directed P: P0 = [0, 1/2, 1/2, 0, 0], P1 = [0, 0, 1/2, 1/2, 0], P2 = [0, 0, 0, 1, 0]
    # (0 P + 1 P^2)[0] = (P1 + P2) / 2 = [0, 0, 1/4, 3/4, 0]: only 2 and 3 are reached
    row = walk_scores(TRAIN, N, (0, 1), symmetric=False)(torch.tensor([0]))[0]
    torch.testing.assert_close(row, torch.tensor([FALLBACK[0], FALLBACK[1], 0.25, 0.75, FALLBACK[4]]))
    with pytest.raises(ValueError, match="walk weights"):
        walk_scores(TRAIN, N, (0, 0), symmetric=False)


def test_rp3beta_is_item_based_cf_divided_by_popularity():
    from models.baselines import rp3beta_scores

    # directed: q -> j -> (j's in-neighbours v) -> v's out-neighbours.
    # P_out rows P0 = [0, 1/2, 1/2, 0, 0], P1 = [0, 0, 1/2, 1/2, 0]; P_in rows (in-neighbours):
    # j = 1: [1, 0, 0, 0, 0], j = 2: [1/2, 1/2, 0, 0, 0].
    # P0 P_in = [3/4, 1/4, 0, 0, 0]; times P_out: 3/4 P0 + 1/4 P1 = [0, 3/8, 1/2, 1/8, 0]
    plain = rp3beta_scores(TRAIN, N, alpha=1.0, beta=0.0, symmetric=False)(torch.tensor([0]))[0]
    torch.testing.assert_close(plain, torch.tensor([FALLBACK[0], 0.375, 0.5, 0.125, FALLBACK[4]]))
    # beta 1: divided by d_in = 1, 2, 2 (nodes 1, 2, 3)
    penalised = rp3beta_scores(TRAIN, N, alpha=1.0, beta=1.0, symmetric=False)(torch.tensor([0]))[0]
    torch.testing.assert_close(penalised[1:4], torch.tensor([0.375, 0.25, 0.0625]))
    # alpha 0.5 raises each probability to 0.5 (h = 0.5 ** 0.5): P0 P_in -> [h + 1/2, 1/2, 0, 0, 0],
    # then (h + 1/2) P0 + 1/2 P1 -> [0, 1/2 + h/2, 1/2 + h, h/2, 0]
    root = rp3beta_scores(TRAIN, N, alpha=0.5, beta=0.0, symmetric=False)(torch.tensor([0]))[0]
    h = 0.5 ** 0.5
    torch.testing.assert_close(root[1:4], torch.tensor([0.5 + h / 2, 0.5 + h, h / 2]))


def test_item_knn_is_cosine_of_neighbour_sets_with_shrink():
    from models.baselines import item_knn_scores

    # neighbour sets on A + A^T: 0 {1, 2}, 1 {0, 2, 3}, 3 {1, 2, 4}, 4 {3}: 0 and 4 share nothing
    row = item_knn_scores(TRAIN, N, shrink=0.0)(torch.tensor([0]))[0]
    root6 = 6 ** 0.5
    torch.testing.assert_close(row, torch.tensor([1.0, 1 / root6, 1 / root6, 2 / root6, FALLBACK[4]]))
    shrunk = item_knn_scores(TRAIN, N, shrink=1.0)(torch.tensor([0]))[0]
    assert shrunk[3].item() == pytest.approx(2 / (root6 + 1))


@pytest.mark.parametrize("build", [
    lambda e, n: __import__("models.baselines").baselines.walk_scores(e, n, (1, 3, 3), True),
    lambda e, n: __import__("models.baselines").baselines.walk_scores(e, n, (0, 1, 2), False),
    lambda e, n: __import__("models.baselines").baselines.rp3beta_scores(e, n, 0.5, 0.25, True),
    lambda e, n: __import__("models.baselines").baselines.rp3beta_scores(e, n, 1.0, 0.0, False),
    lambda e, n: __import__("models.baselines").baselines.item_knn_scores(e, n, 10.0),
], ids=["walk", "walk_directed", "rp3beta", "rp3beta_directed", "item_knn"])
def test_pair_scores_equal_the_rows_entries(build):
    generator = torch.Generator().manual_seed(3)
    nodes = 30
    edges = torch.randint(0, nodes, (2, 70), generator=generator)
    recommender = build(edges, nodes)
    u, v = torch.randint(0, nodes, (2, 200), generator=generator)
    rows = recommender(u)
    torch.testing.assert_close(recommender.pairs(u, v, chunk_size=64), rows[torch.arange(200), v])
    # both kinds of score occur: reached (> 0) and popularity fallback (< 0)
    assert (rows > 0).any() and (rows < 0).any()


def test_choose_on_validation_keeps_the_best_grid_point():
    from models.baselines import choose_on_validation, walk_scores

    # validation edge 1 -> 0 is a reverse training edge: only the symmetrised walk reaches it
    indptr, indices = out_neighbour_csr(TRAIN, N)
    edges = torch.tensor([[1], [0]])
    best, tried = choose_on_validation(
        lambda symmetric: walk_scores(TRAIN, N, (1,), symmetric), [{"symmetric": False}, {"symmetric": True}],
        edges, indptr, indices, N)
    assert best == {"symmetric": True}
    # directed: 1 reaches only 2, 3 (excluded: its out-neighbours), so 0 and 4 get the fallback
    # (-1 and -2/3): 4 ranks above 0 -> rank 2, MRR 0.5; symmetrised: 0 is reached -> rank 1
    assert [row["val_mrr@10"] for row in tried] == [0.5, 1.0]
