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
