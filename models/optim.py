"""Adam that updates only the rows a sparse gradient touches; with dense gradients, plain Adam.

Full-graph training (the only one since 2026-12-06) gives the ID tables dense gradients, so the
step is Adam's. The sparse path served the removed mini-batch training, where a batch touched a
fraction of the rows of each ID table. Dense Adam would move every row
every step (its moments keep decaying and pushing rows the batch never saw) and costs a pass over
all 2 x N x dim entries; ``torch.optim.SparseAdam`` has the right semantics but coalesces and
rebuilds sparse tensors every step (measured: docs/decisions.md, 2026-12-03).
:class:`LazyAdam` does the same update with row gathers and scatters, about 5x faster, and also
takes the dense parameters, so one optimiser serves the whole model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class LazyAdam(torch.optim.Optimizer):
    r"""Adam (Kingma & Ba) with lazy row updates for sparse gradients.

    For a dense gradient g: the usual Adam step. For a sparse COO gradient (e.g. from
    ``F.embedding(..., sparse=True)``) only the rows i it holds are updated:

    .. math::
        m_i \leftarrow \beta_1 m_i + (1 - \beta_1) g_i, \quad
        v_i \leftarrow \beta_2 v_i + (1 - \beta_2) g_i^2, \quad
        p_i \leftarrow p_i - \text{lr}\, \frac{m_i / (1 - \beta_1^k)}{\sqrt{v_i / (1 - \beta_2^k)} + \epsilon}

    with k the parameter's step count (as ``torch.optim.SparseAdam``). ``weight_decay`` adds
    ``weight_decay * p`` to the gradient (L2, on the touched rows only for sparse gradients).

    Args:
        params: parameters or parameter groups.
        lr, betas, eps, weight_decay: as for ``torch.optim.Adam``.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = float(state["step"])
                step_size = group["lr"] / (1 - beta1**step)
                root_correction = (1 - beta2**step) ** 0.5
                grad = param.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, values = grad.indices()[0], grad.values()
                    if group["weight_decay"]:
                        values = values + group["weight_decay"] * param.index_select(0, rows)
                    exp_avg = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
                    exp_avg_sq = (state["exp_avg_sq"].index_select(0, rows).mul_(beta2)
                                  .addcmul_(values, values, value=1 - beta2))
                    state["exp_avg"].index_copy_(0, rows, exp_avg)
                    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                    denominator = exp_avg_sq.sqrt_().div_(root_correction).add_(group["eps"])
                    param.index_add_(0, rows, exp_avg.div_(denominator), alpha=-step_size)
                else:
                    if group["weight_decay"]:
                        grad = grad.add(param, alpha=group["weight_decay"])
                    state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    denominator = state["exp_avg_sq"].sqrt().div_(root_correction).add_(group["eps"])
                    param.addcdiv_(state["exp_avg"], denominator, value=-step_size)
        return loss
