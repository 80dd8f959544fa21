"""The schema of ``params.yaml``: one pydantic model per section, the only place defaults live.

:func:`check_params` validates a whole parameters mapping (the file, then ``--set`` overrides,
then ``compare.datasets.*`` and ``ablation.rows`` overrides) before any stage does work. A bad
value is one line that names the key and what was expected::

    params.yaml: train.dimm: unknown key (did you mean train.dim?)
    params.yaml: neighbourhood: n_min (12) must be <= n_max (10)
    --set train.dropout=1.5: train.dropout: must be < 1 (got 1.5)

Stages still receive the validated mapping as a plain dict (every key present, defaults
filled in); ``Params`` is the typed view of the same values.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from models.config import BladeConfig
from pipeline.config import ConfigError
from pipeline.passwords import STORAGE_PASSWORD_HELP, url_password
from pipeline.settings_errors import one_line, suggestion
from pipeline.settings_types import (
    VARIANTS,
    Fraction,
    NonNegativeInt,
    PositiveInt,
    SearchRange,
    Section,
    StepWeights,
)


class BaseSettings(Section):
    dataset: str = "amazon0302"
    seed: NonNegativeInt = 42


class SplitSettings(Section):
    train: Fraction = 0.75
    val: Fraction = 0.05
    test: Fraction = 0.20

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSettings:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {self.train} + {self.val} + "
                             f"{self.test} = {total:g}")
        if self.train <= 0.0:
            raise ValueError("train must be > 0")
        return self


class IngestSettings(Section):
    edges: str
    format: Literal["auto", "snap", "csv", "tsv", "parquet", "npz"] = "auto"
    source_column: str = "source"
    target_column: str = "target"
    id_type: Literal["auto", "int", "string"] = "auto"
    verify_checksums: bool = True
    split: SplitSettings = SplitSettings()


class NeighbourhoodSettings(Section):
    d_min: PositiveInt = 1
    alpha: Annotated[float, Field(ge=1.0)] | None = None  # >= 1: a decreasing tail
    alpha_multiplier: Annotated[float, Field(gt=0.0)] = 1.0
    n_min: PositiveInt = 2
    n_max: PositiveInt = 10
    h_max: PositiveInt = 2
    beta: Annotated[float, Field(ge=0.0)] = 1.0

    @model_validator(mode="after")
    def _sizes_ordered(self) -> NeighbourhoodSettings:
        if self.n_min > self.n_max:
            raise ValueError(f"n_min ({self.n_min}) must be <= n_max ({self.n_max})")
        return self


class DegreeStatsSettings(Section):
    plot: bool = True


def _blade_fields() -> dict[str, Any]:
    """Every key of :class:`models.config.BladeConfig` as a schema field: its type, its default
    and the limits in its metadata (defaults and limits live there, once)."""
    hints = typing.get_type_hints(BladeConfig)
    return {item.name: (Annotated[hints[item.name], Field(**item.metadata)], item.default)
            for item in dataclasses.fields(BladeConfig)}


class _PipelineTrainKeys(Section):
    variants: list[VARIANTS] = Field(default_factory=lambda: ["blade", "sage"], min_length=1)
    use_tuned: bool = True
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"] = "auto"
    devices: int | str | list[int] = "auto"
    strategy: Literal["auto", "ddp"] = "auto"
    num_nodes: PositiveInt = 1


# ``train``: the model's configuration (:class:`models.config.BladeConfig`, where its keys,
# defaults and limits live) plus which variants train and on what hardware.
TrainSettings = create_model("TrainSettings", __base__=_PipelineTrainKeys, **_blade_fields())


class _Budget(Section):
    n_trials: NonNegativeInt = 16
    timeout_seconds: Annotated[float, Field(gt=0.0)] | None = 600
    max_epochs: PositiveInt | None = None
    include_defaults: bool = True
    startup_trials: NonNegativeInt = 3
    halving_min_epochs: PositiveInt = 1  # successive halving: the first rung, in epochs
    halving_rate: Annotated[int, Field(ge=2)] = 3  # 1 in halving_rate trials goes on at each rung
    val_queries: PositiveInt | None = 1000  # validation edges a trial ranks each epoch (None: train's)


class TuneSettings(_Budget):
    study_name: str = "blade-amazon0302"
    storage: str = "sqlite:///outputs/tune/optuna.db"
    space: dict[str, SearchRange] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_keys(self) -> TuneSettings:
        for key in self.space:
            _check_tunable(key, "space: ")
        return self

    @field_validator("storage")
    @classmethod
    def _no_password(cls, url: str) -> str:
        """params.yaml, dvc.lock and MLflow record this URL: a password in it would leak."""
        if url_password(url):
            raise ValueError(f"the URL carries a password; leave it out ({STORAGE_PASSWORD_HELP})")
        return url


class ExportSettings(Section):
    check_queries: PositiveInt = 256
    check_k: PositiveInt = 20
    rtol: Annotated[float, Field(gt=0.0)] = 1e-5


class ScoreSettings(Section):
    model: str = "models:/blade-amazon0302@champion"
    input: str = "all"
    output: str = "outputs/score/recommendations.parquet"
    k: PositiveInt = 20
    exclude_linked: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chunk_size: PositiveInt = 4096
    index: Literal["exact", "ivf"] = "exact"
    nprobe: PositiveInt = 16
    nlist: PositiveInt | None = None


class MlflowSettings(Section):
    experiment: str = "blade"


class ServingLimits(Section):
    """What one request to the registered model may ask (stored in the model's config)."""

    max_k: PositiveInt = 1000
    max_queries: PositiveInt = 10000
    chunk_size: PositiveInt = 256


class RegistrySettings(Section):
    model_name: str = "blade-amazon0302"
    variant: VARIANTS = "blade"
    serving: ServingLimits = ServingLimits()

    @field_validator("model_name")
    @classmethod
    def _uri_safe(cls, name: str) -> str:
        """The name is a part of ``models:/NAME@alias`` URIs: '.' and '/' would fail at register."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
            raise ValueError(f"expected letters, digits, '-' and '_' (a models:/ URI part), got {name!r}")
        return name


class BaselineSettings(Section):
    """The training-free recommenders' grids; each baseline keeps its best point on validation."""

    walk_weights: list[StepWeights] = Field(
        default_factory=lambda: [[1.0, 1.0, 1.0], [1.0, 3.0, 3.0], [1.0, 3.0, 9.0], [1.0, 1.0, 0.0],
                                 [0.0, 1.0, 1.0]], min_length=1)
    rp3beta_alpha: list[Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=lambda: [0.5, 0.75, 1.0], min_length=1)
    rp3beta_beta: list[Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: [0.0, 0.25], min_length=1)
    item_knn_shrink: list[Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: [0.0, 10.0, 100.0], min_length=1)
    val_queries: PositiveInt = 2000
    calibrate_direction: bool = True

    @model_validator(mode="after")
    def _walks_move(self) -> BaselineSettings:
        for weights in self.walk_weights:
            if max(weights) <= 0:
                raise ValueError(f"walk_weights: every walk needs a step weight > 0, got {weights}")
        return self


class EvaluateSettings(Section):
    split: Literal["test", "val"] = "test"
    max_queries: NonNegativeInt = 20000
    ks: list[PositiveInt] = Field(default_factory=lambda: [5, 10, 20], min_length=1)
    low_degree_max: NonNegativeInt = 2
    non_edges: NonNegativeInt = 20000
    baselines: BaselineSettings = BaselineSettings()

    @field_validator("ks")
    @classmethod
    def _has_ten(cls, ks: list[int]) -> list[int]:
        """HR@10 and MRR@10 are the headline, the registry's and the report's metric."""
        if 10 not in ks:
            raise ValueError(f"must include 10 (HR@10 and MRR@10 are what every report compares), got {ks}")
        return ks


class CompareTuneSettings(_Budget):
    n_trials: NonNegativeInt = 16
    timeout_seconds: Annotated[float, Field(gt=0.0)] | None = 900
    include_defaults: bool = True
    startup_trials: NonNegativeInt = 5


class DatasetSettings(Section):
    """One graph of ``compare.datasets``: its ingest settings and optional section overrides."""

    edges: str
    format: Literal["auto", "snap", "csv", "tsv", "parquet", "npz"] | None = None
    source_column: str | None = None
    target_column: str | None = None
    id_type: Literal["auto", "int", "string"] | None = None
    verify_checksums: bool | None = None
    split: SplitSettings | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    evaluate: dict[str, Any] = Field(default_factory=dict)
    tune: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_overrides(self) -> DatasetSettings:
        for name, model, values in (("train", TrainSettings, self.train),
                                    ("evaluate", EvaluateSettings, self.evaluate),
                                    ("tune", CompareTuneSettings, self.tune)):
            for key in values:
                if key not in model.model_fields:
                    raise ValueError(f"{name}.{key}: unknown key"
                                     + suggestion(key, list(model.model_fields), prefix=f"{name}."))
        return self


class CompareSettings(Section):
    variants: list[VARIANTS] = Field(
        default_factory=lambda: ["blade", "no_adaptive", "no_bias", "daemon", "sage"], min_length=1)
    tuned_variants: list[VARIANTS] = Field(
        default_factory=lambda: ["blade", "no_adaptive", "no_bias", "daemon"])
    seeds: list[NonNegativeInt] = Field(default_factory=lambda: [42, 43, 44], min_length=1)
    mlflow_experiment: str = "blade-compare"
    tune: CompareTuneSettings = CompareTuneSettings()
    datasets: dict[str, DatasetSettings] = Field(default_factory=dict)
    # graph -> its seeds, instead of ``seeds`` (reports/dvc.yaml: one stage per graph and seed)
    seeds_per_graph: dict[str, Annotated[list[NonNegativeInt], Field(min_length=1)]] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _seeds_of_known_graphs(self) -> CompareSettings:
        for name in self.seeds_per_graph:
            if name not in self.datasets:
                raise ValueError(f"seeds_per_graph.{name}: not a graph of compare.datasets "
                                 f"(known: {', '.join(self.datasets)})")
        for name in self.datasets:
            if name not in self.seeds_per_graph:
                raise ValueError(f"datasets.{name}: give its seeds in compare.seeds_per_graph "
                                 "(reports/dvc.yaml runs one stage per graph and seed)")
        return self


class AblationSettings(Section):
    rows: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"ours": {}})
    seed: NonNegativeInt = 42  # the split (and seed) every row trains on

    @model_validator(mode="after")
    def _known_overrides(self) -> AblationSettings:
        for row, overrides in self.rows.items():
            if any(mark in row for mark in ".,/"):
                raise ValueError(f"rows.{row}: a row name cannot hold '.', ',' or '/' (it is a DVC "
                                 "parameter key and a file name: reports/dvc.yaml)")
            for key, value in (overrides or {}).items():
                if key == "variant":
                    if value not in VARIANTS.__args__:
                        raise ValueError(f"rows.{row}: variant must be one of "
                                         f"{', '.join(VARIANTS.__args__)}, got {value!r}")
                    continue
                _check_tunable(key, f"rows.{row}: ")
        return self


