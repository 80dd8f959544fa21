"""Stage ``register``: evaluation results into MLflow, and the trained model into the registry.

    blade register                        # what `dvc repro register` runs

For every trained variant, its ``train-<variant>`` run (created by the train stage) receives the
evaluation metrics (overall, direction AUC, every degree bucket), the degree plots and the
environment. The ``registry.variant`` model (BLADE by default) is then logged as a pyfunc
around its exported ONNX scorer (:mod:`pipeline.recommender`, with signature and input
example) and registered as a new version of ``registry.model_name``, tagged with its dataset,
data version (the DVC hash of ``data/``), git commit and validation MRR@10.

The alias ``champion`` moves to the new version only if its validation MRR@10 beats the current
champion's on the same dataset; otherwise the version is registered without the alias and the
reason is logged (and kept as the version's ``champion_decision`` tag).
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import provenance, tracking
from pipeline import recommender as recommender_module
from pipeline.artifacts import load_split_graph
from pipeline.config import ConfigError, section
from pipeline.evaluate import METRICS_PATH as EVALUATE_METRICS
from pipeline.export import CATALOGUE, SCORER
from pipeline.export import OUTPUT_DIR as EXPORT_DIR
from pipeline.recommender import DEFAULT_K, SERVING_MODULES, BladeRecommender
from pipeline.storage import write_json
from pipeline.train import OUTPUT_DIR as TRAIN_DIR

log = logging.getLogger(__name__)

CHAMPION = "champion"
VALIDATION_METRIC = "val_mrr@10"
SCORE_TAG = "val_mrr_at_10"  # MLflow keys may not hold "@"
METRICS_PATH = Path("metrics/register.json")
PLOTS = (Path("plots/in_degree_distribution.png"), Path("plots/hit_rate_by_degree.png"))


@dataclass(frozen=True)
class ChampionDecision:
    promote: bool
    reason: str


def decide_champion(new_score: float, new_dataset: str, champion_score: float | None,
                    champion_dataset: str | None) -> ChampionDecision:
    """Whether a new version takes the ``champion`` alias: only by beating the champion's
    validation MRR@10 on the same dataset (a tie keeps the incumbent)."""
    if champion_score is None:
        return ChampionDecision(True, f"no champion yet: new version takes the alias "
                                      f"({VALIDATION_METRIC} {new_score:.4f})")
    if champion_dataset != new_dataset:
        return ChampionDecision(False, f"champion was validated on {champion_dataset!r}, this version on "
                                       f"{new_dataset!r}: scores are not comparable, alias kept")
    if new_score > champion_score:
        return ChampionDecision(True, f"{VALIDATION_METRIC} {new_score:.4f} beats the champion's "
                                      f"{champion_score:.4f}")
    return ChampionDecision(False, f"{VALIDATION_METRIC} {new_score:.4f} does not beat the champion's "
                                   f"{champion_score:.4f}: registered without the alias")


def current_champion(client, name: str):
    """The model version holding the ``champion`` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def champion_version(client, name: str) -> int | None:
    """The version ``models:/<name>@champion`` resolves to now (what the score stage scores)."""
    champion = current_champion(client, name)
    return None if champion is None else int(champion.version)


def register_version(client, name: str, model_uri: str, score: float,
                     tags: dict[str, str]) -> tuple[Any, ChampionDecision]:
    """Register ``model_uri`` as a new version of ``name`` and settle the champion alias."""
    import mlflow

    champion = current_champion(client, name)
    champion_score = None if champion is None else float(champion.tags.get(SCORE_TAG, "nan"))
    champion_dataset = None if champion is None else champion.tags.get("dataset")
    version = mlflow.register_model(model_uri, name, tags={**tags, SCORE_TAG: repr(score)})
    decision = decide_champion(score, tags["dataset"], champion_score, champion_dataset)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, "champion_decision", decision.reason)
    log.info("register: %s version %s: %s", name, version.version, decision.reason)
    return version, decision


def log_evaluation(client, run_id: str, method: dict[str, Any]) -> None:
    """Overall metrics as ``test/*``, buckets as ``test/<q1..q4|low>/*``, plus direction AUC
    (the names ``blade compare`` uses too)."""
    tracking.log_metrics(client, run_id, tracking.evaluation_metrics(method))


