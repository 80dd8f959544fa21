"""The trained model's scorer as an ONNX graph: query node indices -> top-k targets and scores.

Inputs and outputs (the batch dimension ``B`` is dynamic):

- ``query``: int64 ``[B]`` node indices (0..N-1);
- ``k``: int64 ``[1]`` how many targets per query (at most N - 1);
- ``top_ids``: int64 ``[B, k]`` target node indices, best first;
- ``top_scores``: float32 ``[B, k]`` their scores ``scale * s_q . t_v``.

The precomputed embeddings are initialisers (the GNN is not in the graph):

    s = Gather(source, query)                 [B, d]
    scores = MatMul(s, target^T) * scale      [B, N]
    scores[b, walk_index[q]] += walk_bonus[q] the walk channel, where the model has one
    scores[b, query[b]] = -inf                the query is never its own recommendation
    top_scores, top_ids = TopK(scores, k)

The walk channel (:mod:`models.walk_channel`) is two ``[N, w]`` tables, int32 target ids and
float32 bonuses, added by ScatterElements with reduction ``add`` (opset 16+); a padding slot
points at the query itself with bonus 0, which the mask then overwrites.

Built with ``onnx.helper`` (a few operators, opset 17) rather than a tracing exporter, so the
graph is exactly this and needs nothing beyond the ``onnx`` package.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
INPUT_QUERY, INPUT_K = "query", "k"
OUTPUT_IDS, OUTPUT_SCORES = "top_ids", "top_scores"


def build_scorer(source: np.ndarray, target: np.ndarray, scale: float,
                 walk_index: np.ndarray | None = None,
                 walk_bonus: np.ndarray | None = None) -> onnx.ModelProto:
    """The ONNX top-k scorer over ``source [N, d]`` and ``target [N, d]`` (float32), plus the
    walk channel's ``walk_index [N, w]`` and ``walk_bonus [N, w]`` when given.

    Raises:
        ValueError: shapes differ or are not 2-D.
    """
    source = np.ascontiguousarray(source, dtype=np.float32)
    target = np.ascontiguousarray(target, dtype=np.float32)
    if source.ndim != 2 or source.shape != target.shape:
        raise ValueError(f"source and target must both be [N, d], got {source.shape} and {target.shape}")
    if (walk_index is None) != (walk_bonus is None):
        raise ValueError("give both walk_index and walk_bonus, or neither")
    nodes = [
        helper.make_node("Gather", ["source", INPUT_QUERY], ["s"], axis=0),
        helper.make_node("MatMul", ["s", "target_t"], ["dots"]),
        helper.make_node("Mul", ["dots", "scale"],
                         ["embedding_scores" if walk_index is not None else "scores"]),
        helper.make_node("Unsqueeze", [INPUT_QUERY, "axis_one"], ["query_column"]),
        helper.make_node("Shape", ["query_column"], ["column_shape"]),
        helper.make_node("Expand", ["minus_inf", "column_shape"], ["minus_inf_column"]),
        helper.make_node("ScatterElements", ["scores", "query_column", "minus_inf_column"], ["masked"],
                         axis=1),
        helper.make_node("TopK", ["masked", INPUT_K], [OUTPUT_SCORES, OUTPUT_IDS], axis=1, largest=1,
                         sorted=1),
    ]
    initializers = [
        numpy_helper.from_array(source, "source"),
        numpy_helper.from_array(np.ascontiguousarray(target.T), "target_t"),
        numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_one"),
        numpy_helper.from_array(np.array([[-np.inf]], dtype=np.float32), "minus_inf"),
    ]
    if walk_index is not None:
        walk_index = np.ascontiguousarray(walk_index, dtype=np.int32)
        walk_bonus = np.ascontiguousarray(walk_bonus, dtype=np.float32)
        if (walk_index.shape != walk_bonus.shape or walk_index.ndim != 2
                or walk_index.shape[0] != source.shape[0]):
            raise ValueError(f"walk_index and walk_bonus must both be [N, w] with N = {source.shape[0]}, "
                             f"got {walk_index.shape} and {walk_bonus.shape}")
        nodes[3:3] = [
            helper.make_node("Gather", ["walk_index", INPUT_QUERY], ["query_walk_index"], axis=0),
            helper.make_node("Gather", ["walk_bonus", INPUT_QUERY], ["query_walk_bonus"], axis=0),
            helper.make_node("ScatterElements", ["embedding_scores", "query_walk_index", "query_walk_bonus"],
                             ["scores"], axis=1, reduction="add"),
        ]
        initializers += [numpy_helper.from_array(walk_index, "walk_index"),
                         numpy_helper.from_array(walk_bonus, "walk_bonus")]
    graph = helper.make_graph(
        nodes, "blade_top_k",
        inputs=[helper.make_tensor_value_info(INPUT_QUERY, TensorProto.INT64, ["batch"]),
                helper.make_tensor_value_info(INPUT_K, TensorProto.INT64, [1])],
        outputs=[helper.make_tensor_value_info(OUTPUT_IDS, TensorProto.INT64, ["batch", "k"]),
                 helper.make_tensor_value_info(OUTPUT_SCORES, TensorProto.FLOAT, ["batch", "k"])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="blade-recsys")
    model.ir_version = 8  # readable by onnxruntime >= 1.10
    onnx.checker.check_model(model, full_check=True)
    return model
