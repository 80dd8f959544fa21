"""The Optuna study behind ``blade tune``: its storage (SQLite or any RDB URL, the password from
the environment), a budget shared by every worker of one study, and the pruning (successive
halving over epochs, only when the time budget binds)."""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import sqlalchemy.engine
import sqlalchemy.exc

from models.training import MONITOR
from pipeline import provenance
from pipeline.config import ConfigError
from pipeline.passwords import STORAGE_PASSWORD_VARIABLE
from pipeline.settings import TuneSettings, as_settings

log = logging.getLogger(__name__)


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


# Trials that take a place in the budget: finished, running in a live worker (a dead worker's
# trial misses its heartbeats and is failed after GRACE_SECONDS), or enqueued.
BUDGET_STATES = (*FINISHED, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


HEARTBEAT_SECONDS = 10


GRACE_SECONDS = 30


class SurplusTrial(Exception):
    """A worker's trial started when other workers' trials had already taken the whole budget."""


class StopAtBudget:
    """After each trial: stop this worker when the study's trials (all workers') fill the budget."""

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if budget_used(study) >= self.n_trials:
            study.stop()


def budget_used(study: optuna.Study, before: int | None = None) -> int:
    """Trials that take a place in the budget (``BUDGET_STATES``), those numbered below
    ``before`` only when given. The storage numbers trials atomically, so with several workers
    the trial whose number comes after the first ``n_trials`` is the surplus one."""
    trials = study.get_trials(deepcopy=False, states=BUDGET_STATES)
    return sum(1 for trial in trials if before is None or trial.number < before)


def open_storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """The study's RDB storage with heartbeats: a trial of a worker that died stops taking a
    place in the budget ``GRACE_SECONDS`` after its last heartbeat (it is marked failed).

    Workers started together on an empty database all create Optuna's tables; PostgreSQL lets one
    win and fails the others with a unique violation in its catalog (``CREATE TABLE`` is not safe
    against itself). The tables then exist: the losers retry."""
    url = with_storage_password(url)
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=GRACE_SECONDS)
        except ImportError:  # Optuna's word for "the URL's database driver is not installed"
            raise ConfigError(f"tune.storage {provenance.redact_url(url)}: its database driver is not "
                              "installed; e.g. pip install psycopg2-binary for postgresql://, pymysql "
                              "for mysql+pymysql://") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as error:
            if attempt == attempts - 1:
                raise
            log.info("tune: storage not ready (%s), retrying", type(error.orig).__name__)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def with_storage_password(url: str) -> str:
    """``url`` with the password of ``$BLADE_STORAGE_PASSWORD`` when it is set (the URL itself
    never has one: params.yaml refuses it). Only the storage connection sees the result."""
    password = os.environ.get(STORAGE_PASSWORD_VARIABLE)
    if not password:
        return url
    return sqlalchemy.engine.make_url(url).set(password=password).render_as_string(hide_password=False)


def open_study(name: str, storage: optuna.storages.RDBStorage, sampler, pruner) -> tuple[optuna.Study, bool]:
    """``(study, created)``: exactly one of several workers starting together creates the study
    (the storage's unique name decides), the others load it."""
    try:
        return optuna.create_study(study_name=name, storage=storage, load_if_exists=False,
                                   direction="maximize", sampler=sampler, pruner=pruner), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner), False


class OptunaPruning(pl.Callback):
    """Reports the monitored validation metric to the trial after every epoch; raises
    :class:`optuna.TrialPruned` when the pruner says so (what optuna-integration's
    ``PyTorchLightningPruningCallback`` does, without its import of the ``lightning`` package)."""

    def __init__(self, trial: optuna.Trial, monitor: str = MONITOR) -> None:
        self.trial = trial
        self.monitor = monitor
        self.best: float | None = None  # the best value reported (a pruned trial's best too)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        epochs = trainer.current_epoch + 1  # the step is the epochs trained: the halving rungs
        self.best = value if self.best is None else max(self.best, value)
        self.trial.report(value, step=epochs)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after epoch {epochs}: "
                                     f"{self.monitor} {value:.4f} below the rung's best")


def storage_url(tune: TuneSettings | dict[str, Any]) -> str:
    """``tune.storage`` with a relative SQLite path made absolute (parents created)."""
    url = as_settings(tune, TuneSettings).storage
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        path = Path(url[len(prefix):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return url


def halving_pruner(tune: TuneSettings) -> optuna.pruners.BasePruner:
    """Successive halving over epochs (asynchronous, as Optuna's ``SuccessiveHalvingPruner``):
    rungs after ``halving_min_epochs`` x ``halving_rate`` ** k epochs; at each rung a trial goes
    on only if it is among the best 1 in ``halving_rate`` of the trials that reached that rung
    (the best, while fewer than ``halving_rate`` have). Most trials cost one or a few epochs;
    the promising ones train until early stopping, as ``train`` does."""
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=tune.halving_min_epochs,
                                                  reduction_factor=tune.halving_rate,
                                                  min_early_stopping_rate=0)


class PruneWhenBudgetBinds(optuna.pruners.BasePruner):
    """``inner``'s decisions, applied only when ``n_trials`` whole trials would not fit in
    ``timeout_seconds``: the mean time of the study's complete trials x ``n_trials``.

    Halving trades a better search for a cheaper one, and a trial's first epochs predict its best
    one poorly where trials are short (small graphs: ``docs/decisions.md`` has the study that kept
    the defaults because of it). So a graph whose whole trials fit the budget gets them, and a
    big one is halved once its first complete trial shows they would not fit. Until a trial
    completes (trial 0, the defaults) nothing is pruned. ``inner`` sees every report either
    way, so it keeps its rungs.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, n_trials: int,
                 timeout_seconds: float | None) -> None:
        self.inner = inner
        self.n_trials = n_trials
        self.timeout_seconds = timeout_seconds

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        inner_says = self.inner.prune(study, trial)  # always asked: it records the rung values
        return inner_says and self.budget_binds(study)

    def budget_binds(self, study: optuna.Study) -> bool:
        if self.timeout_seconds is None:
            return False
        seconds = [(t.datetime_complete - t.datetime_start).total_seconds()
                   for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                   if t.datetime_start and t.datetime_complete]
        if not seconds:
            return False
        return sum(seconds) / len(seconds) * self.n_trials > self.timeout_seconds
