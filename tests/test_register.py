"""The champion alias: a new version takes it only by beating the champion on the same dataset."""

from __future__ import annotations

import mlflow
import pytest

from pipeline import tracking
from pipeline.register import CHAMPION, champion_version, decide_champion, register_version


def test_decisions_by_hand():
    assert decide_champion(0.2, "amazon", None, None).promote
    assert decide_champion(0.31, "amazon", 0.30, "amazon").promote
    assert not decide_champion(0.30, "amazon", 0.30, "amazon").promote  # a tie keeps the incumbent
    assert not decide_champion(0.29, "amazon", 0.30, "amazon").promote
    decision = decide_champion(0.99, "cora_ml", 0.30, "amazon")
    assert not decision.promote and "not comparable" in decision.reason


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture
def store(in_project_tmp, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = tracking.client()
    experiment = tracking.experiment_id(client, "registry-test")

    def logged_model() -> str:
        with mlflow.start_run(experiment_id=experiment):
            return mlflow.pyfunc.log_model(name="model", python_model=_Constant()).model_uri

    return client, logged_model


def test_a_worse_model_never_takes_the_champion_alias(store):
    client, logged_model = store
    tags = {"dataset": "tiny", "variant": "blade"}
    steps = [(0.30, "tiny", "1"), (0.25, "tiny", "1"), (0.30, "tiny", "1"), (0.90, "other", "1"),
             (0.35, "tiny", "5")]
    for number, (score, dataset, champion_after) in enumerate(steps, start=1):
        version, decision = register_version(client, "m", logged_model(), score, {**tags, "dataset": dataset})
        assert int(version.version) == number
        assert str(client.get_model_version_by_alias("m", CHAMPION).version) == champion_after
        assert champion_version(client, "m") == int(champion_after)  # what metrics/register.json says
        assert client.get_model_version("m", version.version).tags["champion_decision"] == decision.reason
    assert client.get_model_version("m", "2").tags["val_mrr_at_10"] == "0.25"


def test_the_store_is_absolute_and_mlflow_tracking_uri_overrides_it(in_project_tmp, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{in_project_tmp / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_root() == (in_project_tmp / "mlruns" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"
    assert tracking.artifact_root() is None  # the server decides where artifacts go


def test_the_users_tracking_uri_holds_for_every_later_client(in_project_tmp, monkeypatch):
    users = f"sqlite:///{in_project_tmp / 'shared' / 'mlflow.db'}"
    (in_project_tmp / "shared").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", users)
    for _ in range(3):  # the second call used to fall back to mlruns/mlflow.db
        client = tracking.client()
        assert client.tracking_uri == users and tracking.tracking_uri() == users
        assert tracking.artifact_root() is None
    assert not (in_project_tmp / "mlruns" / "mlflow.db").exists()


def test_only_rank_zero_writes_to_the_store(in_project_tmp, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning sets in the second DDP process
    silent = tracking.client()
    experiment = tracking.experiment_id(silent, "blade")
    run = silent.create_run(experiment, run_name="train-blade")
    tracking.log_metrics(silent, run.info.run_id, {"val_mrr@10": 0.3})
    silent.set_terminated(run.info.run_id, "FINISHED")
    assert not (in_project_tmp / "mlruns").exists()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert isinstance(tracking.client(), mlflow.MlflowClient)
