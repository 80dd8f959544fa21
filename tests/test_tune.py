"""Tuning: real Optuna studies in SQLite on a tiny graph, pruning, resume, MLflow nesting."""

from __future__ import annotations

import datetime
import json

import optuna
import pytest
import torch
import yaml

from pipeline import degree_stats as degree_stats_stage
from pipeline import ingest as ingest_stage
from pipeline import provenance, tracking
from pipeline import study as study_setup
from pipeline import tune as tune_stage
from pipeline.train import fit_variant
from tests.conftest import PROJECT_ROOT
from tests.test_train import CONFIG, NEIGHBOURHOOD
from tests.test_train import graph as graph  # noqa: F401  (fixture)
from tests.tiny_project import TINY_EDGES


def tiny_tune_params(folder) -> dict:
    """params.yaml for a tiny graph written to ``folder/data/tiny.txt`` and a 2-trial study."""
    (folder / "data").mkdir()
    (folder / "data" / "tiny.txt").write_text("".join(f"{u}\t{v}\n" for u, v in TINY_EDGES))
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["base"]["dataset"] = "tiny"
    params["ingest"].update({"edges": "data/tiny.txt", "split": {"train": 0.6, "val": 0.2, "test": 0.2},
                             "verify_checksums": False})
    params["neighbourhood"].update({"n_min": 1, "n_max": 3})
    params["train"].update({"dim": 8, "batch_size": 8, "accelerator": "cpu", "devices": 1})
    params["tune"].update({"n_trials": 2, "max_epochs": 2, "timeout_seconds": None, "study_name": "tiny",
                           "space": {"neighbourhood.n_max": {"low": 2, "high": 6, "int": True},
                                     "train.learning_rate": {"low": 0.001, "high": 0.05, "log": True}}})
    return params


@pytest.fixture
def project(in_project_tmp, monkeypatch) -> dict:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_tune_params(in_project_tmp)
    ingest_stage.main(params)
    degree_stats_stage.main(params)  # tune reads the power-law fit from it
    return params


def test_pruning_stops_a_trial_after_the_epoch_it_reports(graph):  # noqa: F811
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        fit_variant("blade", graph, NEIGHBOURHOOD, dict(CONFIG, max_epochs=5), 0, None,
                    callbacks=[study_setup.OptunaPruning(trial)], progress=False)
    # MRR@10 can never reach 2.0: the first report prunes, so exactly one epoch was reported,
    # at step 1 (the step is the number of epochs trained: the halving rungs count epochs)
    assert list(study.trials[0].intermediate_values) == [1]


def test_successive_halving_keeps_the_best_third_at_each_rung():
    """Rungs after 1 and 3 epochs (halving_min_epochs 1, rate 3): at a rung a trial goes on only
    when it is the best there while fewer than 3 trials reached it, then among the best third."""
    settings = tune_stage.TuneSettings(halving_min_epochs=1, halving_rate=3)
    study = optuna.create_study(direction="maximize", pruner=study_setup.halving_pruner(settings))

    def goes_on(values_by_epoch: dict[int, float]) -> bool:
        trial = study.ask()
        for epochs, value in values_by_epoch.items():
            trial.report(value, epochs)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return False
        study.tell(trial, max(values_by_epoch.values()))
        return True

    assert goes_on({1: 0.30, 2: 0.35, 3: 0.40, 4: 0.41})  # alone at every rung
    assert not goes_on({1: 0.20})  # 2 trials at rung 1: only the best goes on
    assert goes_on({1: 0.31, 2: 0.32, 3: 0.42})  # best at rung 1 (0.31 > 0.30) and rung 3 (0.42 > 0.40)
    assert not goes_on({1: 0.25})  # 4 at rung 1: the best 4 // 3 = 1, which is 0.31
    assert not goes_on({1: 0.32, 2: 0.33, 3: 0.39})  # best at rung 1, then 3rd of 3 at rung 3
    assert [len(trial.intermediate_values) for trial in study.trials] == [4, 1, 3, 1, 3]


