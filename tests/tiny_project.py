"""A scratch copy of the project on a 12-node digraph, made by `dvc repro`: the end-to-end tests'
shared fixture (``tiny_project`` in conftest.py) and the helpers they call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import PROJECT_ROOT

# A 12-node digraph: two directed 6-cycles joined by chords, plus a few reciprocal pairs.
TINY_EDGES = [(i, (i + 1) % 6) for i in range(6)] + [(6 + i, 6 + (i + 1) % 6) for i in range(6)]
TINY_EDGES += [(0, 6), (6, 0), (3, 9), (1, 7), (7, 1), (2, 8), (4, 10), (5, 11), (11, 5), (0, 3)]


def run(command: list[str], cwd: Path, extra_env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """``command`` in ``cwd`` with this interpreter's scripts (blade, dvc) first on PATH and the
    project's own MLflow store; with ``check``, a failure fails the test with its output."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(variable, None)  # the project's own store, whatever an earlier test set
    env.update(extra_env or {})
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def build_tiny_project(root: Path) -> Path:
    """Copy the code, dvc.yaml and params.yaml (sized for 12 nodes) into ``root``, run `dvc repro`."""
    for name in ("pipeline", "models"):
        shutil.copytree(PROJECT_ROOT / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "dvc.yaml", root / "dvc.yaml")
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["base"]["dataset"] = "tiny"
    params["ingest"]["edges"] = "data/tiny/edges.txt"
    params["ingest"]["split"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    params["neighbourhood"].update({"n_min": 1, "n_max": 3})
    params["train"].update({"variants": ["blade", "sage"], "dim": 8, "batch_size": 8,
                            "max_epochs": 2, "fixed_fanout": 2, "accelerator": "cpu", "devices": 1})
    params["evaluate"]["max_queries"] = 0
    params["tune"].update({"n_trials": 3, "max_epochs": 2, "timeout_seconds": None,
                           "study_name": "tiny"})
    params["tune"]["space"]["neighbourhood.d_min"] = {"low": 1, "high": 1, "int": True}
    params["registry"]["model_name"] = "blade-tiny"
    params["score"].update({"model": "models:/blade-tiny@champion", "k": 5})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data" / "tiny").mkdir(parents=True)
    lines = ["# tiny test graph"] + [f"{u}\t{v}" for u, v in TINY_EDGES]
    (root / "data" / "tiny" / "edges.txt").write_text("\n".join(lines) + "\n")
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "repro"], root)
    return root



def mlflow_store(project: Path):
    import mlflow

    uri = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    return mlflow.MlflowClient(uri, uri)
