"""params.yaml's schema: every bad value is one line naming the key, before any stage runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline import cli
from pipeline.config import ConfigError, apply_overrides, load_params
from pipeline.settings import check_params, typed

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = load_params(PROJECT_ROOT / "params.yaml")


def checked_with(override: str) -> dict:
    return check_params(apply_overrides(copy.deepcopy(SHIPPED), [override]), f"--set {override}")


def test_the_shipped_file_is_valid_and_keeps_its_values():
    params = check_params(copy.deepcopy(SHIPPED))
    for name, values in SHIPPED.items():
        for key, value in values.items():
            if key not in ("space", "datasets", "seeds_per_graph"):
                assert params[name][key] == value, f"{name}.{key}"
    assert params["tune"]["space"]["train.dim"]["choices"] == [32, 64]
    assert "low" not in params["tune"]["space"]["train.dim"]  # a choice has no range
    # a dataset keeps only what it sets: its edges and its evaluate override
    assert params["compare"]["datasets"]["amazon0302"] == {
        "edges": "data/amazon0302/amazon0302.txt.gz", "evaluate": {"max_queries": 10000}}
    assert check_params(copy.deepcopy(params)) == params  # checking twice changes nothing
    assert typed(params).train.dim == 64


def test_defaults_fill_what_the_file_leaves_out():
    minimal = {"ingest": {"edges": "my.csv"}}
    params = check_params(minimal)
    assert params["train"]["dim"] == 64 and params["neighbourhood"]["n_max"] == 10
    assert params["ingest"]["split"] == {"train": 0.75, "val": 0.05, "test": 0.2}


@pytest.mark.parametrize(("override", "message"), [
    ("train.dimm=3", "--set train.dimm=3: train.dimm: unknown key (did you mean train.dim?)"),
    ("train.activaton=relu", "train.activaton: unknown key (did you mean train.activation?)"),
    ("base.seedd=1", "base.seedd: unknown key (did you mean base.seed?)"),
    ("neighbourhood.n_min=12", "neighbourhood: n_min (12) must be <= n_max (10)"),
    ("neighbourhood.beta=-1", "neighbourhood.beta: must be greater than or equal to 0 (got -1)"),
    ("ingest.split.train=0.9", "ingest.split: train + val + test must be 1, got 0.9 + 0.05 + 0.2 = 1.15"),
    ("train.dropout=1.5", "train.dropout: must be less than 1 (got 1.5)"),
    ("evaluate.split=trian", "evaluate.split: must be 'test' or 'val' (got 'trian')"),
    ("registry.variant=blad", "registry.variant: must be 'blade', 'no_adaptive', 'no_bias', 'daemon' or "
                              "'sage' (got 'blad')"),
    ("score.k=0", "score.k: must be greater than or equal to 1 (got 0)"),
    ("score.chunk_size=-1", "score.chunk_size: must be greater than or equal to 1 (got -1)"),
    ("score.index=hnsw", "score.index: must be 'exact' or 'ivf' (got 'hnsw')"),
    ("train.activation=tanh", "train.activation: must be 'relu' or 'none' (got 'tanh')"),
    ("compare.datasets.cora_ml.train={dimm: 3}",
     "compare.datasets.cora_ml: train.dimm: unknown key (did you mean train.dim?)"),
    ("compare.datasets.mine={edges: mine.csv}",
     "compare: datasets.mine: give its seeds in compare.seeds_per_graph (reports/dvc.yaml runs one stage "
     "per graph and seed)"),
    ("compare.seeds_per_graph.nope=[1]", "compare: seeds_per_graph.nope: not a graph of compare.datasets "
                                         "(known: amazon0302, cora_ml, citeseer, scalefree)"),
    ("compare.seeds_per_graph.cora_ml=[]",
     "compare.seeds_per_graph.cora_ml: List should have at least 1 item after validation, not 0 (got [])"),
    ("ablation.rows.x={train.dimm: 3}",
     "ablation: rows.x: 'train.dimm' is not a train.* or neighbourhood.* key (did you mean train.dim?)"),
    ("tune.space={train.dimm: {low: 1, high: 2}}",
     "tune: space: 'train.dimm' is not a train.* or neighbourhood.* key (did you mean train.dim?)"),
    ("tune.space={train.dim: {low: 64, high: 32}}", "tune.space.train.dim: low (64) must be <= high (32)"),
])
def test_a_bad_value_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        checked_with(override)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"--set {override}: ") and text.endswith(message)


def test_a_quoted_boolean_means_what_it_says():
    # YAML `"false"` is a string: it must switch the check off, not on (bool("false") is True)
    assert checked_with('ingest.verify_checksums="false"')["ingest"]["verify_checksums"] is False
    with pytest.raises(ConfigError, match="ingest.verify_checksums: must be a valid boolean"):
        checked_with("ingest.verify_checksums=maybe")


def test_the_cli_refuses_a_misspelt_key_before_any_work(tmp_path, monkeypatch, capsys):
    params = copy.deepcopy(SHIPPED)
    params["train"]["dimm"] = params["train"].pop("dim")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["ingest"]) == 2
    assert capsys.readouterr().err.strip() == (
        "blade ingest: error: params.yaml: train.dimm: unknown key (did you mean train.dim?)")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
    # and a misspelt --set key does not create a new key
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(SHIPPED))
    assert cli.main(["ingest", "--set", "ingest.edgs=x.csv"]) == 2
    assert "--set ingest.edgs=x.csv: ingest.edgs: unknown key (did you mean ingest.edges?)" in \
        capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize(("option", "message"), [
    (["--k", "0"], "--k 0: score.k: must be greater than or equal to 1 (got 0)"),  # was silently 20
    (["--chunk-size", "-1"],
     "--chunk-size -1: score.chunk_size: must be greater than or equal to 1 (got -1)"),
    (["--nprobe", "0"], "--nprobe 0: score.nprobe: must be greater than or equal to 1 (got 0)"),
])
def test_score_options_are_checked_like_their_keys(tmp_path, monkeypatch, capsys, option, message):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(SHIPPED))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["score", *option]) == 2  # before any model is loaded or file written
    assert capsys.readouterr().err.strip() == f"blade score: error: {message}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"]


def test_the_schema_defaults_are_the_shipped_values():
    # one source of defaults: a key left out of params.yaml means what params.yaml ships with
    defaults = check_params({"ingest": {"edges": SHIPPED["ingest"]["edges"]}})
    for name, values in SHIPPED.items():
        for key, value in values.items():
            if key in ("space", "datasets", "seeds_per_graph") or name == "ablation":
                continue
            assert defaults[name][key] == value, f"{name}.{key}: {defaults[name][key]!r} vs {value!r}"


def test_train_is_blade_config_plus_the_pipeline_keys():
    # one source of the model's keys, defaults and limits: models.config.BladeConfig
    from models.config import BladeConfig
    from pipeline.settings import TrainSettings

    assert set(TrainSettings.model_fields) - set(BladeConfig.keys()) == {
        "variants", "use_tuned", "accelerator", "devices", "strategy", "num_nodes"}
    shipped, model = TrainSettings(), BladeConfig()
    assert all(getattr(shipped, key) == getattr(model, key) for key in BladeConfig.keys())
    assert BladeConfig.of(shipped) == model
    with pytest.raises(ValueError, match="activation must be one of 'relu', 'none', got 'tanh'"):
        BladeConfig(activation="tanh")
    with pytest.raises(ValueError, match="dropout must be < 1.0, got 1.5"):
        BladeConfig(dropout=1.5)
