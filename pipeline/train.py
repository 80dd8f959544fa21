"""Stage ``train``: Lightning training of BLADE (and the trained baselines) on the training split.

    blade train                                   # every variant in train.variants
    blade train --set train.variants=[daemon] --set train.max_epochs=3
    dvc exp run -S 'train.variants=[blade,no_adaptive,no_bias,daemon,sage]'

Runbook:
- one CPU (default): ``accelerator: auto`` finds no GPU and trains on the CPU;
- one GPU: nothing to change, ``auto`` picks it (the sampler stays on the CPU);
- an interrupted run resumes from ``outputs/checkpoints/<variant>/last.ckpt`` when the
  parameters are unchanged (a fingerprint of them is stored beside the checkpoint).

Outputs per variant in ``outputs/train/<variant>/``: ``model.ckpt`` (best validation MRR@10),
``embeddings.pt`` (source / target embeddings and score scale for evaluation and export),
``summary.json``; metrics for all variants in ``metrics/train.json``.
"""

from __future__ import annotations

import hashlib
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
import torch
from torch.utils.data import DataLoader, TensorDataset

from models.batching import EpochSeededShuffle
from models.encoder import ID_EMBEDDING_STD, BladeEncoder, EncoderConfig, UndirectedSageEncoder
from models.full_graph import FullGraphLinkPrediction
from models.graph import in_out_degrees, random_projection_embedding
from models.metrics import one_way_mask, out_neighbour_csr
from models.module import LinkPredictionModule, TrainingDivergedError, ValidationSet
from models.optim import LazyAdam
from models.power_law import adaptive_sizes
from models.sampler import NeighbourhoodSampler
from models.variants import Variant, get_variant
from pipeline import tracking
from pipeline.artifacts import SplitGraph, load_split_graph
from pipeline.config import ConfigError, with_values
from pipeline.settings import NeighbourhoodSettings, TrainSettings, as_settings, typed
from pipeline.storage import atomic_directory, atomic_path, whole_outputs, write_json

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("outputs/train")
TUNED_PARAMS_PATH = Path("outputs/tune/best_params.json")
CHECKPOINT_DIR = Path("outputs/checkpoints")
METRICS_PATH = Path("metrics/train.json")
MONITOR = "val_mrr@10"
DIRECTION_EDGES = 20_000  # one-way validation edges (a seeded sample) that calibrate direction


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


def sparse_features(graph: SplitGraph) -> torch.Tensor | None:
    if graph.features is None:
        return None
    coo = graph.features.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col])).long()
    return torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data).float(), coo.shape,
                                   check_invariants=True).coalesce()


def build_sampler(variant: Variant, graph: SplitGraph, neighbourhood: NeighbourhoodSettings | dict[str, Any],
                  fixed_fanout: int) -> NeighbourhoodSampler:
    """The variant's sampler over the training graph (both directions for undirected SAGE)."""
    neighbourhood = as_settings(neighbourhood, NeighbourhoodSettings)
    train = graph.train
    in_degree, _ = in_out_degrees(train, graph.num_nodes)
    if variant.adaptive:
        sizes, _, _ = adaptive_sizes(
            in_degree, d_min=neighbourhood.d_min, alpha=neighbourhood.alpha,
            alpha_multiplier=neighbourhood.alpha_multiplier,
            n_min=neighbourhood.n_min, n_max=neighbourhood.n_max)
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


