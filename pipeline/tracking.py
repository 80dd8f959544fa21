"""The project's MLflow store: SQLite at ``mlruns/mlflow.db``, artifacts under ``mlruns/artifacts``.

Both are absolute paths (resolved from the working directory, the repository root under
``dvc repro``), so runs logged by any stage, the UI and ``mlflow models predict`` agree on where
artifacts live. ``MLFLOW_TRACKING_URI`` overrides the store (e.g. a shared tracking server);
new experiments then keep that server's default artifact location.

    mlflow ui --backend-store-uri sqlite:///$PWD/mlruns/mlflow.db --host 127.0.0.1

Runs are written with :class:`mlflow.MlflowClient` and explicit run ids (no global "active run"),
and only by the rank-0 process under DDP (:class:`EpochMetricsLogger`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from pipeline.fitting import is_rank_zero
from pipeline.mlflow_views import EXPERIMENT_TAGS, RUN_VIEWS, SHARED_VIEW_TAG
from pipeline.provenance import data_version, git_commit

log = logging.getLogger(__name__)

STORE_DIR = Path("mlruns")
DATABASE = "mlflow.db"
ARTIFACTS = "artifacts"


# mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI; remember what we set ourselves so
# that it is not mistaken for the user's override afterwards.
_uri_set_here: str | None = None


def _user_override() -> str | None:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri and uri != _uri_set_here else None


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if the user set it, else ``sqlite:///<abs>/mlruns/mlflow.db``."""
    override = _user_override()
    if override:
        return override
    STORE_DIR.mkdir(exist_ok=True)
    return _local_uri()


def artifact_root() -> str | None:
    """``file://<abs>/mlruns/artifacts`` for the local store; None (server default) otherwise."""
    if _user_override():
        return None
    return (STORE_DIR / ARTIFACTS).resolve().as_uri()


class _SilentRun:
    class info:  # noqa: N801  (mirrors mlflow.entities.Run.info)
        run_id = ""


class NullClient:
    """What non-zero DDP ranks get from :func:`client`: every call does nothing, so only rank 0
    writes runs, metrics and artifacts."""

    def create_run(self, *args, **kwargs) -> _SilentRun:
        return _SilentRun()

    def search_runs(self, *args, **kwargs) -> list:
        return []

    def get_experiment_by_name(self, *args, **kwargs) -> None:
        return None

    def create_experiment(self, *args, **kwargs) -> str:
        return ""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def _local_uri() -> str:
    return f"sqlite:///{(STORE_DIR / DATABASE).resolve()}"


