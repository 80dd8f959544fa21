"""Full-graph training: every step encodes all N nodes, on a disjoint message-passing /
supervision split of the epoch's training edges.

The earlier mini-batch training encoded only a batch's computation graph and masked, per batch,
the sampled paths that used the batch's own edges. On the bundled product graph it did not learn
(the loss rose, validation stayed at the structural start; the ablation row "mini-batch training
(before)"), and it was removed on 2026-12-06. This module trains the way the measurements in
``docs/blade-method.md`` (section 8) point to:

- **One split per epoch.** A seeded share ``supervision_fraction`` of the training edges are the
  epoch's *supervision* edges (the loss's positives); message passing (the sampled directed
  neighbourhoods, the similarity pairs and the in-degrees of the target prior) uses only the
  others. No positive edge is ever inside the neighbourhoods that embed it, and the model sees
  the same kind of graph in training as at inference (where all training edges pass messages).
- **Full-graph steps.** Each step encodes every node from the epoch's aggregation matrices (a
  few sparse products of the whole graph) and takes the loss on a batch of ``batch_size``
  supervision edges; an epoch is one pass over the supervision edges.
- **Sampled softmax** over one pool of uniform negatives per step
  (:func:`models.loss.sampled_softmax_loss`), or the logistic loss of the paper.
- **Similarity channel** (DAEMON's co-view channel, its Eq. 2 terms 5-6): symmetric pairs from
  the training graph (:func:`similarity_pairs`) aggregated in every layer and, with
  ``lambda_similarity > 0``, pulled together in the loss.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from models.batching import EpochAggregation
from models.graph import reverse_exists
from models.loss import blade_loss, sampled_softmax_loss, similarity_softmax_loss
from models.module import LinkPredictionModule, TrainingDivergedError
from models.sparse import ComputationGraph

SIMILARITY_KINDS = ("none", "reciprocal", "undirected")
LOSSES = ("softmax", "logistic")


def similarity_pairs(edges: Tensor, num_nodes: int, kind: str) -> tuple[Tensor, Tensor]:
    """Symmetric similarity pairs of a directed graph and the training edges each rests on.

    - ``"reciprocal"``: (u, v) and (v, u) for every pair linked both ways (u -> v and v -> u),
      each resting on both edges: the stand-in for co-view pairs when a graph has one edge type.
    - ``"undirected"``: (u, v) and (v, u) for every edge u -> v, resting on that edge.

    Self-loops are dropped. Returns ``(index [2, M], path_edges [M, H])`` for
    :class:`models.batching.EpochAggregation` (a pair is dropped when any edge it rests on is a
    supervision edge); a pair listed twice counts twice in the mean.
    """
    if kind not in SIMILARITY_KINDS[1:]:
        raise ValueError(f"similarity must be one of {SIMILARITY_KINDS[1:]}, got {kind!r}")
    edges = edges.long()
    edge_id = torch.arange(edges.shape[1])
    not_loop = edges[0] != edges[1]
    if kind == "undirected":
        edges, edge_id = edges[:, not_loop], edge_id[not_loop]
        index = torch.cat([edges, edges.flip(0)], dim=1)
        return index, torch.cat([edge_id, edge_id])[:, None]
    if edges.shape[1] == 0:
        return edges, edge_id.reshape(0, 2)
    # Reciprocal: match every edge u -> v with an edge v -> u (the lowest id if parallel).
    key = edges[0] * num_nodes + edges[1]
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]
    reverse_key = edges[1] * num_nodes + edges[0]
    position = torch.searchsorted(sorted_key, reverse_key).clamp(max=sorted_key.numel() - 1)
    found = not_loop & (sorted_key[position] == reverse_key)
    reverse_id = order[position]
    index = edges[:, found]
    return index, torch.stack([edge_id[found], reverse_id[found]], dim=1)


class FullGraphLinkPrediction(LinkPredictionModule):
    """Trains ``encoder`` with full-graph steps on per-epoch supervision splits (module docstring).

    Lightning feeds it step numbers (``0 .. steps_per_epoch - 1``), not edges: the module draws
    the epoch's split, neighbourhoods and edge order itself in :meth:`on_train_epoch_start`,
    seeded by ``seed`` and the epoch, so a resumed run draws what an uninterrupted one would.

    Args (beyond :class:`models.module.LinkPredictionModule`'s):
        supervision_fraction: share of the training edges that are the epoch's positives.
        batch_size: supervision edges per step.
        negative_pool: uniform negatives per step, shared by the batch (at most N).
        loss: ``"softmax"`` (sampled softmax, default) or ``"logistic"`` (the paper's
            ``-log sigma`` loss with ``num_negatives`` of the pool per edge).
        similarity: ``"none" | "reciprocal" | "undirected"``, the similarity channel's pairs
            (the encoder must be built with ``similarity=True`` unless ``"none"``).
        lambda_similarity: weight of the similarity loss (softmax form, both roles).
    """

    def __init__(self, *args, supervision_fraction: float = 0.2, batch_size: int = 32768,
                 loss: str = "softmax", similarity: str = "none", lambda_similarity: float = 0.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 < supervision_fraction < 1.0:
            raise ValueError(f"supervision_fraction must be in (0, 1), got {supervision_fraction}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if similarity not in SIMILARITY_KINDS:
            raise ValueError(f"similarity must be one of {SIMILARITY_KINDS}, got {similarity!r}")
        self.supervision_fraction = supervision_fraction
        self.batch_size = batch_size
        self.loss = loss
        self.similarity = similarity
        self.lambda_similarity = lambda_similarity
        num_edges = self.train_edges.shape[1]
        self.num_supervision = max(1, round(num_edges * supervision_fraction))
        self._similarity = None
        if similarity != "none":
            index, path = similarity_pairs(self.train_edges, self.num_nodes, similarity)
            self._similarity = EpochAggregation(index, path, self.num_nodes)
        # A supervision edge u -> v is a similarity positive: always for "undirected", and for
        # "reciprocal" when v -> u is a training edge too.
        self.similar_edge = (reverse_exists(self.train_edges, self.train_edges, self.num_nodes)
                             if similarity == "reciprocal" else torch.ones(num_edges, dtype=torch.bool))
        self._graph: ComputationGraph | None = None
        self._supervision: Tensor | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_supervision / self.batch_size)

    def _in_degree(self, keep: Tensor | None = None) -> Tensor:
        targets = self.train_edges[1] if keep is None else self.train_edges[1, keep]
        return torch.bincount(targets, minlength=self.num_nodes).to(torch.float32)

    def _inference_graph(self, out_agg: EpochAggregation, in_agg: EpochAggregation) -> ComputationGraph:
        return ComputationGraph.full(
            out_agg.matrix(), in_agg.matrix() if self.encoder.directed else None,
            self.encoder.config.num_layers,
            None if self._similarity is None else self._similarity.matrix(),
            self._in_degree())

    def on_train_epoch_start(self) -> None:
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.current_epoch)
        out_agg, in_agg = self._aggregations(self.sampler.sample(generator))
        num_edges = self.train_edges.shape[1]
        self._supervision = torch.randperm(num_edges, generator=generator)[: self.num_supervision]
        excluded = torch.zeros(num_edges, dtype=torch.bool)
        excluded[self._supervision] = True
        self._graph = ComputationGraph.full(
            out_agg.matrix(excluded), in_agg.matrix(excluded) if self.encoder.directed else None,
            self.encoder.config.num_layers,
            None if self._similarity is None else self._similarity.matrix(excluded),
            self._in_degree(~excluded)).to(self.device)
        self._negative_generator.manual_seed(self.seed * 104_729 + self.current_epoch)

    def training_step(self, batch: list[Tensor], batch_index: int) -> Tensor:
        step = int(batch[0].reshape(-1)[0])
        edge_ids = self._supervision[step * self.batch_size: (step + 1) * self.batch_size]
        positives = self.train_edges[:, edge_ids].to(self.device)
        one_way = self.one_way[edge_ids].to(self.device)
        pool = torch.randint(0, self.num_nodes, (min(self.negative_pool or 2048, self.num_nodes),),
                             generator=self._negative_generator).to(self.device)
        # The loss reads the last layer of the step's endpoints and negatives only: encode those
        # rows (earlier layers still encode every node), then index them by local position.
        rows = torch.unique(torch.cat([positives.reshape(-1), pool]))
        position = torch.full((self.num_nodes,), -1, dtype=torch.long, device=self.device)
        position[rows] = torch.arange(rows.numel(), device=self.device)
        s, t = self.encoder.encode(replace(self._graph, last_rows=rows))
        positives, pool = position[positives], position[pool]
        scale = self.encoder.scale
        if self.loss == "softmax":
            terms = sampled_softmax_loss(s, t, positives, pool, one_way, self.lambda_asym, scale)
        else:
            negatives = pool[torch.randint(0, pool.numel(), (edge_ids.numel(), self.num_negatives),
                                           generator=self._negative_generator).to(self.device)]
            terms = blade_loss(s, t, positives, negatives, one_way, self.lambda_asym, scale)
        if self._similarity is not None and self.lambda_similarity > 0:
            dim = self.encoder.config.dim  # without the target prior's extra column
            pairs = positives[:, self.similar_edge[edge_ids].to(self.device)]
            terms.similarity = (similarity_softmax_loss(s[:, :dim], pairs, pool, scale)
                                + similarity_softmax_loss(t[:, :dim], pairs, pool, scale))
            terms.total = terms.total + self.lambda_similarity * terms.similarity
        if not torch.isfinite(terms.total):
            raise TrainingDivergedError(
                f"loss is {terms.total.item()} at epoch {self.current_epoch}, step {step}; lower "
                f"train.learning_rate or train.score_scale")
        size = edge_ids.numel()
        self.log("train_loss", terms.total, prog_bar=True, batch_size=size)
        logged = {"train_loss_positive": terms.positive, "train_loss_negative": terms.negative,
                  "train_loss_asymmetric": terms.asymmetric}
        if terms.similarity is not None:
            logged["train_loss_similarity"] = terms.similarity
        if self.encoder.config.learn_scale:
            logged["score_scale"] = self.encoder.scale.detach()
        self.log_dict(logged, batch_size=size)
        return terms.total


__all__ = ["LOSSES", "SIMILARITY_KINDS", "FullGraphLinkPrediction", "similarity_pairs"]