class Params(Section):
    """The whole of ``params.yaml``."""

    base: BaseSettings = BaseSettings()
    ingest: IngestSettings
    neighbourhood: NeighbourhoodSettings = NeighbourhoodSettings()
    degree_stats: DegreeStatsSettings = DegreeStatsSettings()
    train: TrainSettings = TrainSettings()
    tune: TuneSettings = TuneSettings()
    export: ExportSettings = ExportSettings()
    score: ScoreSettings = ScoreSettings()
    mlflow: MlflowSettings = MlflowSettings()
    registry: RegistrySettings = RegistrySettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    compare: CompareSettings = CompareSettings()
    ablation: AblationSettings = AblationSettings()


# sections whose keys tune.space and ablation rows may name
TUNABLE: dict[str, type[BaseModel]] = {"neighbourhood": NeighbourhoodSettings, "train": TrainSettings}


def tunable_keys() -> list[str]:
    return [f"{name}.{key}" for name, model in TUNABLE.items() for key in model.model_fields]


def _check_tunable(key: str, where: str) -> None:
    """``key`` must name a ``neighbourhood.*`` or ``train.*`` parameter."""
    section_name, _, name = key.partition(".")
    model = TUNABLE.get(section_name)
    if model is None or name not in model.model_fields:
        raise ValueError(f"{where}{key!r} is not a train.* or neighbourhood.* key"
                         + suggestion(key, tunable_keys()))