def test_halving_prunes_only_when_whole_trials_would_not_fit_the_budget():
    """Two complete trials took 0 s and 10 s: 16 whole trials need 16 x 5 s = 80 s. Against a
    100 s budget no trial is stopped; against 60 s halving stops one that is worst at rung 1."""
    settings = tune_stage.TuneSettings(halving_min_epochs=1, halving_rate=3)

    def worst_trial_pruned(timeout_seconds: float) -> bool:
        pruner = study_setup.PruneWhenBudgetBinds(study_setup.halving_pruner(settings), 16, timeout_seconds)
        study = optuna.create_study(direction="maximize", pruner=pruner)
        first = study.ask()
        first.report(0.30, 1)
        assert not first.should_prune()  # the first at a rung goes on, whatever the budget
        study.tell(first, 0.30)
        start = datetime.datetime(2026, 1, 1)
        study.add_trial(optuna.trial.FrozenTrial(
            number=1, trial_id=1, state=optuna.trial.TrialState.COMPLETE, value=0.35,
            datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=10),
            params={}, distributions={}, user_attrs={}, system_attrs={}, intermediate_values={1: 0.35}))
        worst = study.ask()
        worst.report(0.10, 1)
        return worst.should_prune()

    assert not worst_trial_pruned(100.0)
    assert worst_trial_pruned(60.0)


def test_suggest_keeps_n_max_at_least_n_min():
    space = {"neighbourhood.n_min": {"low": 4, "high": 4, "int": True},
             "neighbourhood.n_max": {"low": 1, "high": 5, "int": True}}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = tune_stage.suggest(study.ask(), space)
        assert 4 <= values["neighbourhood.n_max"] <= 5


