"""Direction-aware dual-embedding encoder (BLADE / DAEMON) and the undirected GraphSAGE baseline.

Every node u has a **source** embedding s_u (u as the query) and a **target** embedding t_u
(u as the recommended item); the score of u -> v is ``scale * s_u . t_v`` (see :func:`score`).

Message passing is one sparse-dense product per role and layer, ``A @ X``, with ``A`` the
aggregation matrix of the epoch's sampled neighbourhoods, ``[N, N]`` for the whole graph
(:class:`models.sparse.ComputationGraph`); in a training step the last layer takes only the rows
its loss reads. Nothing of shape ``[num_pairs, dim]`` is materialised.

Deviations from the reconstructed method (docs: blade-method.md, sec. 1), each for a reason:

- **Self term** ``W_self``: a node with an empty sampled neighbourhood (out-degree 0 nodes,
  thousands in a product graph) would otherwise get the same vector as every other such node.
- **No ReLU on the last layer**: ReLU then L2-norm gives non-negative unit vectors, so
  ``s_u . t_v`` would be confined to [0, 1] and could not say "u does not link to v".
- **Score scale**: unit vectors give dot products in [-1, 1], and sigmoid(1) = 0.73 is as
  confident as the loss could ever get; the encoder therefore carries a (fixed or learnable)
  positive ``scale`` and every score is ``scale * s_u . t_v``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric import EdgeIndex
from torch_geometric.nn import SAGEConv

from models.channels import SimilarityChannel, SourcePrior, TargetPrior
from models.config import BladeConfig
from models.sparse import AggregationMatrix, ComputationGraph

# Standard deviation of the layer-0 ID tables: small, the first layer's L2-norm rescales anyway.
ID_EMBEDDING_STD = 0.1


def score(s: Tensor, t: Tensor, scale: float | Tensor) -> Tensor:
    """All-pairs scores ``scale * s @ t^T``: ``s: [B, d]`` queries, ``t: [N, d]`` -> ``[B, N]``.
    The scale multiplies the ``[B, d]`` queries, not the ``[B, N]`` product: one pass over B x N
    fewer, since B x d is far smaller than B x N."""
    return (scale * s) @ t.T


def edge_score(s: Tensor, t: Tensor, edge_index: Tensor, scale: float | Tensor) -> Tensor:
    """Scores of given edges u -> v, ``scale * s_u . t_v``: ``edge_index: [2, E]`` -> ``[E]``."""
    return scale * (s[edge_index[0]] * t[edge_index[1]]).sum(dim=-1)


class _InputLayer(nn.Module):
    """Layer-0 embeddings: a learnable ID table ``[N, dim]``."""

    def __init__(self, num_nodes: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_nodes, dim))
        nn.init.normal_(self.weight, std=ID_EMBEDDING_STD)

    def forward(self, nodes: Tensor | None = None) -> Tensor:
        """Rows ``nodes`` (all N if None)."""
        return self.weight if nodes is None else self.weight[nodes]


class _EncoderBase(nn.Module):
    """What both encoders share: the configuration, the ID tables and the score scale."""

    def __init__(self, config: BladeConfig, num_nodes: int) -> None:
        super().__init__()
        self.config = config
        self.num_nodes = num_nodes

    def _score_scale(self) -> None:
        log_scale = torch.tensor(math.log(self.config.score_scale))
        if self.config.learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def id_tables(self) -> list[nn.Parameter]:
        """The layer-0 ID tables ``[N, dim]`` (one when shared)."""
        return [layer.weight for layer in self.modules() if isinstance(layer, _InputLayer)]

    @property
    def scale(self) -> Tensor:
        """Positive scalar multiplying every score; pass it to :func:`score` and the loss."""
        return self.log_scale.exp()

    def _finish(self, layer: int, out: Tensor) -> Tensor:
        """``norm(act(out))``, act = ReLU on hidden layers with ``activation: relu``."""
        if layer < self.config.num_layers - 1 and self.config.activation == "relu":
            out = F.relu(out)
        return F.normalize(out, dim=-1)


class BladeEncoder(_EncoderBase):
    r"""Dual source / target embeddings with the DAEMON direction rule.

    For layers :math:`l = 1..L`, with :math:`W^l` shared by both roles:

    .. math::
        s^l &= \mathrm{norm}\big(\sigma_l(A_{out}\, t^{l-1} W^l + s^{l-1} W^l_{self})\big) \\
        t^l &= \mathrm{norm}\big(\sigma_l(A_{in}\, s^{l-1} W^l + t^{l-1} W^l_{self})\big)

    The source side of u aggregates the *target* embeddings of what u points to (S_out(u));
    the target side aggregates the *source* embeddings of who points to u (S_in(u)).
    ``norm`` is the row-wise L2 normalisation (zero rows stay zero); :math:`W^l` has a bias,
    :math:`W^l_{self}` none (as PyG's SAGEConv). :math:`\sigma_l` = ReLU for l < L and the
    identity for l = L: ReLU then L2-norm on the output would confine s.t to [0, 1]
    (deviation from the paper, see the module docstring; so is :math:`W_{self}`, dropped
    when ``self_term=False``). Layer 0: learnable ID tables :math:`s^0, t^0` (one shared table
    with ``shared_input``). Dropout acts on every layer's input.

    Scores are ``scale * s_u . t_v`` with :attr:`scale` (see :func:`score`).

    Args:
        config: :class:`models.config.BladeConfig` (layers, channels, priors).
        num_nodes: N, the size of the ID tables.

    Shapes:
        - **input:** ``out_adj``, ``in_adj``: :class:`AggregationMatrix` ``[N, N]`` built from
          the sampler's ``out_index`` and ``in_index``.
        - **output:** ``(s, t)``, each ``[N, dim]`` with unit-norm rows.
    """

    directed = True  # s and t differ: the caller builds both directions' aggregations

    def __init__(self, config: BladeConfig, num_nodes: int) -> None:
        super().__init__(config, num_nodes)
        self.neighbour = nn.ModuleList(nn.Linear(config.dim, config.dim) for _ in range(config.num_layers))
        self.root = (
            nn.ModuleList(nn.Linear(config.dim, config.dim, bias=False) for _ in range(config.num_layers))
            if config.self_term
            else None
        )
        self.similarity_channel = (SimilarityChannel(config.dim, config.num_layers)
                                   if config.similarity != "none" else None)
        if config.weight_init == "identity":
            with torch.no_grad():
                similar = self.similarity_channel.weights if self.similarity_channel is not None else []
                for linear in [*self.neighbour, *(self.root or []), *similar]:
                    nn.init.eye_(linear.weight)
                    if linear.bias is not None:
                        linear.bias.zero_()
        self._score_scale()
        self.source_input = _InputLayer(num_nodes, config.dim)
        self.target_input = (self.source_input if config.shared_input
                             else _InputLayer(num_nodes, config.dim))
        self.target_prior = (TargetPrior(num_nodes, per_node=config.target_prior == "node")
                             if config.target_prior != "none" else None)
        self.source_prior = SourcePrior() if config.source_prior else None

    @property
    def priors(self) -> list[TargetPrior | SourcePrior]:
        """The degree priors the score carries, in the order of their columns."""
        return [prior for prior in (self.target_prior, self.source_prior) if prior is not None]

    def _update(self, layer: int, aggregated: Tensor, previous: Tensor,
                similar: Tensor | None = None) -> Tensor:
        """``norm(act(aggregated W^l + previous W_self^l [+ similar]))``, act = ReLU except on
        the last layer; ``similar`` is the similarity channel's term."""
        out = self.neighbour[layer](aggregated)
        if self.root is not None:
            out = out + self.root[layer](previous)
        if similar is not None:
            out = out + similar
        return self._finish(layer, out)

    def forward(
        self,
        out_adj: AggregationMatrix,
        in_adj: AggregationMatrix,
        similarity_adj: AggregationMatrix | None = None,
        target_in_degree: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Embeddings of all N nodes from ``[N, N]`` aggregation matrices."""
        graph = ComputationGraph.full(out_adj, in_adj, self.config.num_layers, similarity_adj,
                                      target_in_degree)
        return self.encode(graph)

    def encode(self, graph: ComputationGraph) -> tuple[Tensor, Tensor]:
        """``(s, t)`` of ``graph``'s last-layer sources and targets, rows in their order.

        With a target prior the rows get one more column, ``s = [s, 1]`` and ``t = [t, bias /
        scale]``, so that :func:`score` (``scale * s . t``) includes the bias everywhere
        downstream (evaluation, ONNX export, serving) without knowing about it; a source prior
        adds ``s = [s, query / scale]``, ``t = [t, 1]`` the same way."""
        if self.similarity_channel is not None and graph.similarity_adj is None:
            raise ValueError("the encoder has a similarity channel: the graph needs similarity_adj "
                             "(full-graph encoding)")
        if self.priors and graph.target_in_degree is None:
            raise ValueError("the encoder has a degree prior: the graph needs target_in_degree "
                             "(full-graph encoding)")
        s = self.source_input(graph.source_nodes[0])
        t = self.target_input(graph.target_nodes[0])
        rows = graph.last_rows
        for layer in range(self.config.num_layers):
            s_prev = F.dropout(s, self.config.dropout, self.training)
            t_prev = F.dropout(t, self.config.dropout, self.training)
            out_adj, in_adj = graph.out_adj[layer], graph.in_adj[layer]
            similarity = graph.similarity_adj if self.similarity_channel is not None else None
            s_self, t_self = s_prev[: out_adj.shape[0]], t_prev[: in_adj.shape[0]]
            if rows is not None and layer == self.config.num_layers - 1:
                out_adj, in_adj = out_adj.rows(rows), in_adj.rows(rows)
                similarity = None if similarity is None else similarity.rows(rows)
                s_self, t_self = s_prev[rows], t_prev[rows]
            s_similar = t_similar = None
            if similarity is not None:
                s_similar, t_similar = self.similarity_channel(layer, similarity, s_prev, t_prev)
            s = self._update(layer, out_adj @ t_prev, s_self, s_similar)
            t = self._update(layer, in_adj @ s_prev, t_self, t_similar)
        for prior in self.priors:
            s, t = prior.append(s, t, graph.target_in_degree, rows, self.scale)
        return s, t


class UndirectedSageEncoder(_EncoderBase):
    r"""Single-embedding GraphSAGE baseline on PyG's ``SAGEConv``: ignores direction, so
    score(u, v) = score(v, u).

    .. math::
        h^l = \mathrm{norm}\big(\sigma_l(\mathrm{mean}_{v \in S(u)} h^{l-1}_v W^l + h^{l-1}_u W^l_{self})\big)

    ``SAGEConv(aggr="mean")`` is exactly that update (``lin_l``: W with its bias, ``lin_r``:
    W_self, dropped with ``self_term=False``); the normalisation and ReLU on hidden layers
    follow it, with the same conventions as :class:`BladeEncoder` and an ID table at layer 0.

    The forward signature mirrors :class:`BladeEncoder` so the training code is shared:
    only ``out_adj`` is used, and the caller builds it from the *undirected* graph (each edge
    in both directions); ``in_adj`` is ignored. Its kept entries (non-zero weights: a pair whose
    path uses an excluded edge has weight 0) become the convolution's edges.

    Shapes:
        - **input:** ``out_adj``: :class:`AggregationMatrix` ``[N, N]``.
        - **output:** ``(h, h)``, the same ``[N, dim]`` tensor twice (source = target).
    """

    directed = False  # one embedding: the caller builds one undirected aggregation

    def __init__(self, config: BladeConfig, num_nodes: int) -> None:
        config = config.undirected()
        super().__init__(config, num_nodes)
        self.convs = nn.ModuleList(
            SAGEConv(config.dim, config.dim, aggr="mean", root_weight=config.self_term)
            for _ in range(config.num_layers))
        if config.weight_init == "identity":
            with torch.no_grad():
                for conv in self.convs:
                    nn.init.eye_(conv.lin_l.weight)
                    conv.lin_l.bias.zero_()
                    if config.self_term:
                        nn.init.eye_(conv.lin_r.weight)
        self._score_scale()
        self.node_input = _InputLayer(num_nodes, config.dim)

    def forward(
        self,
        out_adj: AggregationMatrix,
        in_adj: AggregationMatrix | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Embeddings of all N nodes from the ``[N, N]`` undirected aggregation matrix."""
        return self.encode(ComputationGraph.full(out_adj, None, self.config.num_layers))

    def encode(self, graph: ComputationGraph) -> tuple[Tensor, Tensor]:
        """``(h, h)`` for ``graph``'s last-layer nodes (its source side; targets are the same)."""
        h = self.node_input(graph.source_nodes[0])
        for layer in range(self.config.num_layers):
            h_prev = F.dropout(h, self.config.dropout, self.training)
            adjacency = graph.out_adj[layer]
            targets = h_prev
            if graph.last_rows is not None and layer == self.config.num_layers - 1:
                adjacency, targets = adjacency.rows(graph.last_rows), h_prev[graph.last_rows]
            out = self.convs[layer]((h_prev, targets), message_edges(adjacency))
            h = self._finish(layer, out)
        return h, h


def message_edges(adjacency: AggregationMatrix) -> EdgeIndex:
    """The kept entries of ``adjacency`` (``[R, C]``: row u aggregates column v) as message-passing
    edges v -> u, ``[2, M]`` sorted by target, for a ``[C, R]`` bipartite convolution."""
    matrix = adjacency.matrix
    crow = matrix.crow_indices()
    target = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=crow.device), crow.diff())
    kept = matrix.values() != 0
    edges = torch.stack([matrix.col_indices()[kept], target[kept]])
    num_rows, num_columns = adjacency.shape
    return EdgeIndex(edges, sparse_size=(num_columns, num_rows), sort_order="col")


__all__ = [
    "BladeEncoder",
    "UndirectedSageEncoder",
    "edge_score",
    "score",
]