def main(params: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    from mlflow.models import infer_signature

    base, registry = section(params, "base"), section(params, "registry")
    name, variant = str(registry["model_name"]), str(registry["variant"])
    summary_path = TRAIN_DIR / variant / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} not found: train the {variant!r} variant first "
                                f"(train.variants) or set registry.variant")
    evaluation = json.loads(EVALUATE_METRICS.read_text())
    client = tracking.client()
    environment = provenance.environment()

    for summary_file in sorted(TRAIN_DIR.glob("*/summary.json")):
        summary = json.loads(summary_file.read_text())
        run_id, method = summary.get("mlflow_run_id"), evaluation["methods"].get(summary["variant"])
        if not run_id or method is None:
            continue
        log_evaluation(client, run_id, method)
        # MLflow keeps one input per dataset and run: the evaluated split is a dataset of its own
        tracking.log_dataset(client, run_id, f"{base['dataset']}-{evaluation['split']}",
                             str(params["ingest"]["edges"]),
                             {"evaluated_edges": evaluation["evaluated_edges"],
                              "split_edges": evaluation["split_edges"], "seed": evaluation["seed"]},
                             evaluation["split"])
        client.log_dict(run_id, environment, "environment.json")
        for plot in PLOTS:
            if plot.is_file():
                client.log_artifact(run_id, str(plot), "plots")
        client.set_tag(run_id, "evaluated_edges", str(evaluation["evaluated_edges"]))

    summary = json.loads(summary_path.read_text())
    run_id = summary.get("mlflow_run_id")
    if not run_id:
        raise ConfigError(f"{summary_path} has no mlflow_run_id: re-run `blade train`")
    scorer, catalogue = EXPORT_DIR / SCORER, EXPORT_DIR / CATALOGUE
    if not scorer.is_file() or not catalogue.is_file():
        raise FileNotFoundError(f"{scorer} or {catalogue} not found: run `blade export` first")
    graph = load_split_graph()
    example = pd.DataFrame({"query_id": [str(i) for i in graph.product_ids[:2]]})
    artifacts = {"scorer": str(scorer), "catalogue": str(catalogue)}
    loaded = BladeRecommender()  # only to compute the example's output for the signature
    loaded.load_context(type("Context", (), {"artifacts": artifacts})())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(example, loaded.predict(None, example),
                                    params={"k": DEFAULT_K, "exclude_linked": False, "output": "rows"})
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings(), serving_code() as code:
        # The signature's "rank" column is int64 and never missing; MLflow's hint about integer
        # columns with missing values does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        info = mlflow.pyfunc.log_model(
            name=f"{name}-onnx-scorer", python_model=BladeRecommender(), artifacts=artifacts,
            signature=signature, input_example=example, pip_requirements=_requirements(),
            code_paths=[code], model_config=dict(registry.get("serving") or {}))
    tags = {"dataset": str(base["dataset"]), "data_version": provenance.data_version(),
            "git_commit": provenance.git_commit(), "variant": variant, "mlflow_run_id": run_id}
    score = float(summary["best_val_mrr@10"])
    version, decision = register_version(client, name, info.model_uri, score, tags)
    client.set_tag(run_id, "champion_decision", decision.reason)
    blade = evaluation["methods"].get(variant, {})
    client.update_registered_model(name, description=model_description(name, str(base["dataset"])))
    client.update_model_version(name, version.version, description=version_description(
        variant, str(base["dataset"]), score, blade, decision, summary.get("tuned_trial")))
    metrics = {"model_name": name, "version": int(version.version), "champion": decision.promote,
               "champion_version": champion_version(client, name),
               "reason": decision.reason, VALIDATION_METRIC: score,
               "model_uri": f"models:/{name}/{version.version}"}
    write_json(METRICS_PATH, metrics)
    return metrics


def model_description(name: str, dataset: str) -> str:
    return (f"BLADE related-product recommender for `{dataset}`: query product ids in, top-k "
            f"recommended product ids and scores out (an ONNX Runtime scorer with the embeddings "
            f"inside). `{CHAMPION}` is the version with the best validation MRR@10 on this dataset; "
            f"batch scoring: `blade score --set score.model=models:/{name}@{CHAMPION}`.")


def version_description(variant: str, dataset: str, score: float, evaluation: dict[str, Any],
                        decision: ChampionDecision, tuned_trial: int | None) -> str:
    overall = evaluation.get("overall", {})
    low = next((values for key, values in evaluation.get("buckets", {}).items() if key.startswith("low")), {})
    test = (f"test HR@10 {overall['hit_rate@10']:.4f}, MRR@10 {overall['mrr@10']:.4f}"
            if "hit_rate@10" in overall else "no test metrics")
    if "mrr@10" in low:
        test += f"; low-degree queries HR@10 {low['hit_rate@10']:.4f}, MRR@10 {low['mrr@10']:.4f}"
    if evaluation.get("direction_auc") is not None:
        test += f"; direction AUC {evaluation['direction_auc']:.4f}"
    tuning = f"tuned values of trial {tuned_trial}" if tuned_trial is not None else "params.yaml values"
    alias = f"{CHAMPION}: " if decision.promote else "not champion: "
    return (f"{variant} on {dataset} ({tuning}, data version {provenance.data_version()[:12]}, "
            f"commit {provenance.git_commit()[:12]}). Validation MRR@10 {score:.4f}; {test}. "
            f"{alias}{decision.reason}.")


@contextmanager
def serving_code() -> Iterator[str]:
    """A temporary ``pipeline`` package with only the modules the registered model runs
    (:data:`pipeline.recommender.SERVING_MODULES`), for ``code_paths``: the pickled
    ``pipeline.recommender.BladeRecommender`` then loads without this repository."""
    package = Path(recommender_module.__file__).parent
    with tempfile.TemporaryDirectory(prefix="blade-serving-") as folder:
        target = Path(folder) / "pipeline"
        target.mkdir()
        for module in SERVING_MODULES:
            text = (package / module).read_text() if module != "__init__.py" else ""
            (target / module).write_text(text)
        yield str(target)


def _requirements() -> list[str]:
    import importlib.metadata

    return [f"{package}=={importlib.metadata.version(package)}"
            for package in ("mlflow", "onnxruntime-gpu", "numpy", "pandas")
            if _installed(package)]


def _installed(package: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
