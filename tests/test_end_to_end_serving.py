"""What `dvc repro` leaves for tracking and serving, on the tiny project (``tiny_project``): the
MLflow store as the UI shows it, a tracking server, the registered model loaded from its own
files, batch scoring, Spark, and `blade compare` / `blade report` on a user's edge list."""

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

from tests.conftest import require
from tests.tiny_project import mlflow_store, run

pytestmark = pytest.mark.slow


def test_mlflow_layout_trained_models_on_top_the_study_with_its_trials(tiny_project: Path):
    """What the UI shows with no configuration: train runs at the top level linked to the study,
    the study run holding the chosen values as params, datasets, sources and curves first."""
    client = mlflow_store(tiny_project)
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
    for logged in (blade, parent, *trials):
        assert logged.data.tags["mlflow.source.name"] in ("blade train", "blade tune")
        assert logged.data.tags["mlflow.source.git.commit"] and logged.data.tags["mlflow.user"]
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
    client = mlflow_store(tiny_project)
    experiment = client.get_experiment_by_name("blade-compare")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    blade = next(run for run in runs if run.info.run_name == "mine-blade-seed0")
    assert blade.data.params == {"graph": "mine", "method": "blade", "seed": "0", "tuned": "True"}
    assert {"test/hit_rate_at_10", "test/mrr_at_10", "test/low/mrr_at_10", "best/val_mrr_at_10"} <= set(
        blade.data.metrics)
    assert blade.info.end_time - blade.info.start_time >= 1  # the training's own start and end
    assert sorted(run.info.run_name for run in runs if "trial" in run.info.run_name) == [
        "mine-trial-0", "mine-trial-1"]
    result = run(["blade", "report", "--reports", "nowhere"], tiny_project, check=False)
    assert result.returncode == 2 and "nowhere: no comparison results" in result.stderr