def test_interrupted_study_resumes_without_repeating_finished_trials(project, monkeypatch):
    tune_stage.main(project)
    first = optuna.load_study(study_name=tune_stage.study_name(project, project["tune"]),
                              storage=study_setup.storage_url(project["tune"]))
    finished = {trial.number: trial.params for trial in first.trials}
    assert len(finished) == 2

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args)
        raise KeyboardInterrupt

    project["tune"]["n_trials"] = 4
    monkeypatch.setattr(tune_stage, "fit_variant", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune_stage.main(project)
    assert len(calls) == 1

    def counted(*args, **kwargs):
        calls.append(args)
        return fit_variant(*args, **kwargs)

    monkeypatch.setattr(tune_stage, "fit_variant", counted)
    metrics = tune_stage.main(project)
    assert len(calls) == 1 + 2  # the interrupted trial, then only the two missing ones
    study = optuna.load_study(study_name=tune_stage.study_name(project, project["tune"]),
                              storage=study_setup.storage_url(project["tune"]))
    states = [trial.state for trial in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert metrics["trials_complete"] + metrics["trials_pruned"] == 4
    for number, params in finished.items():  # finished trials untouched, not re-run
        assert study.trials[number].params == params
        assert study.trials[number].state in study_setup.FINISHED

    client = tracking.client()
    experiment = client.get_experiment_by_name(project["mlflow"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [run for run in runs if run.info.run_name.startswith("tune-")]
    assert len(parents) == 1  # the resumed study logs into the same parent run
    trials = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    states = sorted(run.data.tags["optuna.state"] for run in trials)
    assert len(trials) == 5 and states.count("FAILED") == 1  # the interrupted trial says so
    assert set(states) - {"FAILED"} <= {"COMPLETE", "PRUNED"}
    best = json.loads(tune_stage.BEST_PARAMS_PATH.read_text())
    assert best["value"] == pytest.approx(study.best_value)


def test_changed_search_space_starts_a_new_study(project):
    name = tune_stage.study_name(project, project["tune"])
    project["tune"]["space"]["train.learning_rate"]["high"] = 0.1
    assert tune_stage.study_name(project, project["tune"]) != name


def test_code_digest_follows_the_model_and_training_code(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "models" / "encoder.py").write_text("SCALE = 10\n")
    (tmp_path / "pipeline" / "train.py").write_text("EPOCHS = 3\n")
    (tmp_path / "pipeline" / "report.py").write_text("TITLE = 'a'\n")
    before = provenance.code_digest(tmp_path)
    (tmp_path / "pipeline" / "report.py").write_text("TITLE = 'b'\n")  # not result code
    assert provenance.code_digest(tmp_path) == before
    (tmp_path / "models" / "encoder.py").write_text("SCALE = 5\n")
    assert provenance.code_digest(tmp_path) != before


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://optuna:s3cret@db.example:5432/studies", "postgresql://optuna:***@db.example:5432/studies"),
    ("mysql+pymysql://u:p@ss:word@host/db", "mysql+pymysql://u:***@host/db"),  # '@' in the password
    ("postgresql://blade:pw/SECRET@host/db", "postgresql://blade:***@host/db"),  # '/' in the password
    ("postgresql://blade@host/db?sslmode=require&password=SECRET",
     "postgresql://blade@host/db?sslmode=require&password=***"),
    ("postgresql://optuna@host/db", "postgresql://optuna@host/db"),  # no password: nothing to hide
    ("sqlite:////tmp/a:b@c/optuna.db", "sqlite:////tmp/a:b@c/optuna.db"),  # a path, not credentials
    ("sqlite:////work/outputs/tune/optuna.db", "sqlite:////work/outputs/tune/optuna.db"),
])
def test_storage_passwords_are_redacted(url, shown):
    assert provenance.redact_url(url) == shown


def test_the_storage_password_comes_from_the_environment_only_at_connection(monkeypatch):
    url = "postgresql+psycopg2://blade@db.example:5432/optuna"
    monkeypatch.delenv("BLADE_STORAGE_PASSWORD", raising=False)
    assert study_setup.with_storage_password(url) == url
    monkeypatch.setenv("BLADE_STORAGE_PASSWORD", "pw/SECRET@1")
    assert study_setup.with_storage_password(url) == "postgresql+psycopg2://blade:pw%2FSECRET%401@db.example:5432/optuna"


def test_a_storage_without_its_driver_is_one_clear_line():
    # pymysql is not a dependency: the URL names a driver this environment does not have
    with pytest.raises(tune_stage.ConfigError, match=r"tune\.storage mysql\+pymysql://u@127\.0\.0\.1:1/db: "
                                                      r"its database driver is not installed"):
        study_setup.open_storage("mysql+pymysql://u@127.0.0.1:1/db", attempts=1)


def test_a_one_trial_budget_runs_the_default_trial(project):
    project["tune"].update({"n_trials": 1, "include_defaults": True})
    metrics = tune_stage.main(project)  # the enqueued defaults used to fill the budget: exit 2
    assert metrics["trials_complete"] + metrics["trials_pruned"] == 1 and metrics["best_trial"] == 0


def test_a_graph_with_alpha_hat_near_one_tunes_with_no_failed_trial(in_project_tmp, monkeypatch, caplog):
    from models.graph import in_out_degrees
    from models.power_law import fit_power_law_alpha
    from pipeline.artifacts import load_split_graph

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_tune_params(in_project_tmp)
    # 40 products, each linked to the next 20: training in-degrees near 15, ln 15 = 2.7, so
    # alpha_hat = 1 + n / sum ln d is about 1.4, and multiplier 0.5 x alpha_hat was 0.7 < 1
    edges = [(u, (u + k) % 40) for u in range(40) for k in range(1, 21)]
    (in_project_tmp / "data" / "tiny.txt").write_text("".join(f"{u}\t{v}\n" for u, v in edges))
    space = {"neighbourhood.alpha_multiplier": {"low": 0.3, "high": 0.6, "log": True}}
    params["tune"].update({"n_trials": 4, "max_epochs": 1, "include_defaults": False, "startup_trials": 4,
                           "space": space})
    ingest_stage.main(params)
    degree_stats_stage.main(params)
    graph = load_split_graph()
    alpha_hat = fit_power_law_alpha(in_out_degrees(graph.train, graph.num_nodes)[0], 1)
    assert 1.2 < alpha_hat < 1.6 and 0.6 * alpha_hat < 1.0  # every trial was invalid before
    with caplog.at_level("WARNING"):
        metrics = tune_stage.main(params)
    assert metrics["trials_failed"] == 0 and metrics["trials_complete"] + metrics["trials_pruned"] == 4
    assert "Traceback" not in caplog.text


def test_a_failed_trial_is_one_line_with_its_values_and_reason(project, monkeypatch, caplog):
    def infeasible(*args, **kwargs):
        raise ValueError("every tail degree equals d_min = 3: alpha_hat is infinite")

    monkeypatch.setattr(tune_stage, "fit_variant", infeasible)
    project["tune"]["n_trials"] = 1
    with caplog.at_level("WARNING"), pytest.raises(tune_stage.ConfigError, match="no trial .* completed"):
        tune_stage.main(project)
    failed = [record for record in caplog.records if "tune: trial 0 failed" in record.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None
    assert "alpha_hat is infinite" in failed[0].getMessage() and "n_max" in failed[0].getMessage()


def test_tune_and_train_size_neighbourhoods_from_the_degree_statistics(project):
    from models.graph import in_out_degrees
    from models.power_law import neighbourhood_sizes
    from models.variants import get_variant
    from pipeline import degree_stats, train
    from pipeline.artifacts import load_split_graph
    from pipeline.config import StageError

    fits = json.loads(degree_stats.POWER_LAW_PATH.read_text())
    assert set(fits["alpha_hat_by_d_min"]) == {str(d) for d in range(1, 11)}
    # a doctored fit reaches the sampler: alpha 4.0 at d_min 1, as if degree_stats had said so
    fits["alpha_hat_by_d_min"]["1"] = 4.0
    degree_stats.POWER_LAW_PATH.write_text(json.dumps(fits))
    graph = degree_stats.with_power_law(load_split_graph())
    neighbourhood = dict(project["neighbourhood"], d_min=1, alpha=None, alpha_multiplier=1.0)
    sampler = train.build_sampler(get_variant("blade"), graph, neighbourhood, 2)
    in_degree, _ = in_out_degrees(graph.train, graph.num_nodes)
    expected = neighbourhood_sizes(in_degree, 4.0, 1, neighbourhood["n_min"], neighbourhood["n_max"])
    assert torch.equal(sampler._out.sizes, expected)  # the out-side sizes by in-degree
    # without the degree statistics, neither stage starts
    degree_stats.POWER_LAW_PATH.unlink()
    for stage in (train, tune_stage):
        with pytest.raises(StageError, match=r"power_law\.json not found: run `blade degree-stats`"):
            stage.main(project)
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for stage in ("tune", "train"):  # what `dvc dag` draws: degree_stats -> tune, train
        assert "outputs/degree_stats/power_law.json" in stages[stage]["deps"]


def test_train_continues_the_chosen_trial_instead_of_training_it_again(project, caplog):
    from pipeline import train

    # trials train as long as train does (tune.max_epochs null), so the chosen trial is the
    # very model train would fit: same fingerprint
    project["tune"]["max_epochs"] = None
    project["train"].update({"max_epochs": 2, "variants": ["blade", "sage"]})
    tune_stage.main(project)  # trials rank tune.val_queries edges, train its own: still the same model
    project["train"]["variants"] = ["blade"]  # which variants train beside it is no part of it either
    best = json.loads(tune_stage.BEST_PARAMS_PATH.read_text())
    kept = train.BEST_TRIAL_CHECKPOINT
    assert (kept / "trial.txt").read_text().split() == [best["study"], str(best["trial"])]
    assert sorted(path.name for path in train.TRIAL_CHECKPOINTS.iterdir()) == ["best"]  # one trial's worth
    with caplog.at_level("INFO"):
        metrics = train.main(project)
    assert f"continues tune trial {best['trial']}'s checkpoint" in caplog.text
    assert "blade untrained" not in caplog.text  # nothing trained from the start
    assert "that run had finished; its best epoch is kept and nothing is trained" in caplog.text
    # the trial's best epoch scored again on train's validation sample (here the same edges:
    # the tiny graph has fewer validation edges than either sample size)
    assert metrics["blade"]["best_val_mrr@10"] == pytest.approx(best["value"], abs=1e-5)
    assert metrics["blade"]["epochs"] == 2
