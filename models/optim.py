"""Adam, written out: the optimiser every recorded result was trained with.

It is ``torch.optim.Adam``'s update (L2 ``weight_decay`` added to the gradient, bias-corrected
moments), but its float operations come in another order than torch's kernels: on the same
gradients the parameters part by about 1e-7 per step (``tests/test_optim.py``), which training
amplifies into different curves. It stays so that the recorded comparisons reproduce exactly;
replacing it is a change to rerun every comparison for. (It also updated only the rows a sparse
gradient touched, for the removed mini-batch training; full-graph training gives dense
gradients, and that path went with it: ``docs/decisions.md``, 2026-12-06.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class Adam(torch.optim.Optimizer):
    r"""Adam (Kingma & Ba):

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        p \leftarrow p - \text{lr}\, \frac{m / (1 - \beta_1^k)}{\sqrt{v / (1 - \beta_2^k)} + \epsilon}

    with k the parameter's step count; ``weight_decay`` adds ``weight_decay * p`` to g.

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
                if param.grad.is_sparse:
                    raise ValueError("a sparse gradient: this Adam takes dense ones (full-graph training)")
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
                if group["weight_decay"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denominator = state["exp_avg_sq"].sqrt().div_(root_correction).add_(group["eps"])
                param.addcdiv_(state["exp_avg"], denominator, value=-step_size)
        return loss


__all__ = ["Adam"]
