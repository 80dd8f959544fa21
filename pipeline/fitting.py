"""Fitting a training module with Lightning: checkpoints, resume, early stopping, fault injection.

:func:`fit_module` runs the Lightning ``Trainer`` on a module that
:func:`models.training.build_module` built, keeps the best validation epoch's weights (from
its checkpoint, or in memory without one), then fits what is fitted on validation edges after
training (:func:`models.training.fit_after_training`). The files live here, not in
``models/``: the checkpoint folder and its fingerprint, the ``finished.txt`` marker, and the
test hooks driven by environment variables (``BLADE_KILL_AFTER_EPOCH``,
``BLADE_TRACE_STEPS``). It imports torch and Lightning only, so ``bench/gpu_check.py`` runs it
on a machine without MLflow, DVC or Optuna.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from models.module import LinkPredictionModule
from models.training import MONITOR, fit_after_training, train_loader
from models.walk_channel import WalkChannel, WalkSearch

log = logging.getLogger(__name__)

FINISHED_FILE = "finished.txt"  # beside the checkpoints: their run ended, resuming trains nothing


def is_rank_zero() -> bool:
    """False in the non-zero ranks of a distributed (DDP) launch: Lightning starts each of them
    by running the same command again, with ``LOCAL_RANK`` (and ``NODE_RANK`` / ``RANK``) set."""
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        if int(os.environ.get(variable, "0") or 0) != 0:
            return False
    return True


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
        step = int(batch[0].reshape(-1)[0])
        edge_ids = pl_module._supervision[step * pl_module.batch_size: (step + 1) * pl_module.batch_size]
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"rank-{trainer.global_rank}.txt", "a") as handle:
            handle.write(f"{trainer.current_epoch} {' '.join(map(str, edge_ids.tolist()))}\n")


def fit_module(
    module: LinkPredictionModule,
    config: Any,
    checkpoint_dir: Path | None = None,
    fingerprint: str = "",
    callbacks: list[pl.Callback] | None = None,
    logger: Any = False,
    progress: bool = True,
    label: str = "",
    walk_channel: WalkSearch | None = None,
    refit_target_prior: bool = False,
) -> FitResult:
    """Fit ``module`` until early stopping (``config.early_stopping_patience`` epochs without a
    better validation MRR@10) or ``config.max_epochs``, on ``config.accelerator`` /
    ``config.devices``; then, with ``refit_target_prior``, refit the target prior's weight to
    the validation ranking (:func:`models.target_prior.fit_target_prior`), with
    ``walk_channel`` fit the walk channel (which of its walks, lambda, epsilon:
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
        trainer.fit(module, train_loader(module),
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
    prior_fit, walk, walk_fit, direction = fit_after_training(
        module, refit_target_prior=refit_target_prior, walk_channel=walk_channel,
        calibrate_direction=config.calibrate_direction, label=label)
    return FitResult(module, float(best) if best is not None else float("nan"),
                     epochs, seconds, seconds_per_epoch, best_path,
                     curve.scores, untrained, direction, walk, walk_fit, prior_fit)
