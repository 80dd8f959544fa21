"""Asymmetric link-prediction loss of BLADE (docs: blade-method.md, sec. 4) and its negatives.

For a training edge u -> v with K uniform negatives w and x(a -> b) = scale * s_a . t_b:

    L_pos  = -log sigma( x(u -> v) )
    L_neg  = -sum_w log sigma( -x(u -> w) )
    L_asym = -log sigma( x(u -> v) ) - log sigma( -x(v -> u) )     one-way edges only
    L      = L_pos + L_neg + lambda_asym * L_asym

The asymmetric term is what teaches direction: it pushes the reverse score v -> u down
whenever the training graph has no edge v -> u.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from models.encoder import edge_score


@dataclass
class LossTerms:
    """The batch loss and its parts, each a scalar (weighted) batch mean.

    ``total = positive + negative + lambda_asym * asymmetric`` holds exactly: ``asymmetric``
    is averaged over the whole batch, with zero for edges that are not one-way.
    """

    total: Tensor
    positive: Tensor
    negative: Tensor
    asymmetric: Tensor
    similarity: Tensor | None = None


def blade_loss(
    s: Tensor,
    t: Tensor,
    pos_edges: Tensor,
    neg_targets: Tensor,
    one_way: Tensor,
    lambda_asym: float = 1.0,
    scale: float | Tensor = 1.0,
) -> LossTerms:
    r"""BLADE loss of a batch of B training edges.

    Per edge :math:`e = (u, v)`, with :math:`x(a, b) = \mathrm{scale}\; s_a \cdot t_b`:

    .. math::
        \ell_e = -\log\sigma(x(u, v)) - \sum_{k=1}^{K} \log\sigma(-x(u, w_k))
                 + \lambda\, \mathbb{1}[\text{one-way}_e]
                   \big(-\log\sigma(x(u, v)) - \log\sigma(-x(v, u))\big)

    and :math:`L` the batch mean of :math:`\ell_e`. ``log sigma`` is ``F.logsigmoid``, exact
    for large ``|x|``.

    Args:
        s: ``[N, d]`` source embeddings.
        t: ``[N, d]`` target embeddings.
        pos_edges: ``[2, B]`` training edges u -> v.
        neg_targets: ``[B, K]`` negative targets w for each edge (uniform nodes, drawn by the caller).
        one_way: ``[B]`` bool, True where v -> u is absent from the *training* graph; the
            caller computes it (the reverse score is only penalised for those edges).
        lambda_asym: weight of the asymmetric term.
        scale: score scale (the encoder's ``scale``).

    Returns:
        :class:`LossTerms`; ``total`` is what to back-propagate.
    """
    if pos_edges.dim() != 2 or pos_edges.shape[0] != 2:
        raise ValueError(f"pos_edges must have shape [2, B], got {list(pos_edges.shape)}")
    num_edges = pos_edges.shape[1]
    if neg_targets.dim() != 2 or neg_targets.shape[0] != num_edges:
        raise ValueError(f"neg_targets must have shape [B={num_edges}, K], got {list(neg_targets.shape)}")
    if one_way.shape != (num_edges,):
        raise ValueError(f"one_way must have shape [B={num_edges}], got {list(one_way.shape)}")

    u, v = pos_edges
    num_negatives = neg_targets.shape[1]
    forward_score = edge_score(s, t, torch.stack([u, v]), scale)  # [B]
    reverse_score = edge_score(s, t, torch.stack([v, u]), scale)  # [B], v -> u
    negative_index = torch.stack([u.repeat_interleave(num_negatives), neg_targets.reshape(-1)])
    negative_score = edge_score(s, t, negative_index, scale).view(num_edges, num_negatives)

    positive = -F.logsigmoid(forward_score)
    negative = -F.logsigmoid(-negative_score).sum(dim=1)
    asymmetric = (positive - F.logsigmoid(-reverse_score)) * one_way.to(positive.dtype)

    weight = torch.full_like(positive, 1.0 / max(num_edges, 1))
    positive_mean = (weight * positive).sum()
    negative_mean = (weight * negative).sum()
    asymmetric_mean = (weight * asymmetric).sum()
    return LossTerms(
        total=positive_mean + negative_mean + lambda_asym * asymmetric_mean,
        positive=positive_mean,
        negative=negative_mean,
        asymmetric=asymmetric_mean,
    )


def sampled_softmax_loss(
    s: Tensor,
    t: Tensor,
    pos_edges: Tensor,
    pool: Tensor,
    one_way: Tensor,
    lambda_asym: float = 0.0,
    scale: float | Tensor = 1.0,
) -> LossTerms:
    r"""Sampled-softmax loss of B training edges against one shared pool of P uniform negatives.

    With :math:`x(a, b) = \mathrm{scale}\; s_a \cdot t_b` and pool :math:`Z`, per edge (u, v):

    .. math::
        \ell_e = -x(u, v) + \log\Big(e^{x(u, v)} + \sum_{z \in Z} e^{x(u, z)}\Big)
                 + \lambda\, \mathbb{1}[\text{one-way}_e]\, \mathrm{softplus}\big(x(v, u) - x(u, v)\big)

    The first two terms are the cross-entropy of picking v among ``{v} + Z`` (``positive`` is
    the batch mean of ``-x(u, v)``, ``negative`` that of the log-sum-exp, so their sum is the
    cross-entropy). Unlike the logistic loss it does not care about the absolute level of the
    scores, only their order, which is what ranking measures. The direction term is pairwise
    (BPR): on a one-way edge the forward score must beat the reverse one. The pool is uniform,
    so no log-Q correction is needed; a pool member that happens to be a true target of u is
    kept (about P * degree / N per edge).

    Args:
        s, t: ``[N, d]`` source / target embeddings (all nodes).
        pos_edges: ``[2, B]``; pool: ``[P]`` node ids; one_way: ``[B]`` bool.
    """
    u, v = pos_edges
    source = scale * s[u]  # the scale on [B, d] rather than on the [B, P] scores: one pass fewer
    forward_score = (source * t[v]).sum(dim=-1)  # [B]
    pool_score = source @ t[pool].T  # [B, P]
    log_partition = torch.logaddexp(forward_score, torch.logsumexp(pool_score, dim=1))
    reverse_score = scale * (s[v] * t[u]).sum(dim=-1)
    asymmetric = F.softplus(reverse_score - forward_score) * one_way.to(forward_score.dtype)
    positive, negative = -forward_score.mean(), log_partition.mean()
    asymmetric_mean = asymmetric.mean()
    return LossTerms(positive + negative + lambda_asym * asymmetric_mean, positive, negative,
                     asymmetric_mean)


def similarity_softmax_loss(h: Tensor, pairs: Tensor, pool: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    r"""DAEMON's similarity terms (its Eq. 2, terms 5-6) in sampled-softmax form, for one role.

    For every similar pair (a, b) in ``pairs`` ``[2, B]`` the cross-entropy of picking b among
    ``{b} + pool`` by :math:`\mathrm{scale}\; h_a \cdot h_x` (h = s for the source role, t
    for the target role): co-viewed products get close source vectors and close target vectors.
    Returns the batch mean (0 for an empty batch).
    """
    if pairs.shape[1] == 0:
        return h.new_zeros(())
    anchor = h[pairs[0]]
    positive = scale * (anchor * h[pairs[1]]).sum(dim=-1)
    log_partition = torch.logaddexp(positive, torch.logsumexp(scale * (anchor @ h[pool].T), dim=1))
    return (log_partition - positive).mean()

