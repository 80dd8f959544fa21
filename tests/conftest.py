"""Shared fixtures: tiny hand-made digraphs whose answers are written out in the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_project_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run a stage's main() inside an empty directory (stages write relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    # Two cores here: keep torch from oversubscribing when pytest runs other work.
    os.environ.setdefault("OMP_NUM_THREADS", "2")


_MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _isolated_mlflow_uris():
    """``mlflow.set_tracking_uri`` / ``set_registry_uri`` also export ``MLFLOW_*_URI`` for child
    processes: restore both (and MLflow's in-process URIs) after every test, so one test's
    temporary store never becomes the next test's, or its subprocesses', store."""
    saved = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "mlflow" in sys.modules:
        import mlflow.tracking._model_registry.utils as registry_utils
        import mlflow.tracking._tracking_service.utils as tracking_utils

        tracking_utils._tracking_uri = None
        registry_utils._registry_uri = None
    if "pipeline.tracking" in sys.modules:
        sys.modules["pipeline.tracking"]._uri_set_here = None


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """The whole pipeline run once by `dvc repro` on a 12-node digraph (tests/tiny_project.py),
    shared by the end-to-end modules; a test that changes it works on a copy."""
    from tests.tiny_project import build_tiny_project

    return build_tiny_project(tmp_path_factory.mktemp("project"))


def require(available: bool, what: str) -> None:
    """Skip a test whose system part (a Java runtime, a database server, a GPU) is missing on
    this machine, but fail it under ``CI=true``: CI installs those parts (``.ci/run``), so a
    missing one there is a broken CI, not a reason to pass silently."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true and {what} is missing: .ci/run should have installed it")
    pytest.skip(f"{what} is missing")
