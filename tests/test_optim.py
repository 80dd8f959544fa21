"""LazyAdam: Adam on dense gradients, row-wise lazy Adam on sparse ones."""

import pytest
import torch
import torch.nn.functional as F

from models.optim import LazyAdam


def test_dense_parameters_follow_torch_adam():
    torch.manual_seed(0)
    start = torch.randn(3, 4)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    lazy = LazyAdam([ours], lr=0.1, weight_decay=0.01)
    adam = torch.optim.Adam([theirs], lr=0.1, weight_decay=0.01)
    for step in range(5):
        target = torch.randn(3, 4, generator=torch.Generator().manual_seed(step))
        for param, optimiser in ((ours, lazy), (theirs, adam)):
            optimiser.zero_grad()
            ((param - target) ** 2).sum().backward()
            optimiser.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_first_sparse_step_moves_touched_rows_by_lr_and_leaves_the_rest():
    table = torch.nn.Parameter(torch.zeros(5, 2))
    optimiser = LazyAdam([table], lr=0.5)
    rows = F.embedding(torch.tensor([1, 3]), table, sparse=True)
    (rows * torch.tensor([[2.0, -1.0], [-3.0, 4.0]])).sum().backward()
    assert table.grad.is_sparse
    optimiser.step()
    # first Adam step: m_hat = g, v_hat = g^2, so each touched entry moves by -lr * sign(g)
    expected = torch.zeros(5, 2)
    expected[1] = torch.tensor([-0.5, 0.5])
    expected[3] = torch.tensor([0.5, -0.5])
    assert torch.allclose(table.detach(), expected, atol=1e-6)


def test_untouched_rows_keep_their_moments():
    table = torch.nn.Parameter(torch.zeros(3, 1))
    optimiser = LazyAdam([table], lr=0.1)
    for nodes in (torch.tensor([0, 1]), torch.tensor([1])):
        optimiser.zero_grad()
        F.embedding(nodes, table, sparse=True).sum().backward()
        optimiser.step()
    moments = optimiser.state[table]["exp_avg"].squeeze(1)
    # row 0 saw one gradient of 1 (m = 0.1, not decayed by the second step); row 1 two; row 2 none
    assert moments.tolist() == pytest.approx([0.1, 0.19, 0.0])
    assert table[2].item() == 0.0


def test_state_dict_round_trip_continues_identically():
    def run(resume: bool) -> torch.Tensor:
        table = torch.nn.Parameter(torch.ones(4, 2))
        optimiser = LazyAdam([table], lr=0.1)
        for step in range(4):
            if resume and step == 2:
                state = optimiser.state_dict()
                optimiser = LazyAdam([table], lr=0.1)
                optimiser.load_state_dict(state)
            optimiser.zero_grad()
            F.embedding(torch.tensor([step % 4, 0]), table, sparse=True).pow(2).sum().backward()
            optimiser.step()
        return table.detach()

    assert torch.equal(run(False), run(True))


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr"):
        LazyAdam([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