@contextmanager
def _local_store_lock(uri: str) -> Iterator[None]:
    """One process at a time creates or migrates the project's SQLite store and its experiments:
    several processes of one project (``blade tune`` workers sharing a study) start together,
    and SQLite migrations or experiment creation racing each other fail. A user's tracking
    server (``MLFLOW_TRACKING_URI``) needs no lock."""
    if uri != _local_uri() or not is_rank_zero():  # another store, or a rank that writes nothing
        yield
        return
    STORE_DIR.mkdir(exist_ok=True)
    with open(STORE_DIR / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def client():
    """An :class:`mlflow.MlflowClient` on :func:`tracking_uri` (also set as MLflow's default);
    a :class:`NullClient` in the non-zero ranks of a DDP launch."""
    import mlflow

    if not is_rank_zero():
        return NullClient()
    global _uri_set_here
    quiet_mlflow()
    uri = tracking_uri()
    if _user_override() is None:
        # only our own default is remembered: the user's URI stays the user's on every later call
        # (remembering it made the second client() fall back to the local store)
        _uri_set_here = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _local_store_lock(uri):
        return mlflow.MlflowClient(uri, uri)  # creates or migrates the store


def experiment_id(mlflow_client, name: str) -> str:
    """The id of experiment ``name``, created with the project's artifact root if missing."""
    import mlflow

    with _local_store_lock(mlflow.get_tracking_uri()):
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            identifier = mlflow_client.create_experiment(name, artifact_location=artifact_root())
        else:
            identifier = experiment.experiment_id
        tags = EXPERIMENT_TAGS | {f"{SHARED_VIEW_TAG}{view}": json.dumps(state)
                                  for view, state in RUN_VIEWS.get(name, {}).items()}
        for key, value in tags.items():
            if experiment is None or experiment.tags.get(key) != value:
                mlflow_client.set_experiment_tag(identifier, key, value)
        return identifier


def quiet_mlflow() -> None:
    """Keep the store's schema-migration chatter (alembic INFO lines) out of the user's log."""
    for noisy in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# params.yaml keys as the MLflow UI shows them: its run table cuts headers at about 14
# characters, so "neighbourhood.alpha_multiplier" would read "neighbourhood" like five others.
PARAM_NAMES = {"neighbourhood.alpha_multiplier": "nb.alpha_x", "train.learning_rate": "train.lr"}
SECTION_NAMES = {"neighbourhood": "nb"}


def param_name(key: str) -> str:
    """The MLflow param key of a params.yaml key: ``neighbourhood.n_max`` -> ``nb.n_max``."""
    if key in PARAM_NAMES:
        return PARAM_NAMES[key]
    section, dot, rest = key.partition(".")
    return f"{SECTION_NAMES.get(section, section)}{dot}{rest}"


def flatten(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"prefix.a.b": "1"}``: nested params as MLflow param keys."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(name, value))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def start_run(mlflow_client, experiment: str, name: str, stage: str, tags: dict[str, str] | None = None,
              start_time: int | None = None) -> str:
    """A new run with what the UI's Source, Version and "Created by" columns show: the ``blade``
    command that made it, the git commit and the user; ``stage`` and ``git_commit`` as tags too."""
    import getpass

    from mlflow.utils import mlflow_tags

    commit = git_commit()
    standard = {mlflow_tags.MLFLOW_SOURCE_NAME: f"blade {stage}", mlflow_tags.MLFLOW_SOURCE_TYPE: "LOCAL",
                mlflow_tags.MLFLOW_GIT_COMMIT: commit, mlflow_tags.MLFLOW_USER: getpass.getuser(),
                "stage": stage, "git_commit": commit}
    run = mlflow_client.create_run(experiment, start_time=start_time, run_name=name,
                                   tags=standard | (tags or {}))
    return run.info.run_id


