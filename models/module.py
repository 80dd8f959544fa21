"""What every link-prediction LightningModule shares: its parts, inference embeddings,
validation, and what is refitted on validation edges after training.

It receives its parts (encoder, sampler, optimiser factory) rather than building them, so one
module trains BLADE, its ablations, DAEMON and the SAGE baseline (``models.variants``). How it
trains is :class:`models.full_graph.FullGraphLinkPrediction` (full-graph steps on per-epoch
supervision splits). The earlier mini-batch training, whose computation graphs did not learn on
the product graph, was removed on 2026-12-06 (``docs/decisions.md``; its ablation row's numbers
stay in ``reports/ablation/``).

Validation ranks a fixed, seeded sample of validation edges against all nodes (filtered by the
query's training out-neighbours) and logs ``val_mrr@10`` and ``val_hit_rate@10``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor

from models.batching import EpochAggregation
from models.direction import fit_source_prior
from models.encoder import score
from models.metrics import filtered_ranks, ranking_metrics
from models.pair_metrics import direction_auc
from models.sampler import NeighbourhoodSampler, SampledNeighbourhoods
from models.sparse import ComputationGraph
from models.target_prior import fit_target_prior
from models.walk_channel import WalkChannel, pair_bonus

# Neighbourhoods for inference come from this fixed draw, so embeddings are reproducible.
INFERENCE_SEED_OFFSET = 1_000_003


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite: training stops with the step and the usual remedies."""


@dataclass
class ValidationSet:
    """Validation edges ranked after every epoch, and the training out-neighbours to filter."""

    edges: Tensor  # [2, Q]
    exclude_indptr: Tensor  # [N + 1] CSR of training out-neighbours
    exclude_indices: Tensor  # [nnz]
    ks: tuple[int, ...] = (5, 10, 20)
    one_way: Tensor | None = None  # [2, P] validation edges whose reverse is in no train/val edge
    non_edges: Tensor | None = None  # [2, M] uniform pairs linked in no train/val edge (global check)


