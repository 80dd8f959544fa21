"""models.optim.Adam: torch.optim.Adam's update, written out."""

import pytest
import torch
import torch.nn.functional as F

from models.optim import Adam


def test_parameters_follow_torch_adam_to_float_precision():
    torch.manual_seed(0)
    start = torch.randn(3, 4)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    written_out = Adam([ours], lr=0.1, weight_decay=0.01)
    adam = torch.optim.Adam([theirs], lr=0.1, weight_decay=0.01)
    for step in range(5):
        target = torch.randn(3, 4, generator=torch.Generator().manual_seed(step))
        for param, optimiser in ((ours, written_out), (theirs, adam)):
            optimiser.zero_grad()
            ((param - target) ** 2).sum().backward()
            optimiser.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_first_step_moves_every_entry_by_lr_against_its_gradient():
    table = torch.nn.Parameter(torch.zeros(2, 2))
    optimiser = Adam([table], lr=0.5)
    (table * torch.tensor([[2.0, -1.0], [-3.0, 4.0]])).sum().backward()
    optimiser.step()
    # first Adam step: m_hat = g, v_hat = g^2, so each entry moves by -lr * sign(g)
    assert torch.allclose(table.detach(), torch.tensor([[-0.5, 0.5], [0.5, -0.5]]), atol=1e-6)


def test_state_dict_round_trip_continues_identically():
    def run(resume: bool) -> torch.Tensor:
        table = torch.nn.Parameter(torch.ones(4, 2))
        optimiser = Adam([table], lr=0.1)
        for step in range(4):
            if resume and step == 2:
                state = optimiser.state_dict()
                optimiser = Adam([table], lr=0.1)
                optimiser.load_state_dict(state)
            optimiser.zero_grad()
            table[torch.tensor([step % 4, 0])].pow(2).sum().backward()
            optimiser.step()
        return table.detach()

    assert torch.equal(run(False), run(True))


def test_rejects_bad_settings_and_sparse_gradients():
    with pytest.raises(ValueError, match="lr"):
        Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    table = torch.nn.Parameter(torch.zeros(3, 2))
    F.embedding(torch.tensor([1]), table, sparse=True).sum().backward()
    with pytest.raises(ValueError, match="sparse gradient"):
        Adam([table]).step()