def log_dataset(mlflow_client, run_id: str, name: str, source: str, split_sizes: dict[str, int],
                context: str) -> None:
    """The graph a run used, in MLflow's dataset tracking (the UI's Dataset column): its name,
    the DVC data version as digest, the edge file as source and the split sizes as profile."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(name=name, digest=data_version()[:12], source_type="local", source=source,
                      profile=json.dumps(split_sizes))
    mlflow_client.log_inputs(run_id, datasets=[DatasetInput(
        dataset, tags=[InputTag("mlflow.data.context", context)])])


def log_params(mlflow_client, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    flat = {param_name(key): value for key, value in flatten("", params).items()}
    items = [Param(key, value[:6000]) for key, value in sorted(flat.items())]
    for start in range(0, len(items), 100):
        mlflow_client.log_batch(run_id, params=items[start:start + 100])


def log_metrics(mlflow_client, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    items = [Metric(sanitise(key), float(value), stamp, step) for key, value in metrics.items()]
    for start in range(0, len(items), 500):
        mlflow_client.log_batch(run_id, metrics=items[start:start + 500])


# One-value metrics go under a prefix, which the MLflow UI makes a chart section of its own, so
# the run page opens on the per-epoch curves (train_loss, val_mrr_at_10, ...: no prefix).
SUMMARY_PREFIX = {"best_val_mrr@10": "best/val_mrr@10", "best_trial": "best/trial"}


def summary_metrics(values: dict[str, Any], prefix: str = "run") -> dict[str, float]:
    """A stage's one-value results as metrics: ``best/...`` for the best epoch or trial,
    ``<prefix>/...`` for the rest (epochs, seconds, throughput); non-numbers are left out."""
    return {SUMMARY_PREFIX.get(key, f"{prefix}/{key}"): float(value) for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def evaluation_metrics(result: dict[str, Any], split: str = "test") -> dict[str, float]:
    """One method's evaluation (``models.evaluation.evaluate_scorer``) as metrics, named alike in
    every experiment: ``test/mrr@10``, ``test/direction_auc``, ``test/low/mrr@10``,
    ``test/q1/mrr@10``, ``test/reverse_in_training/mrr@10``, ``test/global/hits@50``, ... (``@``
    reads ``_at_`` in MLflow)."""
    metrics = {f"{split}/{key}": value for key, value in result["overall"].items()}
    metrics[f"{split}/direction_auc"] = result.get("direction_auc")
    for bucket, values in result.get("buckets", {}).items():
        label = bucket.split(":")[0].strip().replace(" ", "_")
        metrics.update({f"{split}/{label}/{key}": value for key, value in values.items()})
    for subset, values in result.get("subsets", {}).items():
        label = subset.replace(" ", "_")
        metrics.update({f"{split}/{label}/{key}": value for key, value in values.items()})
    metrics.update({f"{split}/global/{key}": value for key, value in result.get("global", {}).items()})
    return {key: float(value) for key, value in metrics.items()
            if value is not None and math.isfinite(float(value))}


def split_sizes(graph) -> dict[str, int]:
    """Nodes and edges per split of a :class:`pipeline.artifacts.SplitGraph` (a dataset profile)."""
    return {"nodes": int(graph.num_nodes), "train_edges": int(graph.train.shape[1]),
            "val_edges": int(graph.val.shape[1]), "test_edges": int(graph.test.shape[1])}


def sanitise(key: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / space`` and ``:``; ``@`` becomes ``_at_``."""
    return key.replace("@", "_at_").replace("<=", "le").replace("<", "lt").replace(">", "gt")


def copy_curves(mlflow_client, source_run: str, target_run: str) -> int:
    """Copy ``source_run``'s per-epoch curves (metric keys without '/', every step) into
    ``target_run``: a model continued from a tuning trial shows the epochs it was trained for.
    Returns how many points were copied: none when ``source_run`` is not in this tracking store
    (tuning logged to another one, say a local store before MLFLOW_TRACKING_URI pointed at a
    server)."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    try:
        metrics = mlflow_client.get_run(source_run).data.metrics
    except MlflowException:
        log.warning("tracking: tuning run %s is not in this tracking store; its curves are not copied",
                    source_run)
        return 0
    points = []
    for key in metrics:
        if "/" in key:
            continue  # one-value results (best/..., run/...): the target logs its own
        points += [Metric(key, point.value, point.timestamp, point.step)
                   for point in mlflow_client.get_metric_history(source_run, key)]
    for start in range(0, len(points), 1000):  # MLflow's batch limit
        mlflow_client.log_batch(target_run, metrics=points[start:start + 1000])
    return len(points)


class EpochMetricsLogger(pl.Callback):
    """Logs every epoch's training and validation metrics to one MLflow run (rank 0 only).

    Validation metrics are logged as soon as validation ends (before a pruner may stop the
    trial in the same hook), training metrics at the end of the epoch.
    """

    def __init__(self, mlflow_client, run_id: str) -> None:
        self.client = mlflow_client
        self.run_id = run_id

    def _log(self, trainer: pl.Trainer, validation: bool) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if key.startswith("val_") == validation and torch.as_tensor(value).numel() == 1}
        if metrics:
            log_metrics(self.client, self.run_id, metrics, step=trainer.current_epoch)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, validation=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, validation=False)
