"""`blade train` under DDP on the CPU: 2 processes (gloo), a tiny graph, the real stage.

With ``strategy: ddp`` and N processes, Lightning gives each process a different share of an
epoch's steps, and every optimiser step averages the gradients of N batches. A step's loss is a
mean over its batch, so N processes with ``batch_size`` b train exactly like one process with
``batch_size`` N * b (same epoch split, same negatives, same order): the test checks that, to
floating-point tolerance, and that only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.test_tune import tiny_tune_params

BATCH = 2  # per process: the tiny graph's 14 training edges give 8 supervision edges an epoch
# (supervision_fraction 0.6), 4 steps of 2, so rank 0 takes steps 0 and 2, rank 1 steps 1 and 3
# (a step count that does not divide by the processes makes Lightning's sampler repeat one)


def _environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("MLFLOW_") and key not in ("LOCAL_RANK", "RANK", "NODE_RANK")}
    return environment | {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"} | extra


def _project(folder: Path, batch_size: int) -> Path:
    folder.mkdir()
    params = tiny_tune_params(folder)
    params["train"].update({"variants": ["blade"], "max_epochs": 3, "early_stopping_patience": 10,
                            "batch_size": batch_size, "supervision_fraction": 0.6, "use_tuned": False})
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "degree-stats"):
        subprocess.run([sys.executable, "-m", "pipeline.cli", stage], cwd=folder, check=True,
                       capture_output=True, env=_environment())
    return folder


def _train(folder: Path, *settings: str, **environment: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.cli", "train", *(f"--set={item}" for item in settings)]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600,
                          env=_environment(**environment))


def _curve(folder: Path) -> list[float]:
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "blade"]
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_name for run in runs] == ["train-blade"]  # one run, from rank 0 alone
    history = client.get_metric_history(runs[0].info.run_id, "val_mrr_at_10")
    return [point.value for point in sorted(history, key=lambda point: point.step)]


@pytest.mark.slow
def test_ddp_two_processes_shard_the_steps_and_train_like_one_with_the_double_batch(tmp_path):
    ddp = _project(tmp_path / "ddp", BATCH)
    trace = tmp_path / "trace"
    done = _train(ddp, "train.strategy=ddp", "train.devices=2", "train.accelerator=cpu",
                  BLADE_TRACE_STEPS=str(trace))
    assert done.returncode == 0, done.stdout + done.stderr

    # each rank trained on its own edges: per epoch, the two ranks' batches are disjoint shares
    # of the epoch's supervision edges, together all of them
    ranks = {}
    for rank in (0, 1):
        lines = (trace / f"rank-{rank}.txt").read_text().split("\n")
        ranks[rank] = [line.split() for line in lines if line]
    assert len(ranks[0]) == len(ranks[1]) == 3 * 2  # 3 epochs x 2 steps each
    for epoch in "012":
        zero = set().union(*(batch[1:] for batch in ranks[0] if batch[0] == epoch))
        one = set().union(*(batch[1:] for batch in ranks[1] if batch[0] == epoch))
        assert len(zero) == len(one) == 4 and not zero & one

    # rank 0 alone wrote: one MLflow run, the outputs with its run id, the checkpoints
    summary = json.loads((ddp / "outputs/train/blade/summary.json").read_text())
    assert summary["mlflow_run_id"] and summary["epochs"] == 3
    assert {path.name for path in (ddp / "outputs/checkpoints/blade").iterdir()} >= {
        "best.ckpt", "last.ckpt", "fingerprint.txt"}
    ddp_curve = _curve(ddp)

    single = _project(tmp_path / "single", 2 * BATCH)
    done = _train(single, "train.accelerator=cpu", "train.devices=1")
    assert done.returncode == 0, done.stdout + done.stderr
    single_curve = _curve(single)
    assert len(ddp_curve) == len(single_curve) == 3
    # batches of 4 + 4 averaged over 2 processes = batches of 8 in one: the same training
    assert ddp_curve == pytest.approx(single_curve, abs=1e-4)
