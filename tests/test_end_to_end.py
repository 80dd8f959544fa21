"""The real pipeline, end to end: `dvc repro` in a scratch copy of the project on a tiny graph."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

# A 12-node digraph: two directed 6-cycles joined by chords, plus a few reciprocal pairs.
TINY_EDGES = [(i, (i + 1) % 6) for i in range(6)] + [(6 + i, 6 + (i + 1) % 6) for i in range(6)]
TINY_EDGES += [(0, 6), (6, 0), (3, 9), (1, 7), (7, 1), (2, 8), (4, 10), (5, 11), (11, 5), (0, 3)]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
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
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data" / "tiny").mkdir(parents=True)
    lines = ["# tiny test graph"] + [f"{u}\t{v}" for u, v in TINY_EDGES]
    (root / "data" / "tiny" / "edges.txt").write_text("\n".join(lines) + "\n")
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "repro"], root)
    return root


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
    assert set(evaluation["methods"]) == {"blade", "sage", "popularity", "cooccurrence"}
    test_edges = json.loads((tiny_project / "metrics" / "ingest.json").read_text())["test_edges"]
    assert evaluation["evaluated_edges"] == test_edges
    for result in evaluation["methods"].values():
        assert 0.0 <= result["overall"]["hit_rate@10"] <= 1.0
        assert result["overall"]["count"] == test_edges
    assert (tiny_project / "plots" / "hit_rate_by_degree.png").stat().st_size > 1000


def test_repro_again_is_a_no_op(tiny_project: Path):
    result = run([sys.executable, "-m", "dvc", "repro"], tiny_project)
    assert "didn't change, skipping" in result.stdout
