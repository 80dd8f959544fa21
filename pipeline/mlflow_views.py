"""What the MLflow UI shows a new user: each experiment opens on its runs table (not the GenAI
overview), with shared views of that table (``trials``, ``models``, ``methods``); ``make ui``
prints their links (:func:`ui_links`)."""

from __future__ import annotations

# MLflow 3's UI opens an experiment of unknown kind on its GenAI overview (traces); this kind
# opens it on the runs table. The note is the experiment's description there.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "BLADE on directed product graphs. Top level: `train-<variant>` runs "
                           "(the trained models; tags `tune.*` name the study and trial they used) "
                           "and `tune-<study>` runs (expand for the trials; sort by "
                           "`best/val_mrr_at_10`). Per-epoch curves have plain names, one-value "
                           "results the prefixes best/, run/, test/.",
}


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # the runs table's column keys


TRIAL_VALUES = ("nb.alpha_x", "nb.d_min", "nb.n_min", "nb.n_max", "nb.h_max", "nb.beta", "train.lr",
                "train.dim")


TEST_METRICS = ("test/hit_rate_at_10", "test/mrr_at_10", "test/low/hit_rate_at_10", "test/low/mrr_at_10",
                "test/direction_auc")


# Views of the runs page kept in the experiment (MLflow's shared view states): a link with
# ?viewStateShareKey=<name> opens the table with these columns and this order; sorted by a
# metric, the trials leave their study's fold and sort with everything else.
RUN_VIEWS = {
    "blade": {
        "trials": {"orderByKey": _column("metrics", "best/val_mrr_at_10"), "orderByAsc": False,
                   "selectedColumns": [_column("metrics", "best/val_mrr_at_10")]
                   + [_column("params", key) for key in TRIAL_VALUES]},
        "models": {"orderByKey": _column("metrics", "test/mrr_at_10"), "orderByAsc": False,
                   "searchFilter": "tags.stage = 'train'",
                   "selectedColumns": [_column("metrics", key) for key in TEST_METRICS]
                   + [_column("tags", "tune.trial")]},
    },
    "blade-compare": {
        "methods": {"orderByKey": _column("metrics", "test/mrr_at_10"), "orderByAsc": False,
                    "searchFilter": "tags.stage = 'compare'",
                    "selectedColumns": [_column("params", key) for key in ("graph", "method", "seed")]
                    + [_column("metrics", key) for key in TEST_METRICS]},
    },
}


SHARED_VIEW_TAG = "mlflow.sharedViewState."


def runs_page_url(port: int, experiment: str, view: str | None = None,
                  host: str = "127.0.0.1", mlflow_client=None) -> str | None:
    """The UI's runs page of ``experiment`` (as model training, not its GenAI overview), in one of
    :data:`RUN_VIEWS` when ``view`` is given; None when the experiment does not exist yet."""
    if mlflow_client is None:
        from pipeline.tracking import client

        mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return None
    share = f"&viewStateShareKey={view}" if view else ""
    return (f"http://{host}:{port}/#/experiments/{found.experiment_id}/runs"
            f"?workflowType=machine_learning{share}")


def ui_links(port: int) -> str:
    """What ``make ui`` prints: where each experiment's runs and views are."""
    lines = []
    from pipeline.tracking import client

    mlflow_client = client()
    for experiment, views in RUN_VIEWS.items():
        if (url := runs_page_url(port, experiment, mlflow_client=mlflow_client)) is None:
            continue
        lines.append(f"{experiment}: {url}")
        lines += [f"  {name}: {url}&viewStateShareKey={name}" for name in views]
    return "\n".join(lines) or "No experiment yet: run `make run` first."
