"""ONNX scorer vs PyTorch, the pyfunc's pieces, providers, and `blade score` on bad and odd input."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from models.onnx_scorer import build_scorer
from models.scoring import top_k
from pipeline.export import ParityError, check_parity
from pipeline.readers import InputError
from pipeline.recommender import Catalogue, OnnxRecommender, ProviderError, onnx_session
from pipeline.score import read_queries, score

# 4 nodes, d = 2. Scores scale * s_q . t_v with scale 2:
#   s_0 = (1, 0): t = (3,0) (0,1) (1,1) (-1,0) -> 6, 0, 2, -2 ; node 0 itself excluded
SOURCE = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0]], dtype=np.float32)
TARGET = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], dtype=np.float32)


def _session(tmp_path, source=SOURCE, target=TARGET, scale=2.0):
    path = tmp_path / "scorer.onnx"
    onnx.save_model(build_scorer(source, target, scale), path)
    return onnx_session(path, "cpu")


def test_onnx_top_k_by_hand(tmp_path):
    session = _session(tmp_path)
    ids, scores = session.run(None, {"query": np.array([0, 1], dtype=np.int64), "k": np.array([2])})
    # query 0: node 0 excluded; best are node 2 (2 * 1 = 2) then node 1 (0)
    # query 1: s_1 = (0, 1): scores 0, [excluded], 2, 0 -> node 2 (2), then a tie of 0 (node 0 or 3)
    assert ids[0].tolist() == [2, 1] and scores[0].tolist() == [2.0, 0.0]
    assert ids[1, 0] == 2 and ids[1, 1] in (0, 3) and scores[1].tolist() == [2.0, 0.0]


@pytest.mark.parametrize("batch", [1, 7, 300])
def test_onnx_matches_pytorch_on_random_embeddings(tmp_path, batch):
    rng = np.random.default_rng(batch)
    source = rng.normal(size=(500, 16)).astype(np.float32)
    target = rng.normal(size=(500, 16)).astype(np.float32)
    session = _session(tmp_path, source, target, 3.0)
    queries = rng.integers(0, 500, size=batch)
    result = check_parity(session, torch.from_numpy(source), torch.from_numpy(target), 3.0, queries, 20, 1e-5)
    assert result["queries"] == batch and result["max_relative_score_error"] <= 1e-5


def test_parity_check_refuses_a_different_model(tmp_path):
    session = _session(tmp_path)
    with pytest.raises(ParityError):
        check_parity(session, torch.from_numpy(SOURCE), torch.from_numpy(TARGET), 1.0,  # scale differs
                     np.array([0, 1, 2]), 2, 1e-5)


def test_pytorch_reference_excludes_the_query():
    ids, scores = top_k(torch.from_numpy(SOURCE), torch.from_numpy(TARGET), 2.0, torch.tensor([0]), 3)
    assert ids.tolist() == [[2, 1, 3]] and scores.tolist() == [[2.0, 0.0, -2.0]]


def test_auto_device_falls_back_to_cpu_and_says_so(tmp_path, caplog):
    onnx.save_model(build_scorer(SOURCE, TARGET, 1.0), tmp_path / "m.onnx")
    with caplog.at_level(logging.INFO, logger="pipeline.recommender"):
        session = onnx_session(tmp_path / "m.onnx", "auto")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the fallback cannot be observed")
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "providers in use: CPUExecutionProvider" in caplog.text


def test_cuda_device_without_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    onnx.save_model(build_scorer(SOURCE, TARGET, 1.0), tmp_path / "m.onnx")
    with pytest.raises(ProviderError, match="cannot use CUDA"):
        onnx_session(tmp_path / "m.onnx", "cuda")


@pytest.fixture
def recommender(tmp_path) -> OnnxRecommender:
    # known links: 0 -> 2
    Catalogue.save(tmp_path / "catalogue.npz", np.array(["p0", "p1", "p2", "p3"]),
                   np.array([0, 1, 1, 1, 1]), np.array([2]))
    return OnnxRecommender(_session(tmp_path), Catalogue(tmp_path / "catalogue.npz"))


def test_exclude_linked_drops_known_links(recommender):
    ids, _ = recommender.top_k(np.array([0]), 2)
    assert ids.tolist() == [[2, 1]]
    ids, scores = recommender.top_k(np.array([0]), 2, exclude_linked=True)
    assert ids.tolist() == [[1, 3]] and scores.tolist() == [[0.0, -2.0]]


def test_score_writes_rows_and_sets_unknown_ids_aside(recommender, tmp_path):
    output = tmp_path / "recs.parquet"
    result = score(recommender, np.array(["p0", "nope", "p3", "gone"]), output, k=2, chunk_size=1,
                   progress=False)
    assert result["scored"] == 2 and result["unknown"] == 2 and result["rows"] == 4
    recs = pd.read_parquet(output)
    assert recs.columns.tolist() == ["query_id", "rank", "product_id", "score"]
    assert recs[recs.query_id == "p0"].product_id.tolist() == ["p2", "p1"]
    assert recs[recs.query_id == "p0"]["rank"].tolist() == [1, 2]
    assert pd.read_csv(tmp_path / "recs.unknown.csv").query_id.tolist() == ["nope", "gone"]


def test_empty_input_writes_an_empty_file(recommender, tmp_path):
    result = score(recommender, np.array([], dtype=str), tmp_path / "empty.parquet", k=2, progress=False)
    assert result["rows"] == 0 and len(pd.read_parquet(tmp_path / "empty.parquet")) == 0


class _FailsOnSecondChunk(OnnxRecommender):
    def __init__(self, inner: OnnxRecommender) -> None:
        super().__init__(inner.session, inner.catalogue)
        self.calls = 0

    def recommendations(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("disk full")
        return super().recommendations(*args, **kwargs)


def test_a_failure_midway_leaves_no_partial_output(recommender, tmp_path):
    output = tmp_path / "recs.parquet"
    with pytest.raises(RuntimeError, match="disk full"):
        score(_FailsOnSecondChunk(recommender), np.array(["p0", "p1", "p2"]), output, k=2, chunk_size=1,
              progress=False)
    assert not output.exists()
    assert list(tmp_path.glob("*.tmp")) == []


def test_read_queries_accepts_csv_parquet_and_a_single_unnamed_column(tmp_path):
    (tmp_path / "q.csv").write_text("query_id,other\n0042,x\n7,y\n")
    assert read_queries(tmp_path / "q.csv").tolist() == ["0042", "7"]  # ids stay strings
    pd.DataFrame({"query_id": ["a", "b"]}).to_parquet(tmp_path / "q.parquet")
    assert read_queries(tmp_path / "q.parquet").tolist() == ["a", "b"]
    (tmp_path / "ids.csv").write_text("product\n5\n")
    assert read_queries(tmp_path / "ids.csv").tolist() == ["5"]


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "", "cannot read query ids"),
    ("two.csv", "a,b\n1,2\n", "expected a 'query_id' column"),
    ("blank.csv", "query_id\n1\n\n", None),
    ("hole.csv", "query_id,x\n1,a\n,b\n", "line 3: empty query id"),
    ("bad.parquet", "not parquet", "cannot read query ids"),
    ("q.json", "[]", "unknown query file type"),
])
def test_malformed_query_files_are_named_with_what_was_expected(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    if message is None:  # a trailing blank line is not a query
        assert read_queries(tmp_path / name).tolist() == ["1"]
        return
    with pytest.raises(InputError, match=message):
        read_queries(tmp_path / name)


def test_missing_query_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_queries(tmp_path / "nope.csv")


def test_faiss_ivf_with_one_cell_is_exact_and_fewer_probes_lose_recall(tmp_path):
    from pipeline.recommender import FaissRecommender, recall_at_k

    rng = np.random.default_rng(0)
    source = rng.normal(size=(2000, 8)).astype(np.float32)
    target = rng.normal(size=(2000, 8)).astype(np.float32)
    onnx.save_model(build_scorer(source, target, 2.0), tmp_path / "scorer.onnx")
    Catalogue.save(tmp_path / "c.npz", np.array([f"p{i}" for i in range(2000)]),
                   np.zeros(2001, dtype=np.int64), np.array([], dtype=np.int64))
    catalogue = Catalogue(tmp_path / "c.npz")
    exact = OnnxRecommender(onnx_session(tmp_path / "scorer.onnx", "cpu"), catalogue)
    queries = np.arange(0, 2000, 10)
    one_cell = FaissRecommender(tmp_path / "scorer.onnx", catalogue, nlist=1)
    assert recall_at_k(one_cell, exact, queries, 10) == 1.0  # one cell = exhaustive search
    ids, scores = one_cell.top_k(queries[:3], 10)
    exact_ids, exact_scores = exact.top_k(queries[:3], 10)
    assert (ids != queries[:3, None]).all()  # the query itself is dropped
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-5)  # same scale as the ONNX scores
    sparse = FaissRecommender(tmp_path / "scorer.onnx", catalogue, nlist=64, nprobe=1)
    assert 0.0 < recall_at_k(sparse, exact, queries, 10) < 1.0


# The walk channel on the 4-node model: query 0's table holds node 3 (bonus 5) and node 1
# (bonus 0.5); scores 6*, 0, 2, -2 (* excluded) become 0 + 0.5, 2, -2 + 5 -> 3 (3), 2 (2), 1 (0.5)
WALK_INDEX = np.array([[3, 1], [1, 1], [2, 2], [3, 3]], dtype=np.int32)  # padding: the node itself
WALK_BONUS = np.array([[5.0, 0.5], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)


def test_onnx_scorer_adds_the_walk_channel_by_hand(tmp_path):
    onnx.save_model(build_scorer(SOURCE, TARGET, 2.0, WALK_INDEX, WALK_BONUS), tmp_path / "walk.onnx")
    session = onnx_session(tmp_path / "walk.onnx", "cpu")
    ids, scores = session.run(None, {"query": np.array([0], dtype=np.int64), "k": np.array([3])})
    assert ids.tolist() == [[3, 2, 1]] and scores.tolist() == [[3.0, 2.0, 0.5]]
    torch_ids, torch_scores = top_k(torch.from_numpy(SOURCE), torch.from_numpy(TARGET), 2.0,
                                    torch.tensor([0]), 3, walk_index=torch.from_numpy(WALK_INDEX),
                                    walk_bonus=torch.from_numpy(WALK_BONUS))
    assert torch_ids.tolist() == [[3, 2, 1]] and torch_scores.tolist() == [[3.0, 2.0, 0.5]]
    with pytest.raises(ValueError, match="both"):
        build_scorer(SOURCE, TARGET, 2.0, WALK_INDEX, None)


def test_parity_with_a_fitted_walk_channel_on_random_embeddings(tmp_path):
    from models.walk_channel import WalkChannel, top_walk_table

    rng = np.random.default_rng(5)
    source = rng.normal(size=(300, 8)).astype(np.float32)
    target = rng.normal(size=(300, 8)).astype(np.float32)
    edges = torch.from_numpy(rng.integers(0, 300, size=(2, 1200)))
    table = top_walk_table(edges, 300, (1, 3, 3), width=16)
    walk = WalkChannel(table.index, table.value, weight=2.0, floor=0.01)
    onnx.save_model(build_scorer(source, target, 1.5, walk.index.numpy(), walk.bonus_table().numpy()),
                    tmp_path / "walk.onnx")
    session = onnx_session(tmp_path / "walk.onnx", "cpu")
    queries = rng.integers(0, 300, size=50)
    result = check_parity(session, torch.from_numpy(source), torch.from_numpy(target), 1.5, queries, 20,
                          1e-5, walk)
    assert result["max_relative_score_error"] <= 1e-5
    # without the channel the PyTorch reference differs: the check can fail
    with pytest.raises(ParityError):
        check_parity(session, torch.from_numpy(source), torch.from_numpy(target), 1.5, queries, 20, 1e-5)
    # the FAISS path reads the tables from the same file and, with one cell, is exact
    pytest.importorskip("faiss")
    from pipeline.recommender import FaissRecommender, recall_at_k

    Catalogue.save(tmp_path / "c.npz", np.array([f"p{i}" for i in range(300)]),
                   np.zeros(301, dtype=np.int64), np.array([], dtype=np.int64))
    catalogue = Catalogue(tmp_path / "c.npz")
    exact = OnnxRecommender(session, catalogue)
    one_cell = FaissRecommender(tmp_path / "walk.onnx", catalogue, nlist=1)
    assert recall_at_k(one_cell, exact, queries, 10) == 1.0
    np.testing.assert_allclose(one_cell.top_k(queries, 10)[1], exact.top_k(queries, 10)[1], rtol=1e-5)


@pytest.mark.parametrize("walk", [False, True])
def test_faiss_never_returns_its_padding_when_the_probed_cells_are_short(tmp_path, walk):
    from pipeline.recommender import FaissRecommender

    # 40 products in 8 cells, one probed: about 5 products per cell, k = 20 needs more
    rng = np.random.default_rng(1)
    source = rng.normal(size=(40, 4)).astype(np.float32)
    target = rng.normal(size=(40, 4)).astype(np.float32)
    tables = (np.tile(np.arange(40, dtype=np.int32)[:, None], (1, 2)), np.zeros((40, 2), np.float32))
    onnx.save_model(build_scorer(source, target, 2.0, *(tables if walk else ())), tmp_path / "s.onnx")
    Catalogue.save(tmp_path / "c.npz", np.array([f"p{i}" for i in range(40)]),
                   np.zeros(41, dtype=np.int64), np.array([], dtype=np.int64))
    catalogue = Catalogue(tmp_path / "c.npz")
    approximate = FaissRecommender(tmp_path / "s.onnx", catalogue, nlist=8, nprobe=1)
    exact = OnnxRecommender(onnx_session(tmp_path / "s.onnx", "cpu"), catalogue)
    queries = np.arange(40)
    ids, scores = approximate.top_k(queries, 20)
    assert (ids >= 0).all() and np.isfinite(scores).all() and (ids != queries[:, None]).all()
    assert all(len(set(row)) == 20 for row in ids.tolist())
    exact_ids, exact_scores = exact.top_k(queries, 20)
    np.testing.assert_allclose(np.sort(scores, axis=1), np.sort(exact_scores, axis=1), rtol=1e-5)


def test_the_served_names_are_the_scorers():
    from models import onnx_scorer
    from pipeline import recommender

    names = ("INPUT_QUERY", "INPUT_K", "OUTPUT_IDS", "OUTPUT_SCORES")
    assert [getattr(recommender, name) for name in names] == [getattr(onnx_scorer, name) for name in names]


def _pyfunc(tmp_path, **limits):
    from pipeline.recommender import BladeRecommender

    onnx.save_model(build_scorer(SOURCE, TARGET, 2.0), tmp_path / "scorer.onnx")
    Catalogue.save(tmp_path / "catalogue.npz", np.array(["p0", "p1", "p2", "p3"]),
                   np.array([0, 1, 1, 1, 1]), np.array([2]))
    model = BladeRecommender()
    context = type("Context", (), {"artifacts": {"scorer": str(tmp_path / "scorer.onnx"),
                                                 "catalogue": str(tmp_path / "catalogue.npz")},
                                   "model_config": limits})()
    model.load_context(context)
    return model


@pytest.mark.parametrize(("frame", "params", "message"), [
    ({"query_id": ["p0"]}, {"k": -1}, r"params k must be an integer from 1 to 3, got -1"),
    ({"query_id": ["p0"]}, {"k": 2 ** 70}, r"params k must be an integer from 1 to 3, got 11805916207174113"),
    ({"query_id": ["p0"]}, {"k": "2"}, r"params k must be an integer"),
    ({"query_id": ["p0"]}, {"k": 1, "exclude_linked": "yes"}, r"params exclude_linked must be true or false"),
    ({"query_id": ["p0"]}, {"k": 1, "output": "table"}, r"params output must be 'rows' or 'lists'"),
    ({"query_id": ["p0"] * 6}, {"k": 1}, r"at most 5 query ids per request, got 6"),
    ({"id": ["p0"]}, {"k": 1}, r"input needs a column 'query_id', got \['id'\]"),
])
def test_the_served_model_refuses_requests_outside_its_limits(tmp_path, frame, params, message):
    from pipeline.recommender import RequestError

    model = _pyfunc(tmp_path, max_k=3, max_queries=5, chunk_size=2)
    with pytest.raises(RequestError, match=message) as refused:
        model.predict(None, pd.DataFrame(frame), params)
    assert refused.value.get_http_status_code() == 400


def test_the_served_model_scores_in_chunks_with_the_same_answer(tmp_path):
    queries = pd.DataFrame({"query_id": ["p0", "nope", "p1", "p2", "p3"]})
    whole = _pyfunc(tmp_path, chunk_size=100).predict(None, queries, {"k": 2})
    chunked = _pyfunc(tmp_path, chunk_size=1).predict(None, queries, {"k": 2})
    pd.testing.assert_frame_equal(whole, chunked)
    # query p0: node 2 (score 2) then node 1 (0), as in test_onnx_top_k_by_hand
    assert whole[whole.query_id == "p0"].product_id.tolist() == ["p2", "p1"] and len(whole) == 8
    lists = _pyfunc(tmp_path, chunk_size=1).predict(None, queries, {"k": 2, "output": "lists"})
    assert lists.product_ids.tolist()[:2] == [["p2", "p1"], []]
