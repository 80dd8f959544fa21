"""Stage ``tune``: an Optuna study over the power-law and sampling parameters, learning rate and width.

    blade tune                                     # what `dvc repro tune` runs
    blade tune --set tune.n_trials=20 --set tune.timeout_seconds=3600
    blade tune --set tune.storage=postgresql://user@host/optuna    # several workers, one study
                                                   # (password: PGPASSWORD, ~/.pgpass or
                                                   # BLADE_STORAGE_PASSWORD, never the URL)

Each trial trains the ``blade`` variant until early stopping (or for at most ``tune.max_epochs``
epochs, when set) with the trial's
values (``tune.space``) and the ``train`` parameters otherwise; the objective is the validation
MRR@10 after every epoch (the best epoch counts). After each epoch the trial reports it to the
pruner: successive halving over epochs (:func:`halving_pruner`), applied only when the trials run
whole would not fit in ``tune.timeout_seconds`` (:class:`PruneWhenBudgetBinds`).

Resuming: the study lives in ``tune.storage`` (SQLite under ``outputs/tune`` by default, kept
between runs by DVC's ``persist``). A re-run loads it and runs only the trials still missing
from ``tune.n_trials`` (complete and pruned trials count; a trial that was running when the
process died does not, once its heartbeats have been missing for ``GRACE_SECONDS``).

Several workers, one study: ``blade tune`` started on several machines with one
``tune.storage`` URL (PostgreSQL, MySQL) share the study and together finish exactly
``tune.n_trials`` trials. A worker stops when the study's finished, running and enqueued trials
fill the budget; when two start a trial at once, the storage's trial numbers decide, and the
later one is recorded as failed with ``surplus`` set. The defaults trial is enqueued once, by
the worker that creates the study, which also creates the MLflow parent run the others use.

The study's name carries a digest of everything that shapes a trial
(search space, fixed parameters, seed, data, the model and training code), so a changed
configuration or code starts a new study instead of mixing results.

MLflow: one parent run per study (re-used on resume) and one nested run per trial with its
values, per-epoch metrics, its state and the environment. Outputs: ``outputs/tune/best_params.json``
(the overrides the ``train`` stage applies), ``outputs/tune/checkpoints/best`` (the best complete
trial's checkpoints, which ``train`` continues rather than training that model again:
:func:`keep_if_best`, :func:`pipeline.train.adopt_trial_checkpoint`) and ``metrics/tune.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from pipeline import provenance, tracking
from pipeline.artifacts import SplitGraph, load_split_graph
from pipeline.config import ConfigError, section, with_values
from pipeline.degree_stats import with_power_law
from pipeline.settings import SearchRange, TuneSettings, as_settings, typed
from pipeline.storage import whole_outputs, write_json
from pipeline.study import (
    FINISHED,
    OptunaPruning,
    PruneWhenBudgetBinds,
    StopAtBudget,
    SurplusTrial,
    budget_used,
    halving_pruner,
    open_storage,
    open_study,
    storage_url,
)
from pipeline.train import (
    BEST_TRIAL_CHECKPOINT,
    TRIAL_CHECKPOINTS,
    TUNED_PARAMS_PATH,
    TUNED_VARIANT,
    TrainingDivergedError,
    fit_variant,
)

log = logging.getLogger(__name__)

OUTPUT_DIR = TUNED_PARAMS_PATH.parent
BEST_PARAMS_PATH = TUNED_PARAMS_PATH
METRICS_PATH = Path("metrics/tune.json")
PARENT_RUN_ATTR = "mlflow_parent_run_id"
BUDGET = ("n_trials", "timeout_seconds")


def suggest(trial: optuna.Trial, space: dict[str, SearchRange | dict[str, Any]]) -> dict[str, Any]:
    """The trial's values as ``{"section.key": value}`` overrides.

    ``space`` maps ``section.key`` to ``{low, high[, log]}`` (float), ``{low, high, int: true}``
    or ``{choices: [...]}`` (:class:`pipeline.settings.SearchRange`). ``neighbourhood.n_max`` is
    drawn at least ``neighbourhood.n_min``.
    """
    values: dict[str, Any] = {}
    for key, spec in space.items():
        spec = as_settings(spec, SearchRange)
        if spec.choices is not None:
            values[key] = trial.suggest_categorical(key, list(spec.choices))
            continue
        low, high = spec.low, spec.high
        if key == "neighbourhood.n_max" and "neighbourhood.n_min" in values:
            low = max(low, values["neighbourhood.n_min"])
        if spec.integer:
            values[key] = trial.suggest_int(key, int(low), int(high), log=spec.log)
        else:
            values[key] = trial.suggest_float(key, float(low), float(high), log=spec.log)
    return values


def trial_params(params: dict[str, Any], values: dict[str, Any], max_epochs: int | None,
                 val_queries: int | None = None) -> dict[str, Any]:
    """A copy of ``params`` with the trial's values, the per-trial epoch budget (None: the
    ``train`` budget, so a trial ends where early stopping ends training) and the validation
    edges a trial ranks each epoch (``tune.val_queries``; None: ``train.val_queries``)."""
    trial = with_values(params, values)
    if max_epochs:
        trial["train"]["max_epochs"] = int(max_epochs)
    if val_queries:
        trial["train"]["val_queries"] = int(val_queries)
    return trial


def study_name(params: dict[str, Any], tune: TuneSettings | dict[str, Any]) -> str:
    tune = as_settings(tune, TuneSettings)
    fixed = {name: params[name] for name in ("base", "ingest", "neighbourhood", "train")}
    space = {key: spec.model_dump(by_alias=True, exclude_none=True) for key, spec in tune.space.items()}
    digest = provenance.config_digest([fixed, space, tune.max_epochs,
                                     provenance.data_version(), provenance.code_digest()])
    return f"{tune.study_name}-{digest}"


def parent_run(client, experiment_id: str, name: str, storage: str, params: dict[str, Any],
               study: optuna.Study | None = None, created: bool = True) -> str:
    """The study's MLflow run: found on resume, created (with its params) otherwise.

    With ``study``, the run id is kept in the study's user attributes: the worker that created the
    study creates the run, the others wait for its id, so workers started together share one
    parent run. Without, the run is found by its tags. The trial budget (``n_trials``,
    ``timeout_seconds``) may grow between resumes, so it is kept as tags, which may change, not as
    params, which may not.
    """
    run_id = None
    if study is not None:
        waited = 0.0
        while (run_id := study.user_attrs.get(PARENT_RUN_ATTR)) is None and not created and waited < 60:
            time.sleep(0.5)  # the creating worker is about to set it (read from the storage)
            waited += 0.5
    if run_id is None:
        query = f"tags.`optuna.study_name` = '{name}' and tags.`optuna.storage` = '{storage}'"
        found = client.search_runs([experiment_id], filter_string=query, max_results=1)
        run_id = found[0].info.run_id if found else None
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = tracking.start_run(client, experiment_id, f"tune-{name}", "tune", {
            "optuna.study_name": name, "optuna.storage": storage,
            "dataset": str(params["base"]["dataset"])})
        fixed = {key: value for key, value in params["tune"].items() if key not in BUDGET}
        searched = set(params["tune"].get("space") or {})
        # The searched keys are left out here: the study logs the values it chose (chosen_params).
        tracking.log_params(client, run_id, {"tune": fixed, "base": params["base"]} | {
            section_name: {key: value for key, value in params[section_name].items()
                           if f"{section_name}.{key}" not in searched}
            for section_name in ("neighbourhood", "train")})
        client.log_dict(run_id, provenance.environment(), "environment.json")
    if study is not None:
        study.set_user_attr(PARENT_RUN_ATTR, run_id)
    client.set_tag(run_id, "tune.trial_budget", str(params["tune"]["n_trials"]))
    client.set_tag(run_id, "tune.timeout_seconds", str(params["tune"]["timeout_seconds"]))
    return run_id


def log_chosen(client, parent_id: str, result: StudyResult) -> None:
    """The chosen trial's values as the study run's params, with its counts and best score.

    MLflow params never change; a resumed study whose best trial changed keeps the first
    values as params and records the new ones as ``chosen.*`` tags (and says so in the log).
    """
    from mlflow.exceptions import MlflowException

    try:
        tracking.log_params(client, parent_id, result.overrides)
    except MlflowException:
        log.warning("tune: the study run already holds another trial's values as params; "
                    "trial %d's are its chosen.* tags", result.best_trial)
        for key, value in result.overrides.items():
            client.set_tag(parent_id, f"chosen.{tracking.param_name(key)}", str(value))
    client.set_tag(parent_id, "tune.best_trial", str(result.best_trial))
    if result.best_run_id:
        client.set_tag(parent_id, "tune.best_trial_run_id", result.best_run_id)
    tracking.log_metrics(client, parent_id, {
        "best/val_mrr@10": result.best_value, "best/trial": result.best_trial,
        **{f"trials/{state}": result.counts[state] for state in ("complete", "pruned", "fail")},
        "run/seconds": result.seconds})


def keep_if_best(study: optuna.Study, trial: optuna.Trial, value: float, checkpoint_dir: Path) -> None:
    """Keep a complete trial's checkpoints as :data:`BEST_TRIAL_CHECKPOINT` when no earlier
    complete trial scored higher (train continues it), else delete them: one trial's worth of
    checkpoints stays on disk, not one per trial."""
    others = [t.value for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.number != trial.number and t.value is not None]
    if others and max(others) >= value:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return
    (checkpoint_dir / "trial.txt").write_text(f"{study.study_name} {trial.number}")
    old = BEST_TRIAL_CHECKPOINT.with_name(f".best.{trial.number}.old")
    if BEST_TRIAL_CHECKPOINT.exists():
        os.replace(BEST_TRIAL_CHECKPOINT, old)
    os.replace(checkpoint_dir, BEST_TRIAL_CHECKPOINT)
    shutil.rmtree(old, ignore_errors=True)


def objective_for(graph: SplitGraph, params: dict[str, Any], tune: TuneSettings, client,
                  experiment_id: str, parent_id: str, run_prefix: str = "",
                  checkpoint_root: Path | None = None):
    space = tune.space
    seed = int(params["base"]["seed"])
    max_epochs = tune.max_epochs

    def objective(trial: optuna.Trial) -> float:
        if budget_used(trial.study, before=trial.number) >= tune.n_trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"trial {trial.number}: other workers' trials fill the budget of "
                               f"{tune.n_trials}; this worker stops")
        values = suggest(trial, space)
        run_id = tracking.start_run(client, experiment_id, f"{run_prefix}trial-{trial.number}", "tune", {
            "mlflow.parentRunId": parent_id, "optuna.trial": str(trial.number),
            "dataset": str(params["base"]["dataset"])})
        trial.set_user_attr("mlflow_run_id", run_id)
        tracking.log_dataset(client, run_id, str(params["base"]["dataset"]), str(params["ingest"]["edges"]),
                             tracking.split_sizes(graph), "training")
        tracking.log_params(client, run_id, {key: value for key, value in values.items()})
        log.info("tune: trial %d: %s", trial.number,
                 ", ".join(f"{key.split('.')[-1]}={value:.4g}" if isinstance(value, float)
                           else f"{key.split('.')[-1]}={value}" for key, value in values.items()))
        chosen = trial_params(params, values, max_epochs, tune.val_queries)
        state = "FAILED"
        pruning = OptunaPruning(trial)
        checkpoint_dir = checkpoint_root / f"trial-{trial.number}" if checkpoint_root is not None else None
        try:
            result = fit_variant(
                TUNED_VARIANT, graph, chosen["neighbourhood"], chosen["train"], seed, checkpoint_dir,
                callbacks=[tracking.EpochMetricsLogger(client, run_id), pruning],
                progress=False, walk_channel=False)
            state = "COMPLETE"
            tracking.log_metrics(client, run_id, {"run/seconds_per_epoch": result.seconds_per_epoch})
            if checkpoint_dir is not None:
                keep_if_best(trial.study, trial, result.best_score, checkpoint_dir)
            return result.best_score
        except optuna.TrialPruned as pruned:
            state = "PRUNED"
            log.info("tune: %s", pruned)
            raise
        except TrainingDivergedError as error:  # a bad corner of the space, not a broken study
            state = "DIVERGED"
            log.warning("tune: trial %d diverged: %s", trial.number, error)
            raise optuna.TrialPruned(str(error)) from error
        except ValueError as error:  # values the graph cannot take (alpha_hat infinite at this d_min)
            # one line naming the values and the reason; NaN makes Optuna record the trial as
            # failed without a traceback, and a failed trial takes no place in the budget
            log.warning("tune: trial %d failed with %s: %s", trial.number, values,
                        str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
            client.set_tag(run_id, "optuna.fail_reason", str(error)[:500])
            return float("nan")
        finally:
            if checkpoint_dir is not None and state != "COMPLETE":
                shutil.rmtree(checkpoint_dir, ignore_errors=True)  # pruned, failed: nothing to continue
            if pruning.best is not None:  # a pruned trial's best epoch too: trials sort by it
                tracking.log_metrics(client, run_id, {"best/val_mrr@10": pruning.best})
            client.set_tag(run_id, "optuna.state", state)
            client.set_terminated(run_id, "FAILED" if state == "FAILED" else "FINISHED")

    return objective


def default_trial(params: dict[str, Any], space: dict[str, SearchRange]) -> dict[str, Any]:
    """The values ``params`` already has for the keys of ``space`` that lie inside it: enqueued as
    trial 0 when ``include_defaults`` is set, so the study's best is never worse than the defaults."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        section_name, _, name = key.partition(".")
        value = params[section_name][name]
        if value is None:
            continue
        inside = (value in spec.choices) if spec.choices is not None else spec.low <= value <= spec.high
        if inside:
            values[key] = value
    return values


