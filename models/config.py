"""BLADE's configuration: the model, its training objective and what is fitted after training,
with their defaults and limits, once.

``params.yaml``'s ``train`` section is this plus the pipeline's own keys (which variants, which
device): ``pipeline.settings.TrainSettings`` is built from these fields (their types, defaults
and the limits in each field's metadata). A plain dataclass, so that the model library needs no
pydantic (the GPU check, ``bench/gpu_check.py``, runs where it is not installed).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

LIMITS = {"ge": (lambda value, bound: value >= bound, ">="), "gt": (lambda value, bound: value > bound, ">"),
          "lt": (lambda value, bound: value < bound, "<")}


def _limited(default: float | int, **limits: float) -> typing.Any:
    return field(default=default, metadata=limits)


@dataclass
class BladeConfig:
    """Hyper-parameters of the dual-embedding model and of its training.

    Layers (``models.encoder``): ``dim``-wide embeddings, ``num_layers`` message-passing layers
    with ``activation`` on the hidden ones, ``self_term`` (a root weight, for nodes with empty
    neighbourhoods), ``weight_init`` (``identity``: each layer starts as "neighbour mean plus
    myself"), ``id_init`` (``structure``: the ID tables start as a random projection of the
    2-hop neighbourhood), ``shared_input`` (one ID table for both roles), ``dropout``, and the
    score ``scale * s_u . t_v`` starting at ``score_scale`` (learned with ``learn_scale``).

    Channels and priors (``models.channels``): DAEMON's ``similarity`` channel (``none``,
    ``reciprocal`` pairs or every edge ``undirected``) with its loss weight
    ``lambda_similarity``; ``target_prior`` (``+ gamma log(1 + d_in(v))``, ``node`` adds a bias
    per target), ``source_prior`` (``+ delta log(1 + d_in(u))``: ranks nothing differently,
    lets direction use popularity), trained at ``prior_lr_factor`` x the learning rate.

    Objective (``models.full_graph``, ``models.loss``): each epoch supervises
    ``supervision_fraction`` of the training edges in steps of ``batch_size``, with the sampled
    ``softmax`` over ``negative_pool`` uniform nodes (or the paper's ``logistic`` loss with
    ``num_negatives`` per edge) plus ``lambda_asym`` x the direction term on one-way edges.
    Optimiser: Adam, ``learning_rate``, ``weight_decay``; ``max_epochs`` with early stopping after
    ``early_stopping_patience`` epochs without a better validation MRR@10 on ``val_queries`` edges.
    ``fixed_fanout``: the neighbourhood size of the variants without BLADE's adaptive one.

    After training, on validation edges (``models.training.fit_after_training``):
    ``refit_target_prior``, ``walk_channel``, ``calibrate_direction``.
    """

    dim: int = _limited(64, ge=1)
    num_layers: int = _limited(2, ge=1)
    activation: Literal["relu", "none"] = "none"
    id_init: Literal["random", "structure"] = "structure"
    weight_init: Literal["random", "identity"] = "identity"
    self_term: bool = True
    shared_input: bool = True
    dropout: float = _limited(0.0, ge=0.0, lt=1.0)
    score_scale: float = _limited(10.0, gt=0.0)
    learn_scale: bool = True

    similarity: Literal["none", "reciprocal", "undirected"] = "undirected"
    lambda_similarity: float = _limited(0.0, ge=0.0)
    target_prior: Literal["none", "degree", "node"] = "degree"
    source_prior: bool = True
    prior_lr_factor: float = _limited(1.0, gt=0.0)

    supervision_fraction: float = _limited(0.1, gt=0.0, lt=1.0)
    loss: Literal["softmax", "logistic"] = "softmax"
    num_negatives: int = _limited(5, ge=1)
    negative_pool: int = _limited(2048, ge=0)
    lambda_asym: float = _limited(1.0, ge=0.0)
    fixed_fanout: int = _limited(10, ge=1)
    batch_size: int = _limited(32768, ge=1)
    learning_rate: float = _limited(0.02, gt=0.0)
    weight_decay: float = _limited(0.0, ge=0.0)
    max_epochs: int = _limited(100, ge=1)
    early_stopping_patience: int = _limited(3, ge=1)
    val_queries: int = _limited(5000, ge=1)

    refit_target_prior: bool = True
    walk_channel: bool = True
    calibrate_direction: bool = True

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(BladeConfig)
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            hint = hints[item.name]
            choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else ()
            if choices and value not in choices:
                raise ValueError(f"{item.name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
            for kind, bound in item.metadata.items():
                holds, sign = LIMITS[kind]
                if not holds(value, bound):
                    raise ValueError(f"{item.name} must be {sign} {bound}, got {value!r}")

    @classmethod
    def of(cls, config: typing.Any) -> BladeConfig:
        """``config`` as a :class:`BladeConfig`: one already, or a mapping / an object with an
        attribute per key (the pipeline's ``TrainSettings``), whose other keys are ignored."""
        if isinstance(config, BladeConfig):
            return config
        values = config if isinstance(config, dict) else {name: getattr(config, name)
                                                          for name in cls.keys() if hasattr(config, name)}
        return cls(**{name: values[name] for name in cls.keys() if name in values})

    @staticmethod
    def keys() -> list[str]:
        return [item.name for item in dataclasses.fields(BladeConfig)]

    def undirected(self) -> BladeConfig:
        """The same model with its directed parts off (one embedding per node: GraphSAGE)."""
        return dataclasses.replace(self, similarity="none", target_prior="none", shared_input=False,
                                   source_prior=False, lambda_asym=0.0)


__all__ = ["BladeConfig"]
