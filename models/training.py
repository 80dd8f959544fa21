"""Building a link-prediction module from a graph and settings, and what is fitted on
validation edges once it is trained (:func:`fit_after_training`).

The pipeline's ``train``, ``tune``, ``compare`` and ``ablate`` stages and the GPU check
(``bench/gpu_check.py``) build through :func:`build_module` and train through
:func:`pipeline.fitting.fit_module` (Lightning, checkpoints and resume: the files live there).
Both take plain objects, so this module needs neither the pipeline's configuration nor MLflow:

- ``graph``: anything with ``num_nodes``, ``train`` and ``val`` (``[2, E]`` LongTensors), e.g.
  :class:`TrainingGraph`;
- ``config``: a :class:`models.config.BladeConfig` (``pipeline.settings.TrainSettings`` is one),
  or a mapping / object holding its keys;
- ``neighbourhood``: the ``neighbourhood`` settings as an object with one attribute per key of
  ``params.yaml`` (``pipeline.settings.NeighbourhoodSettings`` or a ``types.SimpleNamespace``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from models.batching import StepSampler
from models.config import BladeConfig
from models.encoder import ID_EMBEDDING_STD, BladeEncoder, UndirectedSageEncoder
from models.encoder import score as embedding_score
from models.full_graph import FullGraphLinkPrediction
from models.graph import in_out_degrees, random_projection_embedding
from models.metrics import filtered_ranks, out_neighbour_csr, ranking_metrics
from models.module import LinkPredictionModule, ValidationSet
from models.optim import Adam
from models.pair_metrics import one_way_mask, uniform_non_edges
from models.power_law import adaptive_sizes
from models.sampler import NeighbourhoodSampler
from models.variants import Variant
from models.walk_channel import WalkChannel, WalkSearch, choose_walk_channel, with_walk_channel

log = logging.getLogger(__name__)

MONITOR = "val_mrr@10"
DIRECTION_EDGES = 20_000  # one-way validation edges (a seeded sample) that calibrate direction


@dataclass
class TrainingGraph:
    """What training reads of a graph: node count, training and validation edges."""

    num_nodes: int
    train: torch.Tensor  # [2, E_train]
    val: torch.Tensor  # [2, E_val]; may be empty (no validation, no early stopping)


def fitted_alpha_hat(graph: Any, d_min: int) -> float | None:
    """The degree statistics' power-law fit of the training in-degrees at ``d_min``, when the
    graph carries them (``graph.alpha_hats``: ``{d_min: alpha_hat or None}``); None: fit here.

    Raises:
        ValueError: the fits do not cover ``d_min``, or its tail has no spread (alpha_hat
            infinite): one line, which a tuning trial reports as its reason.
    """
    fits = getattr(graph, "alpha_hats", None)
    if fits is None:
        return None
    if d_min not in fits:
        raise ValueError(f"the degree statistics fit d_min {min(fits)} to {max(fits)}, not {d_min}: "
                         "re-run degree_stats with this d_min in neighbourhood or tune.space")
    if fits[d_min] is None:
        raise ValueError(f"every training in-degree in the tail equals d_min = {d_min}: "
                         "alpha_hat is infinite")
    return float(fits[d_min])


def build_sampler(variant: Variant, graph: Any, neighbourhood: Any,
                  fixed_fanout: int) -> NeighbourhoodSampler:
    """The variant's sampler over the training graph (both directions for undirected SAGE)."""
    train = graph.train
    in_degree, _ = in_out_degrees(train, graph.num_nodes)
    if variant.adaptive:
        sizes, _, _ = adaptive_sizes(
            in_degree, d_min=neighbourhood.d_min, alpha=neighbourhood.alpha,
            alpha_multiplier=neighbourhood.alpha_multiplier,
            n_min=neighbourhood.n_min, n_max=neighbourhood.n_max,
            alpha_hat=fitted_alpha_hat(graph, neighbourhood.d_min))
    else:
        sizes = torch.full((graph.num_nodes,), int(fixed_fanout), dtype=torch.long)
    edges = train if variant.directed else torch.cat([train, train.flip(0)], dim=1)
    return NeighbourhoodSampler(
        edges, graph.num_nodes, sizes,
        beta=neighbourhood.beta if variant.biased else 0.0,
        h_max=neighbourhood.h_max,
        adaptive=variant.adaptive,
    )


def validation_set(graph: Any, val_queries: int, seed: int) -> ValidationSet | None:
    """What training validates on (None without validation edges): a seeded sample of
    ``val_queries`` validation edges, the one-way validation edges (at most
    :data:`DIRECTION_EDGES`) and as many uniform non-edges as edges (the direction
    calibration's global check). Never a test edge. Baselines choose their settings on the same
    edges (:func:`pipeline.evaluate.baseline_scorers`)."""
    if graph.val.shape[1] == 0:
        return None
    generator = torch.Generator().manual_seed(seed)
    count = min(val_queries, graph.val.shape[1])
    chosen = torch.randperm(graph.val.shape[1], generator=generator)[:count]
    indptr, indices = out_neighbour_csr(graph.train, graph.num_nodes)
    known = torch.cat([graph.train, graph.val], dim=1)  # never the test edges
    val_one_way = graph.val[:, one_way_mask(graph.val, known, graph.num_nodes)]
    sample = torch.randperm(val_one_way.shape[1], generator=generator)[:DIRECTION_EDGES]
    val_one_way = val_one_way[:, sample]
    non_edges = uniform_non_edges(known, graph.num_nodes, count, seed)
    return ValidationSet(graph.val[:, chosen], indptr, indices, one_way=val_one_way, non_edges=non_edges)