def check_params(params: dict[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """The validated parameters as a plain dict with every default filled in.

    Raises:
        ConfigError: one line, ``"<source>: <key>: <what was expected>"``, for the first
            problem (``source`` names the file or the ``--set`` override).
    """
    try:
        checked = Params.model_validate(params)
    except ValidationError as error:
        raise ConfigError(f"{source}: {one_line(error.errors()[0], Params)}") from None
    values = checked.model_dump(by_alias=True)
    # free-form parts keep only what was given: a search range's kind, a dataset's overrides
    values["tune"]["space"] = {key: {name: value for name, value in spec.items() if value is not None}
                               for key, spec in values["tune"]["space"].items()}
    values["compare"]["datasets"] = {
        name: {key: value for key, value in dataset.items() if value is not None and value != {}}
        for name, dataset in values["compare"]["datasets"].items()}
    return values


def typed(params: dict[str, Any]) -> Params:
    """The typed view of parameters (checked as :func:`check_params` does)."""
    try:
        return Params.model_validate(params)
    except ValidationError as error:
        raise ConfigError(f"params.yaml: {one_line(error.errors()[0], Params)}") from None


SectionT = TypeVar("SectionT", bound=BaseModel)


def as_settings(values: SectionT | dict[str, Any], model: type[SectionT]) -> SectionT:
    """One section as its typed model: a model passes through, a mapping is checked (missing
    keys take the schema's defaults); errors name the section."""
    if isinstance(values, model):
        return values
    try:
        return model.model_validate(values)
    except ValidationError as error:
        name = next((field for field, info in Params.model_fields.items() if info.annotation is model),
                    model.__name__)
        first = dict(error.errors()[0])
        first["loc"] = (name, *first["loc"])
        raise ConfigError(f"params.yaml: {one_line(first, Params)}") from None
