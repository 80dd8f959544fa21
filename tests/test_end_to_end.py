"""The real pipeline, end to end: `dvc repro` in a scratch copy of the project on a tiny graph
(``tiny_project``): each stage's outputs, failures that leave the previous outputs, resumed
training. Tracking, registry and serving on the same project: test_end_to_end_serving.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tiny_project import TINY_EDGES, run

pytestmark = pytest.mark.slow


def test_ingest_and_degree_stats_outputs(tiny_project: Path):
    ingest = json.loads((tiny_project / "metrics" / "ingest.json").read_text())
    assert ingest["nodes"] == 12 and ingest["edges"] == len(TINY_EDGES)
    assert ingest["train_edges"] + ingest["val_edges"] + ingest["test_edges"] == len(TINY_EDGES)
    stats = json.loads((tiny_project / "metrics" / "degree_stats.json").read_text())
    assert stats["nodes"] == 12 and stats["alpha_hat"] > 1
    assert (tiny_project / "plots" / "in_degree_distribution.png").stat().st_size > 1000
    assert (tiny_project / "dvc.lock").is_file()


def test_train_and_evaluate_outputs(tiny_project: Path):
    train = json.loads((tiny_project / "metrics" / "train.json").read_text())
    assert set(train) == {"blade", "sage"} and train["blade"]["epochs"] == 2
    for variant in ("blade", "sage"):
        assert (tiny_project / "outputs" / "train" / variant / "embeddings.pt").is_file()
        assert (tiny_project / "outputs" / "train" / variant / "model.ckpt").is_file()
    evaluation = json.loads((tiny_project / "metrics" / "evaluate.json").read_text())
    assert set(evaluation["methods"]) == {"blade", "sage", "popularity", "cooccurrence", "walk",
                                          "walk_directed", "rp3beta", "rp3beta_directed", "item_knn"}
    assert evaluation["methods"]["blade"]["global"]["auc"] >= 0.0  # the global metric is computed
    assert set(evaluation["methods"]["walk"]["subsets"]) == {"reverse in training", "reverse not in training"}
    test_edges = json.loads((tiny_project / "metrics" / "ingest.json").read_text())["test_edges"]
    assert evaluation["evaluated_edges"] == test_edges
    for result in evaluation["methods"].values():
        assert 0.0 <= result["overall"]["hit_rate@10"] <= 1.0
        assert result["overall"]["count"] == test_edges
    assert (tiny_project / "plots" / "hit_rate_by_degree.png").stat().st_size > 1000


def test_repro_again_is_a_no_op(tiny_project: Path):
    result = run([sys.executable, "-m", "dvc", "repro"], tiny_project)
    assert "didn't change, skipping" in result.stdout


def test_tune_study_and_best_params(tiny_project: Path):
    tune = json.loads((tiny_project / "metrics" / "tune.json").read_text())
    assert tune["trials_complete"] + tune["trials_pruned"] == 3
    best = json.loads((tiny_project / "outputs" / "tune" / "best_params.json").read_text())
    space = yaml.safe_load((tiny_project / "params.yaml").read_text())["tune"]["space"]
    assert set(best["overrides"]) == set(space)
    summary = json.loads((tiny_project / "outputs" / "train" / "blade" / "summary.json").read_text())
    assert summary["tuned_trial"] == best["trial"]


def _tree(root: Path, parts: tuple[str, ...]) -> dict[str, bytes]:
    out = {}
    for part in parts:
        target = root / part
        paths = sorted(target.rglob("*")) if target.is_dir() else [target]
        out.update({str(path.relative_to(root)): path.read_bytes() for path in paths if path.is_file()})
    return out


# each run changes a value, so that the failed run's outputs would differ from the previous ones
@pytest.mark.parametrize(("stage", "outputs", "change"), [
    ("train", ("outputs/train", "metrics/train.json"), {"train.dim": 4}),
    ("evaluate", ("outputs/evaluate", "metrics/evaluate.json", "plots"), {"evaluate.max_queries": 2}),
    ("export", ("outputs/export", "metrics/export.json"), {"registry.variant": "sage"}),
])
def test_a_stage_that_fails_after_its_first_output_leaves_the_previous_outputs(
        tiny_project: Path, tmp_path: Path, monkeypatch, stage, outputs, change):
    import importlib

    from pipeline.config import load_params, with_values
    from pipeline.settings import check_params

    module = importlib.import_module(f"pipeline.{stage}")
    project = tmp_path / "project"  # a copy: the failed runs stay out of the shared store
    shutil.copytree(tiny_project, project, symlinks=True)
    monkeypatch.chdir(project)
    before = _tree(project, outputs)
    assert len(before) >= 2
    real_write_json = module.write_json

    def fail_at_the_metrics(path, payload):  # the stage's other outputs are written by then
        if str(path).startswith("metrics"):
            raise RuntimeError("injected failure")
        real_write_json(path, payload)

    monkeypatch.setattr(module, "write_json", fail_at_the_metrics)
    params = check_params(with_values(load_params("params.yaml"), change))
    with pytest.raises(RuntimeError, match="injected failure"):
        module.main(params)
    assert _tree(project, outputs) == before  # byte for byte
    leftovers = [path for part in outputs for path in (project / part).parent.rglob(".*.tmp")]
    assert leftovers == []


def test_a_failed_dvc_repro_keeps_the_previous_outputs(tiny_project: Path, tmp_path: Path):
    """Through `dvc repro`, not only `blade STAGE`: DVC deletes a stage's outputs before running
    it unless they persist, and without a cache nothing could restore them."""
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project, symlinks=True)
    before = _tree(project, ("outputs/ingest", "metrics/ingest.json", "outputs/degree_stats"))
    assert before
    (project / "data" / "tiny" / "edges.txt").write_text("1 2\n3\n")  # a one-column line
    failed = run([sys.executable, "-m", "dvc", "repro"], project, check=False)
    assert failed.returncode != 0
    assert "expected 2 whitespace-separated columns" in failed.stdout + failed.stderr
    assert _tree(project, ("outputs/ingest", "metrics/ingest.json", "outputs/degree_stats")) == before


def _train_process(project: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = ["blade", "train", "--set", "train.variants=[blade]", "--set", "train.max_epochs=4",
               "--set", "train.early_stopping_patience=10"]
    return run(command, project, extra_env, check=False)


def test_a_killed_training_resumes_at_the_next_epoch_and_ends_with_the_same_model(tiny_project, tmp_path):
    import torch

    projects = {}
    for name in ("uninterrupted", "killed"):
        projects[name] = tmp_path / name
        shutil.copytree(tiny_project, projects[name], ignore=shutil.ignore_patterns("checkpoints"))
    straight = _train_process(projects["uninterrupted"])
    assert straight.returncode == 0, straight.stderr
    killed = _train_process(projects["killed"], {"BLADE_KILL_AFTER_EPOCH": "2"})
    assert killed.returncode == -9  # SIGKILL, at the start of epoch 3
    assert "blade epoch 2/4" in killed.stderr and "blade epoch 3/4" not in killed.stderr
    assert (projects["killed"] / "outputs/checkpoints/blade/last.ckpt").is_file()
    resumed = _train_process(projects["killed"])
    assert resumed.returncode == 0, resumed.stderr
    assert "blade: resuming from outputs/checkpoints/blade/last.ckpt" in resumed.stderr
    epochs = [int(line.split("blade epoch ")[1].split("/")[0]) for line in resumed.stderr.splitlines()
              if "blade epoch " in line]
    final = {name: torch.load(project / "outputs/train/blade/embeddings.pt", weights_only=True)
             for name, project in projects.items()}
    assert epochs == [3, 4]  # it started at the next epoch, not at 1
    assert torch.equal(final["killed"]["source"], final["uninterrupted"]["source"])
    assert torch.equal(final["killed"]["target"], final["uninterrupted"]["target"])
