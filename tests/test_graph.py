"""Graph helpers: the structural start of the ID tables."""

import torch

from models.graph import random_projection_embedding


def test_nodes_with_the_same_neighbours_get_the_same_vector() -> None:
    # 0 - 1 and 2 - 3 (directed 0 -> 1, 3 -> 2), node 4 isolated. One hop: x_0 = norm(R_0 + R_1)
    # = x_1, x_2 = norm(R_2 + R_3) = x_3, x_4 = norm(R_4).
    edges = torch.tensor([[0, 3], [1, 2]])
    x = random_projection_embedding(edges, 5, dim=8, hops=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x[0], x[1])
    torch.testing.assert_close(x[2], x[3])
    projection = torch.randn(5, 8, generator=torch.Generator().manual_seed(0)) / 8**0.5
    torch.testing.assert_close(x[4], projection[4] / projection[4].norm())
    torch.testing.assert_close(x[0], torch.nn.functional.normalize(projection[0] + projection[1], dim=0))
    torch.testing.assert_close(x.norm(dim=1), torch.ones(5))


def test_second_hop_uses_the_row_normalised_adjacency() -> None:
    # Path 0 - 1 - 2. A_hat rows: 0 -> {1}, 1 -> {0: 1/2, 2: 1/2}, 2 -> {1}.
    edges = torch.tensor([[0, 1], [1, 2]])
    r = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)) / 2.0
    a_hat = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    expected = torch.nn.functional.normalize(r + a_hat @ r + a_hat @ a_hat @ r, dim=1)
    x = random_projection_embedding(edges, 3, dim=4, hops=2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, expected)