def build_module(variant: Variant, graph: SplitGraph, neighbourhood: NeighbourhoodSettings | dict[str, Any],
                 config: TrainSettings | dict[str, Any], seed: int) -> LinkPredictionModule:
    config = as_settings(config, TrainSettings)
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
    validation = None
    if graph.val.shape[1] > 0:
        generator = torch.Generator().manual_seed(seed)
        count = min(config.val_queries, graph.val.shape[1])
        chosen = torch.randperm(graph.val.shape[1], generator=generator)[:count]
        indptr, indices = out_neighbour_csr(graph.train, graph.num_nodes)
        known = torch.cat([graph.train, graph.val], dim=1)  # never the test edges
        val_one_way = graph.val[:, one_way_mask(graph.val, known, graph.num_nodes)]
        sample = torch.randperm(val_one_way.shape[1], generator=generator)[:DIRECTION_EDGES]
        val_one_way = val_one_way[:, sample]
        validation = ValidationSet(graph.val[:, chosen], indptr, indices, one_way=val_one_way)
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


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_variant(
    variant_name: str,
    graph: SplitGraph,
    neighbourhood: NeighbourhoodSettings | dict[str, Any],
    config: TrainSettings | dict[str, Any],
    seed: int,
    checkpoint_dir: Path | None,
    callbacks: list[pl.Callback] | None = None,
    logger: Any = False,
    progress: bool = True,
) -> FitResult:
    """Train one variant; resume from ``checkpoint_dir/last.ckpt`` if it has the same fingerprint.

    The returned module holds the weights of the best validation epoch (from the best checkpoint,
    or kept in memory when ``checkpoint_dir`` is None) and ``best_score`` is that epoch's score."""
    variant = get_variant(variant_name)
    config = as_settings(config, TrainSettings)
    neighbourhood = as_settings(neighbourhood, NeighbourhoodSettings)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = build_module(variant, graph, neighbourhood, config, seed)
    num_edges = graph.train.shape[1]
    if isinstance(module, FullGraphLinkPrediction):  # the module picks each step's edges itself
        train_loader = DataLoader(TensorDataset(torch.arange(module.steps_per_epoch)), batch_size=1)
    else:
        train_loader = DataLoader(TensorDataset(torch.arange(num_edges)),
                                  batch_size=config.batch_size,
                                  sampler=EpochSeededShuffle(num_edges, seed))
    val_loader = DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)
    timer = EpochTimer(variant_name)
    curve = ValidationCurve()
    all_callbacks = [timer, curve, *(callbacks or [])]
    checkpoint = None
    resume_from = None
    best_weights = BestWeights() if checkpoint_dir is None and module.validation is not None else None
    if best_weights is not None:
        all_callbacks.append(best_weights)
    if module.validation is not None:
        all_callbacks.append(pl.callbacks.EarlyStopping(
            MONITOR, mode="max", patience=config.early_stopping_patience))
    if checkpoint_dir is not None:
        stamp = fingerprint(variant_name, neighbourhood.model_dump(), config.model_dump(), seed,
                            graph.num_nodes, int(graph.train.shape[1]), int(graph.train.sum()))
        stamp_path = checkpoint_dir / "fingerprint.txt"
        if checkpoint_dir.exists() and (not stamp_path.is_file() or stamp_path.read_text() != stamp):
            shutil.rmtree(checkpoint_dir)  # another configuration's checkpoints: start afresh
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        stamp_path.write_text(stamp)
        if (checkpoint_dir / "last.ckpt").is_file():
            resume_from = str(checkpoint_dir / "last.ckpt")
            log.info("%s: resuming from %s", variant_name, resume_from)
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
    trainer = pl.Trainer(
        max_epochs=config.max_epochs, accelerator=config.accelerator, devices=config.devices,
        deterministic="warn", logger=logger, callbacks=all_callbacks,
        enable_progress_bar=progress, enable_model_summary=False,
        enable_checkpointing=checkpoint is not None, num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    untrained = None
    if resume_from is None and module.validation is not None:
        untrained = module.validation_metrics()["mrr@10"]
        log.info("%s untrained: val_mrr@10 %.4f", variant_name, untrained)
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader if module.validation else None, ckpt_path=resume_from,
                weights_only=True)  # a checkpoint holds tensors and plain values: nothing to unpickle
    seconds = time.perf_counter() - started
    best_path = None
    if checkpoint is not None and checkpoint.best_model_path:
        best_path = Path(checkpoint.best_model_path)
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    best = checkpoint.best_model_score if checkpoint is not None else None
    if best_weights is not None and best_weights.state is not None:
        module.load_state_dict(best_weights.state)
        best = best_weights.best_score
    if best is None:
        best = trainer.callback_metrics.get(MONITOR)
    direction = None
    if config.calibrate_direction:
        direction = module.calibrate_direction()
        if direction is not None:
            log.info("%s direction: source prior %.3g -> %.3g, validation direction AUC %.4f -> %.4f",
                     variant_name, direction["delta_before"], direction["delta"],
                     direction["auc_before"], direction["auc"])
    durations = timer.durations or [seconds]
    return FitResult(module, float(best) if best is not None else float("nan"),
                     trainer.current_epoch, seconds, sum(durations) / len(durations), best_path,
                     curve.scores, untrained, direction)


