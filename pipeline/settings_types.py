"""The building blocks of the ``params.yaml`` schema (:mod:`pipeline.settings`): the section base
(unknown keys refused, defaults validated), the constrained number types, and one dimension of
the tuning search space."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

VARIANTS = Literal["blade", "no_adaptive", "no_bias", "daemon", "sage"]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
StepWeights = Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=1, max_length=3)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


class SearchRange(Section):
    """One dimension of the search space: ``{low, high[, log, int]}`` or ``{choices: [...]}``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = Field(False, alias="int")
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("expected {low, high[, log, int]} or {choices: [...]}")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must be <= high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low:g}")
        return self
