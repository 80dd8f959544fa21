"""Training a link-prediction module: building it from a graph and settings, fitting it with
Lightning until early stopping, keeping the best epoch's weights, calibrating direction.

The pipeline's ``train``, ``tune``, ``compare`` and ``ablate`` stages and the GPU check
(``bench/gpu_check.py``) all train through :func:`build_module` and :func:`fit_module`. Both take
plain objects, so this module needs neither the pipeline's configuration nor MLflow:

- ``graph``: anything with ``num_nodes``, ``train`` and ``val`` (``[2, E]`` LongTensors) and
  ``features`` (a SciPy CSR matrix or None), e.g. :class:`TrainingGraph`;
- ``config`` / ``neighbourhood``: the ``train`` / ``neighbourhood`` settings as objects with one
  attribute per key of ``params.yaml`` (``pipeline.settings.TrainSettings`` or a
  ``types.SimpleNamespace``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import scipy.sparse as sp
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from models.batching import EpochSeededShuffle, StepSampler
from models.encoder import ID_EMBEDDING_STD, BladeEncoder, EncoderConfig, UndirectedSageEncoder
from models.encoder import score as embedding_score
from models.full_graph import FullGraphLinkPrediction
from models.graph import in_out_degrees, random_projection_embedding
from models.metrics import (
    filtered_ranks,
    one_way_mask,
    out_neighbour_csr,
    ranking_metrics,
    uniform_non_edges,
)
from models.module import LinkPredictionModule, ValidationSet
from models.optim import LazyAdam
from models.power_law import adaptive_sizes
from models.sampler import NeighbourhoodSampler
from models.variants import Variant
from models.walk_channel import WalkChannel, choose_walk_channel, with_walk_channel

log = logging.getLogger(__name__)

MONITOR = "val_mrr@10"
DIRECTION_EDGES = 20_000  # one-way validation edges (a seeded sample) that calibrate direction


FINISHED_FILE = "finished.txt"  # beside the checkpoints: their run ended, resuming trains nothing


def is_rank_zero() -> bool:
    """False in the non-zero ranks of a distributed (DDP) launch: Lightning starts each of them
    by running the same command again, with ``LOCAL_RANK`` (and ``NODE_RANK`` / ``RANK``) set."""
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        if int(os.environ.get(variable, "0") or 0) != 0:
            return False
    return True


@dataclass
class TrainingGraph:
    """What training reads of a graph: node count, training and validation edges, features."""

    num_nodes: int
    train: torch.Tensor  # [2, E_train]
    val: torch.Tensor  # [2, E_val]; may be empty (no validation, no early stopping)
    features: sp.csr_matrix | None = None


@dataclass
class FitResult:
    module: LinkPredictionModule
    best_score: float
    epochs: int
    seconds: float
    seconds_per_epoch: float
    best_checkpoint: Path | None
    curve: list[float] = field(default_factory=list)  # validation MRR@10 after each epoch of this run
    untrained_score: float | None = None  # validation MRR@10 before the first step (None on resume)
    direction: dict[str, float] | None = None  # source-prior calibration (models.direction)
    walk_channel: WalkChannel | None = None  # fitted on validation edges (models.walk_channel)
    walk_fit: dict[str, Any] | None = None  # what choose_walk_channel tried and chose
    target_prior: dict[str, Any] | None = None  # the target prior's refit (models.target_prior)


class EpochTimer(pl.Callback):
    """Times each training epoch (sampling + steps, without validation) and logs one line per
    epoch, so runs under `dvc repro` in a pipe or CI show progress without a terminal."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.durations: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.durations.append(time.perf_counter() - self._start)
        metrics = trainer.callback_metrics
        shown = " ".join(f"{key} {float(metrics[key]):.4f}" for key in ("train_loss", MONITOR)
                         if key in metrics)
        log.info("%s epoch %d/%d: %s (%.1f s)", self.label, trainer.current_epoch + 1,
                 trainer.max_epochs, shown, self.durations[-1])


class ValidationCurve(pl.Callback):
    """The monitored validation score after every epoch, in order."""

    def __init__(self) -> None:
        self.scores: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and MONITOR in trainer.callback_metrics:
            self.scores.append(float(trainer.callback_metrics[MONITOR]))