def save_embeddings(path: Path, module: LinkPredictionModule, variant: str) -> None:
    source, target = module.embeddings()
    with atomic_path(path) as tmp:
        torch.save({"variant": variant, "source": source, "target": target,
                    "scale": float(module.encoder.scale.detach())}, tmp)


def tuned_study() -> dict[str, Any] | None:
    """The tune stage's result (``outputs/tune/best_params.json``), or None if it has not run."""
    if not TUNED_PARAMS_PATH.is_file():
        return None
    return json.loads(TUNED_PARAMS_PATH.read_text())


def with_tuned_values(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``params`` with the best trial's values when ``train.use_tuned`` (default true) and a study ran."""
    study = tuned_study() if params["train"]["use_tuned"] else None
    if study is None:
        return params, None
    log.info("train: using the tuned values of trial %d (val MRR@10 %.4f): %s", study["trial"],
             study["value"], study["overrides"])
    return with_values(params, study["overrides"]), study


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    params, study = with_tuned_values(params)
    settings = typed(params)
    base, config, neighbourhood = settings.base, settings.train, settings.neighbourhood
    seed = base.seed
    graph = load_split_graph()
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, settings.mlflow.experiment)
    metrics: dict[str, Any] = {}
    with atomic_directory(OUTPUT_DIR) as tmp:
        for name in config.variants:
            log.info("train: %s (%s) on %s", name, get_variant(name).description, base.dataset)
            tags = {"stage": "train", "variant": name, "dataset": base.dataset,
                    "data_version": tracking.data_version(), "git_commit": tracking.git_commit()}
            if study is not None and study.get("mlflow_parent_run_id"):
                tags["mlflow.parentRunId"] = study["mlflow_parent_run_id"]
            run_id = client.create_run(experiment_id, run_name=f"train-{name}", tags=tags).info.run_id
            logged = {key: params[key] for key in ("base", "neighbourhood", "train")}
            tracking.log_params(client, run_id, logged | {"tuned": study is not None})
            try:
                result = fit_variant(name, graph, neighbourhood, config, seed, CHECKPOINT_DIR / name,
                                     callbacks=[tracking.EpochMetricsLogger(client, run_id)])
            except TrainingDivergedError as error:
                client.set_terminated(run_id, "FAILED")
                raise ConfigError(f"train {name}: {error}") from error
            except BaseException:  # interrupted: the run says so; the checkpoint resumes it
                client.set_terminated(run_id, "KILLED")
                raise
            out = tmp / name
            out.mkdir()
            save_embeddings(out / "embeddings.pt", result.module, name)
            if result.best_checkpoint is not None:
                shutil.copy(result.best_checkpoint, out / "model.ckpt")
            edges_per_second = graph.train.shape[1] / result.seconds_per_epoch
            summary = {
                "variant": name, "best_val_mrr@10": round(result.best_score, 5),
                "epochs": result.epochs, "seconds": round(result.seconds, 1),
                "seconds_per_epoch": round(result.seconds_per_epoch, 2),
                "train_edges_per_second": round(edges_per_second),
            }
            tracking.log_metrics(client, run_id, {key: value for key, value in summary.items()
                                                  if key != "variant"})
            client.set_terminated(run_id, "FINISHED")
            write_json(out / "summary.json", {**summary, "mlflow_run_id": run_id,
                                              "tuned_trial": study["trial"] if study else None})
            metrics[name] = {key: value for key, value in summary.items() if key != "variant"}
            log.info("train: %s best val MRR@10 %.4f after %d epochs, %.1f s/epoch (%s edges/s)",
                     name, result.best_score, result.epochs, result.seconds_per_epoch,
                     f"{edges_per_second:,.0f}")
    write_json(METRICS_PATH, metrics)
    return metrics
