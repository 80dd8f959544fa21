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
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from pipeline.fitting import is_rank_zero
from pipeline.settings import PASSWORD_QUERY_KEYS

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


# MLflow 3's UI opens an experiment of unknown kind on its GenAI overview (traces); this kind
# opens it on the runs table. The note is the experiment's description there.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "BLADE on directed product graphs. Top level: `train-<variant>` runs "
                           "(the trained models; tags `tune.*` name the study and trial they used) "
                           "and `tune-<study>` runs (expand for the trials; sort by "
                           "`best/val_mrr_at_10`). Per-epoch curves have plain names, one-value "
                           "results the prefixes best/, run/, test/.",
}


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # the runs table's column keys


TRIAL_VALUES = ("nb.alpha_x", "nb.d_min", "nb.n_min", "nb.n_max", "nb.h_max", "nb.beta", "train.lr",
                "train.dim")
TEST_METRICS = ("test/hit_rate_at_10", "test/mrr_at_10", "test/low/hit_rate_at_10", "test/low/mrr_at_10",
                "test/direction_auc")
# Views of the runs page kept in the experiment (MLflow's shared view states): a link with
# ?viewStateShareKey=<name> opens the table with these columns and this order; sorted by a
# metric, the trials leave their study's fold and sort with everything else.
RUN_VIEWS = {
    "blade": {
        "trials": {"orderByKey": _column("metrics", "best/val_mrr_at_10"), "orderByAsc": False,
                   "selectedColumns": [_column("metrics", "best/val_mrr_at_10")]
                   + [_column("params", key) for key in TRIAL_VALUES]},
        "models": {"orderByKey": _column("metrics", "test/mrr_at_10"), "orderByAsc": False,
                   "searchFilter": "tags.stage = 'train'",
                   "selectedColumns": [_column("metrics", key) for key in TEST_METRICS]
                   + [_column("tags", "tune.trial")]},
    },
    "blade-compare": {
        "methods": {"orderByKey": _column("metrics", "test/mrr_at_10"), "orderByAsc": False,
                    "searchFilter": "tags.stage = 'compare'",
                    "selectedColumns": [_column("params", key) for key in ("graph", "method", "seed")]
                    + [_column("metrics", key) for key in TEST_METRICS]},
    },
}
SHARED_VIEW_TAG = "mlflow.sharedViewState."


def runs_page_url(port: int, experiment: str, view: str | None = None,
                  host: str = "127.0.0.1", mlflow_client=None) -> str | None:
    """The UI's runs page of ``experiment`` (as model training, not its GenAI overview), in one of
    :data:`RUN_VIEWS` when ``view`` is given; None when the experiment does not exist yet."""
    found = (mlflow_client or client()).get_experiment_by_name(experiment)
    if found is None:
        return None
    share = f"&viewStateShareKey={view}" if view else ""
    return (f"http://{host}:{port}/#/experiments/{found.experiment_id}/runs"
            f"?workflowType=machine_learning{share}")


def ui_links(port: int) -> str:
    """What ``make ui`` prints: where each experiment's runs and views are."""
    lines = []
    mlflow_client = client()
    for experiment, views in RUN_VIEWS.items():
        if (url := runs_page_url(port, experiment, mlflow_client=mlflow_client)) is None:
            continue
        lines.append(f"{experiment}: {url}")
        lines += [f"  {name}: {url}&viewStateShareKey={name}" for name in views]
    return "\n".join(lines) or "No experiment yet: run `make run` first."


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


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_version(dvc_file: Path = Path("data.dvc")) -> str:
    """The DVC hash of the raw data (``md5`` of ``data.dvc``'s output), or ``unknown``."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return str(outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "unknown"


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def environment() -> dict[str, Any]:
    """What a run ran on: versions, hardware, commit, data version."""
    versions = {}
    for package in ("torch", "pytorch-lightning", "torch-geometric", "mlflow", "optuna", "onnxruntime-gpu",
                    "onnxruntime", "numpy", "dvc"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
        "data_version": data_version(),
        "packages": versions,
    }


def redact_url(url: str) -> str:
    """A storage URL with its password replaced by ``***`` (``postgresql://user:***@host/db``,
    ``...?password=***``), for everything that is logged, tagged or written; other URLs and
    paths are unchanged. params.yaml refuses passwords in URLs (:func:`pipeline.settings.url_password`):
    this is the second line, for URLs that come from elsewhere."""
    from urllib.parse import parse_qsl, quote

    scheme, separator, rest = str(url).partition("://")
    if not separator:
        return str(url)
    location, question, query = rest.partition("?")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{quote(key)}={'***' if key.lower() in PASSWORD_QUERY_KEYS else quote(value)}"
                         for key, value in pairs)
    if not scheme.startswith("sqlite"):
        credentials, at, host = location.rpartition("@")
        if at and ":" in credentials:
            location = f"{credentials.split(':', 1)[0]}:***@{host}"
    return f"{scheme}://{location}{question}{query}"


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


def config_digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


# The code a trained result depends on: a change to any of it starts a new Optuna study and
# re-runs `blade compare`'s seeds instead of re-using results of the old code.
RESULT_CODE = ("models/*.py", "pipeline/train.py", "pipeline/evaluate.py", "pipeline/ingest.py",
               "pipeline/edges.py", "pipeline/readers.py", "pipeline/artifacts.py", "pipeline/tune.py")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def code_digest(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.md5()
    for pattern in RESULT_CODE:
        for path in sorted(root.glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


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
