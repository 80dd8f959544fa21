"""The GPU check (bench/gpu_check.py) runs where only the model library's packages exist, and
passes or fails on what it compares. Its CUDA run is marked ``gpu`` (skipped without CUDA)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
# A GPU machine may have none of these: the check must not import them, directly or not.
ABSENT = ("mlflow", "dvc", "optuna", "pydantic", "faiss")


def write_inputs(tmp_path: Path) -> Path:
    """A 60-node digraph (a ring with chords, both directions on every third edge) and a
    params.yaml whose ingest.edges names it and whose training is short."""
    lines = []
    for node in range(60):
        lines.append(f"{node}\t{(node + 1) % 60}")
        lines.append(f"{node}\t{(node + 7) % 60}")
        if node % 3 == 0:
            lines.append(f"{(node + 1) % 60}\t{node}")
    edges = tmp_path / "tiny.txt"
    edges.write_text("# tiny digraph\n" + "\n".join(lines) + "\n")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"].update(edges=str(edges), format="snap")
    params["train"].update(max_epochs=3, dim=8, batch_size=64)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_script(script: str, params: Path, *args: str) -> subprocess.CompletedProcess:
    """``bench/<script> --params PARAMS ARGS`` in a Python where ABSENT cannot be imported."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT)
    code = (f"import runpy, sys; {blocked}; sys.argv = [{script!r}, *sys.argv[1:]]; "
            f"runpy.run_path({str(ROOT / 'bench' / script)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, "--params", str(params), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def run_check(params: Path, *args: str) -> subprocess.CompletedProcess:
    return run_script("gpu_check.py", params, *args)


def test_check_runs_without_mlflow_dvc_optuna_pydantic(tmp_path):
    done = run_check(write_inputs(tmp_path), "--device", "cpu", "--queries", "16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "graph: 60 nodes" in done.stdout
    assert "training PASS, scoring PASS" in done.stdout
    # both runs are on the CPU here: the same seed gives the same curve, so the difference is 0
    assert "difference 0.0000" in done.stdout


def test_check_fails_when_the_runs_differ_more_than_the_tolerance(tmp_path):
    # a negative tolerance cannot be met: the check must say FAIL and exit 1
    done = run_check(write_inputs(tmp_path), "--device", "cpu", "--queries", "16", "--tolerance", "-1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tolerance -1.0: FAIL" in done.stdout


def test_no_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run_check(write_inputs(tmp_path))
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_and_scoring_match_the_cpu(tmp_path):
    done = run_check(write_inputs(tmp_path), "--queries", "16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "training PASS, scoring PASS" in done.stdout


def run_sweep(params: Path, *args: str) -> subprocess.CompletedProcess:
    return run_script("sweep.py", params, *args)


def test_sweep_scores_each_row_without_the_pipeline_packages(tmp_path):
    out = tmp_path / "sweep.json"
    done = run_sweep(write_inputs(tmp_path), "--device", "cpu", "--row", "ours:",
                     "--row", "beta 0:neighbourhood.beta=0,train.dim=4", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert list(rows) == ["ours", "beta 0"]
    assert rows["beta 0"]["overrides"] == {"neighbourhood.beta": 0, "train.dim": 4}
    for row in rows.values():
        assert 0.0 <= row["val_low_mrr@10"] <= row["val_low_hit_rate@10"] <= 1.0
        assert row["epochs"] == len(row["curve"]) == 3


def test_sweep_rejects_an_unknown_key(tmp_path):
    done = run_sweep(write_inputs(tmp_path), "--device", "cpu", "--row", "bad:train.no_such_key=1")
    assert done.returncode != 0
    assert "train.no_such_key" in done.stderr