@dataclass
class StudyResult:
    name: str
    storage: str
    best_trial: int
    best_value: float
    overrides: dict[str, Any]
    counts: dict[str, int]
    seconds: float
    parent_run_id: str
    best_run_id: str | None
    default_value: float | None  # trial 0's value when it was the enqueued defaults

    def metrics(self) -> dict[str, Any]:
        return {"best_val_mrr@10": round(self.best_value, 5), "best_trial": self.best_trial,
                "trials_complete": self.counts["complete"], "trials_pruned": self.counts["pruned"],
                "trials_failed": self.counts["fail"], "seconds": round(self.seconds, 1)}


def run_study(graph: SplitGraph, params: dict[str, Any], tune: dict[str, Any], name: str,
              storage: str, experiment: str, run_prefix: str = "",
              checkpoint_root: Path | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> StudyResult:
    """Create or resume study ``name`` in ``storage``, run its missing trials, return the best.

    ``tune`` holds the budget (``n_trials``, ``timeout_seconds``, ``max_epochs``), the sampler and
    pruner settings and the ``space``; ``params`` everything a trial does not vary. ``pruner``
    replaces the halving pruner (``bench/bench_tuning.py`` runs the earlier median pruner).
    """
    tune = as_settings(tune, TuneSettings)
    seed = int(section(params, "base")["seed"])
    n_trials, timeout = tune.n_trials, tune.timeout_seconds
    if graph.val.shape[1] == 0:
        raise ConfigError("tune needs validation edges: set ingest.split.val > 0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, created = open_study(
        name, open_storage(storage),
        optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials),
        pruner or PruneWhenBudgetBinds(halving_pruner(tune), n_trials, timeout))
    defaults = default_trial(params, tune.space) if tune.include_defaults else {}
    if defaults and created:  # only the creating worker: workers started together enqueue it once
        study.enqueue_trial(defaults, user_attrs={"defaults": True})
    with warnings.catch_warnings():  # marked experimental, like heartbeats
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial takes no place in the budget
    done = sum(trial.state in FINISHED for trial in study.trials)
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, experiment)
    shown = provenance.redact_url(storage)  # the password never reaches MLflow, files or the log
    logged_tune = tune.model_dump(by_alias=True) | {"storage": shown}
    parent_id = parent_run(client, experiment_id, name, shown, dict(params, tune=logged_tune), study, created)
    log.info("tune: study %s in %s: %d of %d trials finished, %d running or waiting elsewhere "
             "(timeout %s s)", name, shown, done, n_trials, budget_used(study) - done, timeout)
    started = time.perf_counter()
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if budget_used(study) - waiting < n_trials:  # an enqueued trial (the defaults) is there to run
        # Every worker stops once the study's trials fill n_trials (a worker alone: after
        # n_trials - done); failed trials take no place, so n_trials - done also bounds a worker.
        study.optimize(objective_for(graph, params, tune, client, experiment_id, parent_id, run_prefix,
                                     checkpoint_root),
                       n_trials=n_trials - done, timeout=float(timeout) if timeout else None,
                       callbacks=[StopAtBudget(n_trials)],
                       catch=(SurplusTrial,),  # another worker's trials fill the budget: FAIL
                       gc_after_trial=True)
    seconds = time.perf_counter() - started

    trials = study.get_trials(deepcopy=False)
    states = [trial.state for trial in trials if not trial.user_attrs.get("surplus")]
    counts = {state.name.lower(): states.count(state) for state in optuna.trial.TrialState}
    counts["surplus"] = len(trials) - len(states)
    completed = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        client.set_terminated(parent_id, "FAILED")
        raise ConfigError(f"tune: no trial of study {name} completed ({counts}); "
                          "raise tune.timeout_seconds or tune.n_trials")
    best = study.best_trial
    default_value = next((trial.value for trial in completed if trial.user_attrs.get("defaults")), None)
    result = StudyResult(name, storage, best.number, float(best.value), dict(best.params), counts,
                         seconds, parent_id, best.user_attrs.get("mlflow_run_id"), default_value)
    log_chosen(client, parent_id, result)
    client.set_terminated(parent_id, "FINISHED")
    log.info("tune: best trial %d, val MRR@10 %.4f: %s (complete %d, pruned %d, %.0f s)", best.number,
             best.value, best.params, counts["complete"], counts["pruned"], seconds)
    return result


@whole_outputs
def main(params: dict[str, Any]) -> dict[str, Any]:
    settings = typed(params)
    params = settings.model_dump(by_alias=True)  # every default filled in
    name = study_name(params, settings.tune)
    storage = storage_url(settings.tune)
    graph = with_power_law(load_split_graph())  # each trial sizes from the degree statistics' fit
    result = run_study(graph, params, settings.tune, name, storage, settings.mlflow.experiment,
                       checkpoint_root=TRIAL_CHECKPOINTS)
    best_params = {
        "study": name, "storage": provenance.redact_url(storage), "trial": result.best_trial,
        "value": result.best_value,
        "mlflow_parent_run_id": result.parent_run_id, "mlflow_run_id": result.best_run_id,
        "overrides": result.overrides,
    }
    write_json(BEST_PARAMS_PATH, best_params)
    metrics = result.metrics()
    write_json(METRICS_PATH, metrics)
    tracking.client().log_dict(result.parent_run_id, best_params, "best_params.json")
    return metrics
