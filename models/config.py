"""BLADE's configuration: the model, its training objective and what is fitted after training,
with their defaults, once.

``params.yaml``'s ``train`` section is this plus the pipeline's own keys (which variants, which
device; ``pipeline.settings.TrainSettings``), and every part of ``models/`` reads it from here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt


class BladeConfig(BaseModel):
    """Hyper-parameters of the dual-embedding model and of its training.

    Layers (``models.encoder``): ``dim``-wide embeddings, ``num_layers`` message-passing layers
    with ``activation`` on the hidden ones, ``self_term`` (a root weight, for nodes with empty
    neighbourhoods), ``weight_init`` (``identity``: each layer starts as "neighbour mean plus
    myself"), ``id_init`` (``structure``: the ID tables start as a random projection of the
    2-hop neighbourhood), ``shared_input`` (one ID table for both roles), ``dropout``, and the
    score ``scale * s_u . t_v`` starting at ``score_scale`` (learned with ``learn_scale``).

    Channels and priors: DAEMON's ``similarity`` channel (``none``, ``reciprocal`` pairs or
    every edge ``undirected``) with its loss weight ``lambda_similarity``; ``target_prior``
    (``+ gamma log(1 + d_in(v))``, ``node`` adds a bias per target), ``source_prior``
    (``+ delta log(1 + d_in(u))``: ranks nothing differently, lets direction use popularity),
    trained at ``prior_lr_factor`` x the learning rate.

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

    model_config = ConfigDict(extra="forbid", validate_default=True)

    dim: PositiveInt = 64
    num_layers: PositiveInt = 2
    activation: Literal["relu", "none"] = "none"
    id_init: Literal["random", "structure"] = "structure"
    weight_init: Literal["random", "identity"] = "identity"
    self_term: bool = True
    shared_input: bool = True
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    score_scale: Annotated[float, Field(gt=0.0)] = 10.0
    learn_scale: bool = True

    similarity: Literal["none", "reciprocal", "undirected"] = "undirected"
    lambda_similarity: Annotated[float, Field(ge=0.0)] = 0.0
    target_prior: Literal["none", "degree", "node"] = "degree"
    source_prior: bool = True
    prior_lr_factor: Annotated[float, Field(gt=0.0)] = 1.0

    supervision_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    loss: Literal["softmax", "logistic"] = "softmax"
    num_negatives: PositiveInt = 5
    negative_pool: NonNegativeInt = 2048
    lambda_asym: Annotated[float, Field(ge=0.0)] = 1.0
    fixed_fanout: PositiveInt = 10
    batch_size: PositiveInt = 32768
    learning_rate: Annotated[float, Field(gt=0.0)] = 0.02
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    max_epochs: PositiveInt = 100
    early_stopping_patience: PositiveInt = 3
    val_queries: PositiveInt = 5000

    refit_target_prior: bool = True
    walk_channel: bool = True
    calibrate_direction: bool = True

    def undirected(self) -> BladeConfig:
        """The same model with its directed parts off (one embedding per node: GraphSAGE)."""
        return self.model_copy(update={"similarity": "none", "target_prior": "none",
                                       "shared_input": False, "source_prior": False,
                                       "lambda_asym": 0.0})


__all__ = ["BladeConfig"]
