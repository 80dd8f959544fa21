"""The target prior's refit: gamma + the shift of a grid with the best validation MRR@10."""

from __future__ import annotations

import math

import pytest
import torch

from models.encoder import score
from models.metrics import out_neighbour_csr
from models.target_prior import fit_target_prior
from pipeline.artifacts import SplitGraph
from pipeline.train import fit_variant
from tests.test_full_graph import FULL
from tests.test_train import NEIGHBOURHOOD, TRAIN, VAL

# 0 -> 1, 1 -> 3, 2 -> 3, 4 -> 3: in-degrees 0, 1, 0, 3, 0
HAND_TRAIN = torch.tensor([[0, 1, 2, 4], [1, 3, 3, 3]])
LOG_IN = torch.log1p(torch.tensor([0.0, 1.0, 0.0, 3.0, 0.0]))


def _fit(rows, edges, shifts=(-1.0, -0.25, 0.0, 0.25, 1.0)):
    indptr, indices = out_neighbour_csr(HAND_TRAIN, 5)
    return fit_target_prior(rows, LOG_IN, edges, indptr, indices, shifts)


def test_popularity_decides_when_the_embeddings_know_nothing():
    # query 0 excludes itself and its out-neighbour 1: candidates 2, 3, 4. With equal scores the
    # target 3 ties with 2 and 4 (mid-rank 2, MRR 1/2); any positive shift puts it first (MRR 1),
    # any negative one last (rank 3); the smallest magnitude wins the tie between 0.25 and 1
    fit = _fit(lambda queries: torch.zeros(queries.numel(), 5), torch.tensor([[0], [3]]))
    assert fit["mrr@10_without"] == 0.5
    assert fit["shift"] == 0.25 and fit["mrr@10"] == 1.0
    assert dict(fit["grid"]) == pytest.approx({-1.0: 1 / 3, -0.25: 1 / 3, 0.0: 0.5, 0.25: 1.0, 1.0: 1.0},
                                              abs=1e-6)


def test_embeddings_that_rank_the_target_first_keep_gamma():
    # the embeddings put target 2 (in-degree 0) one point above 3 and 4: a shift of 1 lifts 3
    # by log 4 = 1.39 > 1 above it (rank 2, MRR 1/2); 0.25 (0.35) does not, nor do negative shifts
    def rows(queries):
        scores = torch.zeros(queries.numel(), 5)
        scores[:, 2] = 1.0
        return scores

    fit = _fit(rows, torch.tensor([[0], [2]]))
    assert fit["shift"] == 0.0 and fit["mrr@10"] == fit["mrr@10_without"] == 1.0
    assert dict(fit["grid"])[1.0] == 0.5 and math.log(4) > 1.0


@pytest.fixture
def graph() -> SplitGraph:
    return SplitGraph(num_nodes=10, product_ids=None, train=TRAIN, val=VAL, test=VAL[:, :0], features=None)


def test_refit_moves_gamma_by_the_shift_and_the_model_then_scores_what_the_fit_measured(graph):
    module = fit_variant("blade", graph, NEIGHBOURHOOD, dict(FULL, max_epochs=2), seed=0,
                         checkpoint_dir=None, progress=False, walk_channel=False).module
    scale = float(module.encoder.scale.detach())
    before = float(module.encoder.target_prior.weight.detach())
    scores_before = score(*module.embeddings(), scale)
    fit = module.refit_target_prior()
    assert fit["shift"] != 0.0  # this graph's validation edges want another gamma (-2: in-degree hurts)
    assert fit["gamma_before"] == pytest.approx(before)
    assert float(module.encoder.target_prior.weight.detach()) == pytest.approx(before + fit["shift"])
    assert module.validation_metrics()["mrr@10"] == pytest.approx(fit["mrr@10"], abs=1e-6)
    assert fit["mrr@10"] >= fit["mrr@10_without"]
    # every score u -> v moved by shift x log(1 + d_in(v)), the same in every query row
    in_degree = torch.bincount(graph.train[1], minlength=graph.num_nodes).float()
    moved = score(*module.embeddings(), scale) - scores_before
    torch.testing.assert_close(moved, (fit["shift"] * torch.log1p(in_degree)).expand_as(moved),
                               atol=1e-4, rtol=1e-4)


def test_training_refits_the_prior_only_when_asked(graph):
    kept = fit_variant("blade", graph, NEIGHBOURHOOD, dict(FULL, max_epochs=2, refit_target_prior=False),
                       seed=0, checkpoint_dir=None, progress=False)
    refit = fit_variant("blade", graph, NEIGHBOURHOOD, dict(FULL, max_epochs=2, refit_target_prior=True),
                        seed=0, checkpoint_dir=None, progress=False)
    assert kept.target_prior is None
    assert refit.target_prior is not None
    assert float(refit.module.encoder.target_prior.weight.detach()) == pytest.approx(
        float(kept.module.encoder.target_prior.weight.detach()) + refit.target_prior["shift"])