class BestWeights(pl.Callback):
    """Keeps a CPU copy of the weights of the best validation epoch so far (``MONITOR``, higher is
    better), for runs without checkpoints: tuning trials and ``blade compare``. Early stopping
    ends ``early_stopping_patience`` epochs after the best epoch, and the best epoch's weights,
    not the last ones, are the model to evaluate."""

    def __init__(self) -> None:
        self.best_score: float | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(MONITOR)
        if trainer.sanity_checking or value is None:
            return
        value = float(value)
        if self.best_score is None or value > self.best_score:
            self.best_score = value
            self.state = {name: tensor.detach().to("cpu", copy=True)
                          for name, tensor in pl_module.state_dict().items()}


class KillAfterEpoch(pl.Callback):
    """Fault injection for the resume test: ``BLADE_KILL_AFTER_EPOCH=N`` kills the process
    (SIGKILL, as an out-of-memory killer or a lost machine would) as epoch N + 1 starts, when
    epoch N's checkpoint is on disk (Lightning runs checkpoint callbacks last at an epoch's end,
    so the start of the next epoch is the first moment after the save)."""

    ENVIRONMENT = "BLADE_KILL_AFTER_EPOCH"

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:  # 0-based: the epoch after epoch N
            log.warning("%s=%d: killing the process", self.ENVIRONMENT, self.epoch)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)


class StepTrace(pl.Callback):
    """Test hook: ``BLADE_TRACE_STEPS=DIR`` appends one line per training step to
    ``DIR/rank-<global rank>.txt``: the epoch, then the training edge ids of the step's batch,
    so a test can see which edges each DDP rank trained on."""

    ENVIRONMENT = "BLADE_TRACE_STEPS"

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if isinstance(pl_module, FullGraphLinkPrediction):
            step = int(batch[0].reshape(-1)[0])
            edge_ids = pl_module._supervision[step * pl_module.batch_size: (step + 1) * pl_module.batch_size]
        else:
            edge_ids = batch[0]
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"rank-{trainer.global_rank}.txt", "a") as handle:
            handle.write(f"{trainer.current_epoch} {' '.join(map(str, edge_ids.tolist()))}\n")


