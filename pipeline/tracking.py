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

from models.training import is_rank_zero

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
        if experiment is not None:
            return experiment.experiment_id
        return mlflow_client.create_experiment(name, artifact_location=artifact_root())


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
    """A storage URL with its password replaced by ``***`` (``postgresql://user:***@host/db``),
    for everything that is logged, tagged or written; other URLs and paths are unchanged."""
    scheme, separator, rest = str(url).partition("://")
    if not separator:
        return str(url)
    credentials, at, location = rest.rpartition("@")
    if not at or ":" not in credentials or "/" in credentials:
        return str(url)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


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


def log_params(mlflow_client, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    flat = flatten("", params)
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
