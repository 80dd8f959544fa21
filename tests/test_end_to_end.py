"""The real pipeline, end to end: `dvc repro` in a scratch copy of the project on a tiny graph."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, require

pytestmark = pytest.mark.slow

# A 12-node digraph: two directed 6-cycles joined by chords, plus a few reciprocal pairs.
TINY_EDGES = [(i, (i + 1) % 6) for i in range(6)] + [(6 + i, 6 + (i + 1) % 6) for i in range(6)]
TINY_EDGES += [(0, 6), (6, 0), (3, 9), (1, 7), (7, 1), (2, 8), (4, 10), (5, 11), (11, 5), (0, 3)]


def run(command: list[str], cwd: Path,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(variable, None)  # the project's own store, whatever an earlier test set
    env.update(extra_env or {})
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


def _store(tiny_project: Path):
    import mlflow

    uri = f"sqlite:///{tiny_project / 'mlruns' / 'mlflow.db'}"
    return mlflow.MlflowClient(uri, uri)


def test_mlflow_layout_trained_models_on_top_the_study_with_its_trials(tiny_project: Path):
    """What the UI shows with no configuration: train runs at the top level linked to the study,
    the study run holding the chosen values as params, datasets, sources and curves first."""
    client = _store(tiny_project)
    experiment = client.get_experiment_by_name("blade")
    assert experiment.artifact_location == (tiny_project / "mlruns" / "artifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parent = next(run for run in runs if run.info.run_name.startswith("tune-tiny"))
    trials = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(run.info.run_name for run in trials) == ["trial-0", "trial-1", "trial-2"]
    top_level = {run.info.run_name for run in runs if "mlflow.parentRunId" not in run.data.tags}
    assert top_level == {parent.info.run_name, "train-blade", "train-sage"}

    # the study run: the chosen trial's values as params (short names), true counts, best score
    best = json.loads((tiny_project / "outputs" / "tune" / "best_params.json").read_text())
    chosen = next(run for run in trials if run.info.run_name == f"trial-{best['trial']}")
    searched = ["nb.alpha_x", "nb.d_min", "nb.n_min", "nb.n_max", "nb.h_max", "nb.beta", "train.lr",
                "train.dim"]
    assert [parent.data.params[key] for key in searched] == [chosen.data.params[key] for key in searched]
    assert parent.data.tags["tune.best_trial"] == str(best["trial"])
    assert parent.data.metrics["trials/complete"] + parent.data.metrics["trials/pruned"] == 3
    assert parent.data.metrics["best/val_mrr_at_10"] == pytest.approx(best["value"])
    for trial in trials:  # pruned or complete: every trial can be sorted by its best epoch
        assert "best/val_mrr_at_10" in trial.data.metrics

    blade = next(run for run in runs if run.info.run_name == "train-blade")
    assert blade.data.tags["tune.study"] == best["study"]
    assert blade.data.tags["tune.trial"] == str(best["trial"])
    assert blade.data.tags["tune.run_id"] == parent.info.run_id
    assert blade.data.params["tuned_trial"] == str(best["trial"])
    # source, commit and user: the UI's Source, Version and Created-by columns
    for run in (blade, parent, *trials):
        assert run.data.tags["mlflow.source.name"] in ("blade train", "blade tune")
        assert run.data.tags["mlflow.source.git.commit"] and run.data.tags["mlflow.user"]
    # datasets: the training graph on train runs and trials, the test split once evaluated
    contexts = {item.dataset.name: item.tags[0].value for item in blade.inputs.dataset_inputs}
    assert contexts == {"tiny": "training", "tiny-test": "test"}
    training = next(item.dataset for item in blade.inputs.dataset_inputs if item.tags[0].value == "training")
    assert training.name == "tiny" and training.source == "data/tiny/edges.txt"
    assert json.loads(training.profile)["nodes"] == 12
    assert trials[0].inputs.dataset_inputs[0].dataset.name == "tiny"

    # curves without a prefix, one-value results under one: the run page opens on the curves
    history = client.get_metric_history(blade.info.run_id, "val_mrr_at_10")
    assert [point.step for point in history] == [0, 1]
    single = [key for key in blade.data.metrics if "/" not in key]
    assert all(len(client.get_metric_history(blade.info.run_id, key)) > 1 for key in single), single
    assert {"test/hit_rate_at_10", "test/low/mrr_at_10", "test/direction_auc",
            "best/val_mrr_at_10", "run/epochs"} <= set(blade.data.metrics)

    champion = client.get_model_version_by_alias("blade-tiny", "champion")
    assert champion.tags["dataset"] == "tiny" and champion.tags["variant"] == "blade"
    assert champion.run_id == blade.info.run_id
    assert "test HR@10" in champion.description and "champion" in champion.description
    assert "tiny" in client.get_registered_model("blade-tiny").description
    source = client.get_logged_model(champion.source.removeprefix("models:/"))  # models:/m-<id>
    assert source.name == "blade-tiny-onnx-scorer"  # the UI's "source model"
    register = json.loads((tiny_project / "metrics" / "register.json").read_text())
    assert register["champion"] is True and register["version"] == int(champion.version)
    assert register["champion_version"] == int(champion.version)
    # the score stage records the version the alias resolved to: what DVC's dependency names
    assert json.loads((tiny_project / "metrics" / "score.json").read_text())["model_version"] == int(
        champion.version)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _mlflow_server(cwd: Path, *store_options: str) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with ``store_options``; yields its URL."""
    import time
    import urllib.request

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", *store_options,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))  # no job-runner processes
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = server.stderr.read() if server.poll() is not None else ""
                    pytest.fail(f"mlflow server did not start: {log}")
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _rest(base: str, path: str, body: dict | None = None) -> dict:
    import urllib.request

    request = urllib.request.Request(
        f"{base}{path}", data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_mlflow_server_answers_rest_queries_on_the_store(tiny_project: Path):
    store = tiny_project / "mlruns"
    with _mlflow_server(tiny_project, "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                        "--default-artifact-root", (store / "artifacts").as_uri()) as base:
        def call(path: str, body: dict | None = None) -> dict:
            return _rest(base, path, body)

        experiment = call("/api/2.0/mlflow/experiments/get-by-name?experiment_name=blade")["experiment"]
        runs = call("/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})["runs"]
        names = {run["info"]["run_name"] for run in runs}
        assert {"train-blade", "train-sage"} <= names
        assert sum(name.startswith("trial-") for name in names) == 3
        alias = call("/api/2.0/mlflow/registered-models/alias?name=blade-tiny&alias=champion")
        assert alias["model_version"]["name"] == "blade-tiny"


def _files(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*") if path.is_file()}


def test_a_tracking_server_gets_every_run_and_the_registered_model(tiny_project: Path, tmp_path: Path):
    """MLFLOW_TRACKING_URI=http://...: runs, artifacts and the model version all go to the server
    (its --artifacts-destination), none to the project's own mlruns/."""
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project, symlinks=True)
    local_store = _files(project / "mlruns")
    server_root = tmp_path / "server"
    server_root.mkdir()
    with _mlflow_server(server_root, "--backend-store-uri", f"sqlite:///{server_root / 'mlflow.db'}",
                        "--artifacts-destination", str(server_root / "artifacts")) as base:
        for stage in ("train", "evaluate", "export", "register"):
            run(["blade", stage], project, {"MLFLOW_TRACKING_URI": base})
        version = _rest(base, "/api/2.0/mlflow/registered-models/alias?name=blade-tiny&alias=champion")
        assert version["model_version"]["version"] == "1"  # a new registry: its first version
    models = list((server_root / "artifacts").rglob("MLmodel"))
    assert models, "the server's artifact store has no model"
    assert any((model.parent / "artifacts" / "scorer.onnx").is_file() for model in models)
    assert _files(project / "mlruns") == local_store  # nothing written to the local store


def test_the_registered_model_loads_and_serves_from_its_own_files(tiny_project: Path, tmp_path: Path):
    """The model with only its requirements.txt: a fresh virtual environment outside the
    repository (no project on the path), as `mlflow models serve --env-manager virtualenv`, a
    Docker image or a Spark executor would load it."""
    import mlflow
    import pandas as pd

    uri = f"sqlite:///{tiny_project / 'mlruns' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = Path(mlflow.artifacts.download_artifacts("models:/blade-tiny@champion",
                                                     dst_path=str(tmp_path / "m")))
    requirements = (model / "requirements.txt").read_text().split()
    assert {line.split("==")[0] for line in requirements} <= {"mlflow", "onnxruntime-gpu", "numpy", "pandas"}
    queries = pd.DataFrame({"query_id": ["3", "7", "not-a-product"]})
    expected = mlflow.pyfunc.load_model(str(model)).predict(queries, params={"k": 4})

    base_python = shutil.which("python3") or sys.executable
    environment = tmp_path / "venv"
    subprocess.run([base_python, "-m", "venv", str(environment)], check=True, timeout=300)
    install = subprocess.run([str(environment / "bin" / "pip"), "install", "--quiet",
                              "--disable-pip-version-check", "-r", str(model / "requirements.txt")],
                             capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    script = ("import sys, mlflow.pyfunc, pandas as pd\n"
              "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "queries = pd.DataFrame({'query_id': ['3', '7', 'not-a-product']})\n"
              "print(model.predict(queries, params={'k': 4}).to_json(orient='records'))\n")
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("MLFLOW_", "PYTHON")) and key != "VIRTUAL_ENV"}
    loaded = subprocess.run([str(environment / "bin" / "python"), "-I", "-c", script, str(model)],
                            cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    served = pd.DataFrame(json.loads(loaded.stdout.strip().splitlines()[-1]))
    assert served.query_id.tolist() == ["3"] * 4 + ["7"] * 4
    assert served.product_id.astype(str).tolist() == expected.product_id.astype(str).tolist()
    assert served["rank"].tolist() == expected["rank"].tolist()


def test_score_stage_and_mlflow_models_predict_agree(tiny_project: Path):
    import pandas as pd

    recs = pd.read_parquet(tiny_project / "outputs" / "score" / "recommendations.parquet")
    assert len(recs) == 12 * 5 and set(recs["rank"]) == {1, 2, 3, 4, 5}
    assert (recs.query_id != recs.product_id).all()
    export = json.loads((tiny_project / "metrics" / "export.json").read_text())
    assert export["parity"]["max_relative_score_error"] <= 1e-5

    (tiny_project / "q.csv").write_text("query_id\n3\n7\nnot-a-product\n")
    run(["blade", "score", "--model", "models:/blade-tiny@champion", "--input", "q.csv",
         "--output", "recs.parquet", "--k", "4"], tiny_project)
    ours = pd.read_parquet(tiny_project / "recs.parquet")
    assert ours.groupby("query_id").size().to_dict() == {"3": 4, "7": 4}
    assert pd.read_csv(tiny_project / "recs.unknown.csv", dtype=str).query_id.tolist() == ["not-a-product"]

    run(["blade", "score", "--model", "models:/blade-tiny@champion", "--input", "q.csv",
         "--output", "approx.parquet", "--k", "4", "--index", "ivf", "--nprobe", "100"], tiny_project)
    approximate = pd.read_parquet(tiny_project / "approx.parquet")
    assert approximate.product_id.tolist() == ours.product_id.tolist()  # every cell probed: exact

    env_uri = f"sqlite:///{tiny_project / 'mlruns' / 'mlflow.db'}"
    request = {"dataframe_split": {"columns": ["query_id"], "data": [["3"], ["7"]]}}
    (tiny_project / "q2.json").write_text(json.dumps(request))
    run(["mlflow", "models", "predict", "-m", "models:/blade-tiny@champion", "-i", "q2.json", "-t", "json",
         "-o", "predicted.json", "--env-manager", "local"], tiny_project, {"MLFLOW_TRACKING_URI": env_uri})
    predicted = pd.DataFrame(json.loads((tiny_project / "predicted.json").read_text())["predictions"])
    predicted = predicted[predicted["rank"] <= 4]
    for query in ("3", "7"):
        assert (predicted[predicted.query_id.astype(str) == query].product_id.astype(str).tolist()
                == ours[ours.query_id == query].product_id.tolist())


def test_spark_udf_scores_with_the_registered_model(tiny_project: Path):
    import importlib.util

    require(importlib.util.find_spec("pyspark") is not None, "pyspark (the dev extra)")
    require(shutil.which("java") is not None, "a Java runtime for Spark")
    import mlflow
    import pandas as pd
    import pyspark
    import pyspark.sql

    os.environ["PYSPARK_PYTHON"] = sys.executable  # Spark's workers: this environment's Python
    uri = f"sqlite:///{tiny_project / 'mlruns' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # MLFLOW_REGISTRY_URI may name another store otherwise
    spark = (pyspark.sql.SparkSession.builder.master("local[1]").appName("blade-test")
             .config("spark.ui.enabled", "false").getOrCreate())
    try:
        udf = mlflow.pyfunc.spark_udf(spark, "models:/blade-tiny@champion", env_manager="local",
                                      result_type="product_ids array<string>, scores array<double>",
                                      params={"k": 4, "output": "lists"})
        queries = spark.createDataFrame([("3",), ("7",), ("not-a-product",)], ["query_id"])
        rows = {row["query_id"]: row["recs"] for row in
                queries.withColumn("recs", udf("query_id")).collect()}
    finally:
        spark.stop()
    (tiny_project / "spark_q.csv").write_text("query_id\n3\n7\n")
    run(["blade", "score", "--model", "models:/blade-tiny@champion", "--input", "spark_q.csv",
         "--output", "spark_expected.parquet", "--k", "4"], tiny_project)
    ours = pd.read_parquet(tiny_project / "spark_expected.parquet")
    for query in ("3", "7"):
        assert rows[query]["product_ids"] == ours[ours.query_id == query].product_id.tolist()
    assert rows["not-a-product"]["product_ids"] == []


def test_compare_and_report_on_a_user_edge_list(tiny_project: Path):
    """What a user runs on their own graph: `blade compare --edges FILE`, then `blade report`."""
    run(["blade", "compare", "--edges", "data/tiny/edges.txt", "--name", "mine", "--seeds", "0", "1",
         "--trials", "2", "--variants", "blade", "daemon"], tiny_project)
    saved = json.loads((tiny_project / "reports" / "compare" / "mine.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["tuned"]["trials"]["complete"] == 2
    assert set(saved["summary"]) == {"blade", "daemon", "popularity", "cooccurrence", "walk", "walk_directed",
                                     "rp3beta", "rp3beta_directed", "item_knn"}
    run(["blade", "report", "--headline", "mine"], tiny_project)
    text = (tiny_project / "docs" / "report.md").read_text()
    assert "- **mine, all queries:** BLADE vs the best other method" in text
    assert (tiny_project / "docs" / "report" / "hit_rate_by_degree.png").is_file()
    # the compare runs: the same metric names as `blade`, method, seed and graph as params
    client = _store(tiny_project)
    experiment = client.get_experiment_by_name("blade-compare")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    blade = next(run for run in runs if run.info.run_name == "mine-blade-seed0")
    assert blade.data.params == {"graph": "mine", "method": "blade", "seed": "0", "tuned": "True"}
    assert {"test/hit_rate_at_10", "test/mrr_at_10", "test/low/mrr_at_10", "best/val_mrr_at_10"} <= set(
        blade.data.metrics)
    assert blade.info.end_time - blade.info.start_time >= 1  # the training's own start and end
    assert sorted(run.info.run_name for run in runs if "trial" in run.info.run_name) == [
        "mine-trial-0", "mine-trial-1"]
    result = subprocess.run(["blade", "report", "--reports", "nowhere"], cwd=tiny_project,
                            capture_output=True, text=True,
                            env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}"
                                                      f"{os.environ.get('PATH', '')}"))
    assert result.returncode == 2 and "nowhere: no comparison results" in result.stderr


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
        tiny_project: Path, monkeypatch, stage, outputs, change):
    import importlib

    from pipeline.config import load_params, with_values
    from pipeline.settings import check_params

    module = importlib.import_module(f"pipeline.{stage}")
    monkeypatch.chdir(tiny_project)
    before = _tree(tiny_project, outputs)
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
    assert _tree(tiny_project, outputs) == before  # byte for byte
    leftovers = [path for part in outputs for path in (tiny_project / part).parent.rglob(".*.tmp")]
    assert leftovers == []


def test_a_failed_dvc_repro_keeps_the_previous_outputs(tiny_project: Path, tmp_path: Path):
    """Through `dvc repro`, not only `blade STAGE`: DVC deletes a stage's outputs before running
    it unless they persist, and without a cache nothing could restore them."""
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project, symlinks=True)
    before = _tree(project, ("outputs/ingest", "metrics/ingest.json", "outputs/degree_stats"))
    assert before
    (project / "data" / "tiny" / "edges.txt").write_text("1 2\n3\n")  # a one-column line
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    failed = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=900)
    assert failed.returncode != 0
    assert "expected 2 whitespace-separated columns" in failed.stdout + failed.stderr
    assert _tree(project, ("outputs/ingest", "metrics/ingest.json", "outputs/degree_stats")) == before


def _train_process(project: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(variable, None)
    env.update(extra_env or {})
    command = ["blade", "train", "--set", "train.variants=[blade]", "--set", "train.max_epochs=4",
               "--set", "train.early_stopping_patience=10"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)


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