class LinkPredictionModule(pl.LightningModule):
    """Trains ``encoder`` on ``train_edges``; see the module docstring.

    Args:
        encoder: ``BladeEncoder`` or ``UndirectedSageEncoder``; ``forward(out_adj, in_adj)
            -> (s [N, d], t [N, d])``, with a ``scale`` attribute.
        sampler: draws the epoch's neighbourhoods from the training graph. For an undirected
            encoder it samples the graph listed in both directions (edge ids ``e`` and
            ``e + E``), so ``path_edge % E`` is the training edge.
        optimizer: factory ``params -> torch.optim.Optimizer`` (:class:`models.optim.Adam`).
        train_edges: ``[2, E]`` training edges (the loss's positives).
        one_way: ``[E]`` bool, reverse edge absent from the training graph.
        num_nodes: N.
        seed: base seed of sampling, batching and negatives.
        num_negatives: K uniform negatives per positive.
        negative_pool: draw each batch's negatives from this many uniform nodes (0: 2048).
        lambda_asym: weight of the asymmetric loss term.
        validation: :class:`ValidationSet` or None.
        prior_lr_factor: the degree priors' scalar weights (gamma, delta) learn at this multiple
            of the learning rate: Adam moves a parameter by about ``lr`` per step whatever its
            gradient, and a weight that must travel from 0 to ~1 in tens of steps needs more.
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        sampler: NeighbourhoodSampler,
        optimizer: Callable[[Iterator[torch.nn.Parameter]], torch.optim.Optimizer],
        train_edges: Tensor,
        one_way: Tensor,
        num_nodes: int,
        seed: int,
        *,
        num_negatives: int = 2,
        negative_pool: int = 0,
        lambda_asym: float = 1.0,
        validation: ValidationSet | None = None,
        prior_lr_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.sampler = sampler
        self.optimizer_factory = optimizer
        self.train_edges = train_edges
        self.one_way = one_way
        self.num_nodes = num_nodes
        self.seed = seed
        self.num_negatives = num_negatives
        self.negative_pool = negative_pool
        self.lambda_asym = lambda_asym
        self.validation = validation
        self.prior_lr_factor = prior_lr_factor
        self._inference: tuple[EpochAggregation, EpochAggregation] | None = None
        self._negative_generator = torch.Generator()

    # --- neighbourhoods ------------------------------------------------------------------------

    def _aggregations(self, hoods: SampledNeighbourhoods) -> tuple[EpochAggregation, EpochAggregation]:
        num_edges = self.train_edges.shape[1]
        build = lambda index, path: EpochAggregation(  # noqa: E731
            index, torch.where(path >= 0, path % num_edges, path), self.num_nodes)
        return build(hoods.out_index, hoods.out_path_edges), build(hoods.in_index, hoods.in_path_edges)

    def _encode(self, graph: ComputationGraph) -> tuple[Tensor, Tensor]:
        return self.encoder.encode(graph.to(self.device))

    @torch.no_grad()
    def embeddings(self) -> tuple[Tensor, Tensor]:
        """Inference embeddings ``(s, t)`` on CPU from the fixed inference neighbourhood draw."""
        was_training = self.training
        self.eval()
        if self._inference is None:  # the draw is fixed: build it once, reuse every validation
            generator = torch.Generator().manual_seed(self.seed + INFERENCE_SEED_OFFSET)
            self._inference = self._aggregations(self.sampler.sample(generator))
        s, t = self._encode(self._inference_graph(*self._inference))
        self.train(was_training)
        return s.cpu(), t.cpu()

    # --- validation ----------------------------------------------------------------------------

    def validation_metrics(self) -> dict[str, float]:
        """Ranking metrics of the validation edges with the current weights (``{}`` without)."""
        if self.validation is None:
            return {}
        s, t = self.embeddings()
        scale = float(self.encoder.scale.detach())
        edges = self.validation.edges
        ranks = filtered_ranks(lambda queries: score(s[queries], t, scale), edges[0], edges[1],
                               self.validation.exclude_indptr, self.validation.exclude_indices,
                               self.num_nodes)
        return ranking_metrics(ranks, self.validation.ks)

    def validation_step(self, batch: list[Tensor], batch_index: int) -> None:
        if self.validation is None:
            return
        metrics = self.validation_metrics()
        self.log("val_mrr@10", metrics["mrr@10"], prog_bar=True, batch_size=1)
        self.log("val_hit_rate@10", metrics["hit_rate@10"], prog_bar=True, batch_size=1)
        for k in self.validation.ks:
            if k != 10:
                self.log(f"val_mrr@{k}", metrics[f"mrr@{k}"], batch_size=1)
                self.log(f"val_hit_rate@{k}", metrics[f"hit_rate@{k}"], batch_size=1)

    def _has_one_way_validation(self) -> bool:
        return (self.validation is not None and self.validation.one_way is not None
                and self.validation.one_way.shape[1] > 0)

    @torch.no_grad()
    def validation_direction_auc(self) -> float | None:
        """Direction AUC on the validation one-way edges: x(u, v) against x(v, u) (None without)."""
        if not self._has_one_way_validation():
            return None
        s, t = self.embeddings()
        u, v = self.validation.one_way
        return direction_auc((s[u] * t[v]).sum(-1), (s[v] * t[u]).sum(-1))

    @torch.no_grad()
    def refit_target_prior(self) -> dict[str, object] | None:
        """Refits the target prior's weight gamma to the ranking of the validation edges (see
        :func:`models.target_prior.fit_target_prior`): gamma + the best shift of the grid, 0
        among them. None when the encoder has no target prior or there is no validation."""
        prior = getattr(self.encoder, "target_prior", None)
        if prior is None or self.validation is None:
            return None
        s, t = self.embeddings()
        scale = float(self.encoder.scale.detach())
        in_degree = torch.bincount(self.train_edges[1], minlength=self.num_nodes)
        validation = self.validation
        fit = fit_target_prior(lambda queries: score(s[queries], t, scale),
                               torch.log1p(in_degree.float()), validation.edges,
                               validation.exclude_indptr, validation.exclude_indices)
        before = float(prior.weight)
        prior.weight.add_(fit["shift"])
        return fit | {"gamma_before": before, "gamma": float(prior.weight)}

    @torch.no_grad()
    def calibrate_direction(self, walk: WalkChannel | None = None) -> dict[str, float] | None:
        """Fits the source prior's weight delta to the validation one-way edges (see
        :func:`models.direction.fit_source_prior`); ranking does not change. ``walk``: the
        channel the model scores with, so its bonus is part of both directions' scores. None
        when the encoder has no source prior or there are no such edges."""
        prior = getattr(self.encoder, "source_prior", None)
        if prior is None or not self._has_one_way_validation():
            return None
        s, t = self.embeddings()
        u, v = self.validation.one_way
        scale = float(self.encoder.scale.detach())
        in_degree = torch.bincount(self.train_edges[1], minlength=self.num_nodes)
        log_in = torch.log1p(in_degree.float())

        def pair_scores(a: Tensor, b: Tensor) -> Tensor:  # s . t holds the current source prior
            return scale * (s[a] * t[b]).sum(-1) + pair_bonus(walk, a, b)

        linked = unlinked = None
        if self.validation.non_edges is not None and self.validation.non_edges.shape[1] > 0:
            (a, b), (c, d) = self.validation.edges, self.validation.non_edges
            linked, unlinked = (pair_scores(a, b), log_in[a]), (pair_scores(c, d), log_in[c])
        fit = fit_source_prior(pair_scores(u, v), pair_scores(v, u), log_in[u], log_in[v],
                               float(prior.weight), linked, unlinked)
        prior.weight.fill_(fit["delta"])
        return fit

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # the degree priors' scalar weights train at prior_lr_factor x the learning rate
        prior_weights = {id(prior.weight) for prior in getattr(self.encoder, "priors", [])}
        priors = [parameter for parameter in self.parameters() if id(parameter) in prior_weights]
        rest = [parameter for parameter in self.parameters() if id(parameter) not in prior_weights]
        if not priors:
            return self.optimizer_factory(self.parameters())
        optimizer = self.optimizer_factory([{"params": rest}, {"params": priors}])
        optimizer.param_groups[1]["lr"] *= self.prior_lr_factor
        return optimizer
