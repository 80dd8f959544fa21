"""The model variants compared in evaluation: BLADE, its ablations, DAEMON and the SAGE baseline.

All are settings of one code path (encoder + sampler + loss), so a comparison changes exactly
one thing at a time:

| variant      | encoder             | neighbourhood                    | sampling        | walk channel |
| ------------ | ------------------- | -------------------------------- | --------------- | ------------ |
| blade        | dual source/target  | adaptive n_u, top-up to h_max    | degree-biased   | yes          |
| no_adaptive  | dual                | fixed fan-out, 1 hop  ("w/o LA") | degree-biased   | yes          |
| no_bias      | dual                | adaptive n_u, top-up  ("w/o B")  | uniform         | yes          |
| daemon       | dual                | fixed fan-out, 1 hop             | uniform         | no           |
| sage         | one embedding       | fixed fan-out, undirected        | uniform         | no           |

The walk channel (:mod:`models.walk_channel`, ``train.walk_channel``) is part of BLADE here, so
its two ablations keep it and change only what their name says; DAEMON and GraphSAGE are the
published models, without it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    directed: bool  # dual source/target encoder (True) or undirected single embedding
    adaptive: bool  # power-law n_u with multi-hop top-up (True) or fixed fan-out
    biased: bool  # degree-biased (beta from params) or uniform (beta = 0) sampling
    description: str
    walk_channel: bool = True  # fit the walk channel after training (when train.walk_channel)


VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant("blade", True, True, True, "BLADE: adaptive neighbourhood + biased sampling"),
        Variant("no_adaptive", True, False, True, "BLADE w/o LA: fixed fan-out, biased sampling"),
        Variant("no_bias", True, True, False, "BLADE w/o B: adaptive neighbourhood, uniform"),
        Variant("daemon", True, False, False, "DAEMON: dual embeddings, fixed uniform fan-out",
                walk_channel=False),
        Variant("sage", False, False, False, "GraphSAGE: undirected, one embedding per node",
                walk_channel=False),
    )
}


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown model variant {name!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