def sparse_features(graph: Any) -> torch.Tensor | None:
    if graph.features is None:
        return None
    coo = graph.features.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col])).long()
    return torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data).float(), coo.shape,
                                   check_invariants=True).coalesce()


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
        bias=neighbourhood.bias,
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
    features = sparse_features(graph) if config.use_features else None
    encoder_config = EncoderConfig(
        num_nodes=graph.num_nodes, dim=config.dim, num_layers=config.num_layers,
        aggregation=config.aggregation,
        in_features=None if features is None else features.shape[1],
        dropout=config.dropout, self_term=config.self_term,
        score_scale=config.score_scale, learn_scale=config.learn_scale,
        activation=config.activation, weight_init=config.weight_init,
        similarity=variant.directed and config.similarity != "none",
        target_prior=config.target_prior if variant.directed else "none",
        shared_input=config.shared_input and variant.directed,
        source_prior=config.source_prior and variant.directed,
    )
    torch.manual_seed(seed)  # the encoder's initial weights
    encoder = (BladeEncoder if variant.directed else UndirectedSageEncoder)(encoder_config)
    if config.id_init == "structure" and features is None:
        start = random_projection_embedding(graph.train, graph.num_nodes, encoder_config.dim, hops=2,
                                            generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            for table in encoder.id_tables():
                table.copy_(start * ID_EMBEDDING_STD * encoder_config.dim**0.5)
    in_degree, out_degree = in_out_degrees(graph.train, graph.num_nodes)
    edge_weight = None
    if config.edge_weighting == "degree":
        edge_weight = (out_degree[graph.train[0]] * in_degree[graph.train[1]]).float()
    one_way = one_way_mask(graph.train, graph.train, graph.num_nodes)
    validation = validation_set(graph, config.val_queries, seed)
    optimizer = partial(LazyAdam, lr=config.learning_rate, weight_decay=config.weight_decay)
    common = dict(
        features=features, aggregation=encoder_config.aggregation,
        node_degree=(in_degree + out_degree) if encoder_config.aggregation == "degree_weighted" else None,
        num_negatives=config.num_negatives, negative_pool=config.negative_pool,
        lambda_asym=config.lambda_asym if variant.directed else 0.0,
        edge_weight=edge_weight, validation=validation, prior_lr_factor=config.prior_lr_factor,
    )
    parts = (encoder, build_sampler(variant, graph, neighbourhood, config.fixed_fanout), optimizer,
             graph.train, one_way, graph.num_nodes, seed)
    if config.propagation == "minibatch":
        return LinkPredictionModule(*parts, **common)
    return FullGraphLinkPrediction(
        *parts, **common, supervision_fraction=config.supervision_fraction,
        batch_size=config.batch_size, loss=config.loss,
        similarity=config.similarity if variant.directed else "none",
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


def train_loader(module: LinkPredictionModule, batch_size: int, seed: int) -> DataLoader:
    """What Lightning iterates per epoch: step numbers for full-graph modules (they pick each
    step's edges themselves), seeded shuffled edge batches for mini-batch ones."""
    if isinstance(module, FullGraphLinkPrediction):
        return DataLoader(TensorDataset(torch.arange(module.steps_per_epoch)), batch_size=1,
                          sampler=StepSampler(module.steps_per_epoch))
    num_edges = module.train_edges.shape[1]
    return DataLoader(TensorDataset(torch.arange(num_edges)), batch_size=batch_size,
                      sampler=EpochSeededShuffle(num_edges, seed))


def fit_module(
    module: LinkPredictionModule,
    config: Any,
    seed: int,
    checkpoint_dir: Path | None = None,
    fingerprint: str = "",
    callbacks: list[pl.Callback] | None = None,
    logger: Any = False,
    progress: bool = True,
    label: str = "",
    walk_channel: bool = False,
    refit_target_prior: bool = False,
) -> FitResult:
    """Fit ``module`` until early stopping (``config.early_stopping_patience`` epochs without a
    better validation MRR@10) or ``config.max_epochs``, on ``config.accelerator`` /
    ``config.devices``; then, with ``refit_target_prior``, refit the target prior's weight to
    the validation ranking (:func:`models.target_prior.fit_target_prior`), with
    ``walk_channel`` fit the walk channel (which walk, lambda, epsilon:
    :func:`models.walk_channel.choose_walk_channel`) on the validation edges, and with
    ``config.calibrate_direction`` refit the source prior to the scores with that channel.

    With ``checkpoint_dir``, every epoch is checkpointed there and a run with the same
    ``fingerprint`` (a digest of everything the run depends on) resumes from ``last.ckpt``;
    another fingerprint's checkpoints are deleted. The returned module holds the weights of the
    best validation epoch (from the best checkpoint, or kept in memory without ``checkpoint_dir``)
    and ``best_score`` is that epoch's score."""
    timer = EpochTimer(label)
    curve = ValidationCurve()
    all_callbacks = [timer, curve, *(callbacks or [])]
    checkpoint = None
    resume_from = None
    finished = False  # the checkpoints' run ended (early stopping or max_epochs): train no more
    best_weights = BestWeights() if checkpoint_dir is None and module.validation is not None else None
    if best_weights is not None:
        all_callbacks.append(best_weights)
    early_stopping = None
    if module.validation is not None:
        early_stopping = pl.callbacks.EarlyStopping(MONITOR, mode="max",
                                                    patience=config.early_stopping_patience)
        all_callbacks.append(early_stopping)
    if checkpoint_dir is not None:
        stamp_path = checkpoint_dir / "fingerprint.txt"
        same = stamp_path.is_file() and stamp_path.read_text() == fingerprint
        if is_rank_zero():  # the other ranks (started later, inside rank 0's fit) only read
            if checkpoint_dir.exists() and not same:
                shutil.rmtree(checkpoint_dir)  # another configuration's checkpoints: start afresh
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            stamp_path.write_text(fingerprint)
        if same and (checkpoint_dir / "last.ckpt").is_file():
            resume_from = str(checkpoint_dir / "last.ckpt")
            log.info("%s: resuming from %s", label, resume_from)
            finished = all((checkpoint_dir / name).is_file() for name in (FINISHED_FILE, "best.ckpt"))
        checkpoint = pl.callbacks.ModelCheckpoint(
            dirpath=checkpoint_dir, filename="best", monitor=MONITOR if module.validation else None,
            mode="max", enable_version_counter=False,
            save_on_train_epoch_end=True)  # after validation: resume starts at a clean epoch
        # Every epoch's state, for resuming: ModelCheckpoint(save_last=True) writes last.ckpt
        # only in epochs that also wrote a top-k file, i.e. when the monitored score improved, so
        # a run killed after an epoch without improvement would repeat epochs since the best one.
        latest = pl.callbacks.ModelCheckpoint(
            dirpath=checkpoint_dir, filename="last", monitor=None, save_top_k=1,
            enable_version_counter=False, save_on_train_epoch_end=True)
        all_callbacks += [checkpoint, latest]
        if os.environ.get(KillAfterEpoch.ENVIRONMENT):
            all_callbacks.append(KillAfterEpoch(int(os.environ[KillAfterEpoch.ENVIRONMENT])))
    if os.environ.get(StepTrace.ENVIRONMENT):
        all_callbacks.append(StepTrace(os.environ[StepTrace.ENVIRONMENT]))
    trainer = pl.Trainer(
        max_epochs=config.max_epochs, accelerator=config.accelerator, devices=config.devices,
        strategy=getattr(config, "strategy", "auto"), num_nodes=getattr(config, "num_nodes", 1),
        deterministic="warn", logger=logger, callbacks=all_callbacks,
        enable_progress_bar=progress, enable_model_summary=False,
        enable_checkpointing=checkpoint is not None, num_sanity_val_steps=0,
        log_every_n_steps=1,
        use_distributed_sampler=False,  # the samplers shard by rank themselves (models.batching)
    )
    untrained = None
    if resume_from is None and module.validation is not None:
        untrained = module.validation_metrics()["mrr@10"]
        log.info("%s untrained: val_mrr@10 %.4f", label, untrained)
    val_loader = DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)
    started = time.perf_counter()
    if finished:  # another epoch would only train past the best one (a tuning trial's, say)
        log.info("%s: that run had finished; its best epoch is kept and nothing is trained", label)
    else:
        trainer.fit(module, train_loader(module, config.batch_size, seed),
                    val_loader if module.validation else None, ckpt_path=resume_from,
                    weights_only=True)  # a checkpoint holds tensors and plain values: nothing to unpickle
    seconds = time.perf_counter() - started
    durations = timer.durations or [seconds]
    seconds_per_epoch = sum(durations) / len(durations)
    ended = trainer.current_epoch >= config.max_epochs or (early_stopping is not None
                                                           and early_stopping.stopped_epoch > 0)
    epochs = trainer.current_epoch
    if not finished and ended and checkpoint_dir is not None and is_rank_zero():
        (checkpoint_dir / FINISHED_FILE).write_text(json.dumps(
            {"epochs": epochs, "seconds": seconds, "seconds_per_epoch": seconds_per_epoch}))
    best_path = None
    if finished:  # the run that trained it (checkpoints possibly moved: a tuning trial's)
        best_path = checkpoint_dir / "best.ckpt"
        module.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"])
        earlier = json.loads((checkpoint_dir / FINISHED_FILE).read_text())
        epochs, seconds = earlier["epochs"], earlier["seconds"]
        seconds_per_epoch = earlier["seconds_per_epoch"]
    elif checkpoint is not None and checkpoint.best_model_path:
        best_path = Path(checkpoint.best_model_path)
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    best = checkpoint.best_model_score if checkpoint is not None and not finished else None
    if best_weights is not None and best_weights.state is not None:
        module.load_state_dict(best_weights.state)
        best = best_weights.best_score
    if best is None:
        best = trainer.callback_metrics.get(MONITOR)
    if finished and module.validation is not None:  # on this run's validation sample (a tuning
        best = module.validation_metrics()["mrr@10"]  # trial's may have ranked fewer edges)
    prior_fit = module.refit_target_prior() if refit_target_prior else None
    if prior_fit is not None:
        log.info("%s target prior: gamma %.3g -> %.3g, validation MRR@10 %.4f -> %.4f", label,
                 prior_fit["gamma_before"], prior_fit["gamma"], prior_fit["mrr@10_without"],
                 prior_fit["mrr@10"])
    walk, walk_fit = None, None
    if walk_channel and module.validation is not None:
        source, target = module.embeddings()
        scale = float(module.encoder.scale.detach())
        validation = module.validation
        walk, walk_fit = choose_walk_channel(
            lambda queries: embedding_score(source[queries], target, scale), module.train_edges,
            module.num_nodes, validation.edges, validation.exclude_indptr, validation.exclude_indices)
        log.info("%s walk channel: %s walk, lambda %g, epsilon %g: validation MRR@10 %.4f -> %.4f",
                 label, walk_fit["walk"], walk_fit["weight"], walk_fit["floor"],
                 walk_fit["val_mrr@10_without"], walk_fit["val_mrr@10"])
    direction = None
    if config.calibrate_direction:
        direction = module.calibrate_direction(walk)
        if direction is not None:
            log.info("%s direction: source prior %.3g -> %.3g, validation direction AUC %.4f -> %.4f",
                     label, direction["delta_before"], direction["delta"],
                     direction["auc_before"], direction["auc"])
    return FitResult(module, float(best) if best is not None else float("nan"),
                     epochs, seconds, seconds_per_epoch, best_path,
                     curve.scores, untrained, direction, walk, walk_fit, prior_fit)