def build_module(variant: Variant, graph: Any, neighbourhood: Any, config: Any,
                 seed: int) -> LinkPredictionModule:
    """The variant's Lightning module for ``graph`` (see the module docstring for the argument
    types): encoder, sampler, structural start, validation set and optimiser."""
    config = BladeConfig.of(config)
    if not variant.directed:
        config = config.undirected()
    torch.manual_seed(seed)  # the encoder's initial weights
    encoder = (BladeEncoder if variant.directed else UndirectedSageEncoder)(config, graph.num_nodes)
    if config.id_init == "structure":
        start = random_projection_embedding(graph.train, graph.num_nodes, config.dim, hops=2,
                                            generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            for table in encoder.id_tables():
                table.copy_(start * ID_EMBEDDING_STD * config.dim**0.5)
    one_way = one_way_mask(graph.train, graph.train, graph.num_nodes)
    validation = validation_set(graph, config.val_queries, seed)
    optimizer = partial(Adam, lr=config.learning_rate, weight_decay=config.weight_decay)
    common = dict(
        num_negatives=config.num_negatives, negative_pool=config.negative_pool,
        lambda_asym=config.lambda_asym,
        validation=validation, prior_lr_factor=config.prior_lr_factor,
    )
    parts = (encoder, build_sampler(variant, graph, neighbourhood, config.fixed_fanout), optimizer,
             graph.train, one_way, graph.num_nodes, seed)
    return FullGraphLinkPrediction(
        *parts, **common, supervision_fraction=config.supervision_fraction,
        batch_size=config.batch_size, loss=config.loss,
        similarity=config.similarity,
        lambda_similarity=config.lambda_similarity)


def validation_scores(score_fn, validation, low_queries: Tensor) -> dict[str, float]:
    """Validation MRR@10 and HR@10, overall and over the low-degree queries (``low_queries``:
    ``[Q]`` bool over the validation edges)."""
    num_nodes = len(validation.exclude_indptr) - 1
    ranks = filtered_ranks(score_fn, validation.edges[0], validation.edges[1],
                           validation.exclude_indptr, validation.exclude_indices, num_nodes)
    overall, low = ranking_metrics(ranks, (10,)), ranking_metrics(ranks[low_queries], (10,))
    return {"val_mrr@10": round(overall["mrr@10"], 5),
            "val_hit_rate@10": round(overall["hit_rate@10"], 5),
            "val_low_mrr@10": round(low["mrr@10"], 5),
            "val_low_hit_rate@10": round(low["hit_rate@10"], 5)}


def low_degree_queries(graph, validation, low_degree_max: int) -> Tensor:
    """``[Q]`` bool: the validation edge's query has training in-degree <= ``low_degree_max``."""
    in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
    return in_degree[validation.edges[0]] <= low_degree_max


def trained_scores(graph, module, low_degree_max: int, walk: WalkChannel | None = None) -> dict[str, float]:
    """:func:`validation_scores` of a trained module's embeddings (with ``walk``'s bonus)."""
    source, target = module.embeddings()
    scale = float(module.encoder.scale.detach())
    validation = module.validation
    rows = with_walk_channel(lambda queries: embedding_score(source[queries], target, scale), walk)
    return validation_scores(rows, validation, low_degree_queries(graph, validation, low_degree_max))


def train_loader(module: FullGraphLinkPrediction) -> DataLoader:
    """What Lightning iterates per epoch: step numbers (the module picks each step's edges)."""
    return DataLoader(TensorDataset(torch.arange(module.steps_per_epoch)), batch_size=1,
                      sampler=StepSampler(module.steps_per_epoch))


def fit_after_training(
    module: LinkPredictionModule, *, refit_target_prior: bool, walk_channel: WalkSearch | None,
    calibrate_direction: bool, label: str = "",
) -> tuple[Any, WalkChannel | None, Any, Any]:
    """What is fitted on the validation edges once the weights are final, in this order: the
    target prior's weight (:func:`models.target_prior.fit_target_prior`), the walk channel
    (which of ``walk_channel``'s walks, lambda, epsilon:
    :func:`models.walk_channel.choose_walk_channel`; None: no channel) and the
    source prior's direction calibration with that channel (:mod:`models.direction`).

    Returns ``(target prior fit, walk channel, walk fit, direction fit)``, None where not fitted.
    """
    prior_fit = module.refit_target_prior() if refit_target_prior else None
    if prior_fit is not None:
        log.info("%s target prior: gamma %.3g -> %.3g, validation MRR@10 %.4f -> %.4f", label,
                 prior_fit["gamma_before"], prior_fit["gamma"], prior_fit["mrr@10_without"],
                 prior_fit["mrr@10"])
    walk, walk_fit = None, None
    if walk_channel is not None and module.validation is not None:
        source, target = module.embeddings()
        scale = float(module.encoder.scale.detach())
        validation = module.validation
        walk, walk_fit = choose_walk_channel(
            lambda queries: embedding_score(source[queries], target, scale), module.num_nodes,
            validation.edges, validation.exclude_indptr, validation.exclude_indices, walk_channel)
        log.info("%s walk channel: %s walk %s, lambda %g, epsilon %g: validation MRR@10 %.4f -> %.4f",
                 label, walk_fit["walk"], walk_fit["settings"], walk_fit["weight"], walk_fit["floor"],
                 walk_fit["val_mrr@10_without"], walk_fit["val_mrr@10"])
    direction = None
    if calibrate_direction:
        direction = module.calibrate_direction(walk)
        if direction is not None:
            log.info("%s direction: source prior %.3g -> %.3g, validation direction AUC %.4f -> %.4f",
                     label, direction["delta_before"], direction["delta"],
                     direction["auc_before"], direction["auc"])
    return prior_fit, walk, walk_fit, direction
