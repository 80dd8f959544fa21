"""Full-graph training: similarity pairs, the sampled-softmax loss, the target prior, the
per-epoch message-passing / supervision split, and that training from a random start learns."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import pytorch_lightning as pl
import torch

from models.batching import aggregation_matrix
from models.channels import SourcePrior
from models.encoder import BladeEncoder, score
from models.full_graph import FullGraphLinkPrediction, similarity_pairs
from models.loss import sampled_softmax_loss, similarity_softmax_loss
from models.variants import get_variant
from pipeline.artifacts import SplitGraph
from pipeline.train import build_module, fit_variant
from tests.test_encoder import small_config
from tests.test_train import CONFIG, NEIGHBOURHOOD, TRAIN, VAL, validation_score

FULL = dict(CONFIG, supervision_fraction=0.25, batch_size=4, loss="softmax",
            negative_pool=8, similarity="undirected", lambda_similarity=0.5, target_prior="degree",
            lambda_asym=0.5)


@pytest.fixture
def graph() -> SplitGraph:
    return SplitGraph(num_nodes=10, product_ids=None, train=TRAIN, val=VAL, test=VAL[:, :0], features=None)


def test_similarity_pairs_by_hand():
    # edges: 0 -> 1, 1 -> 0, 1 -> 2, 2 -> 2 (a loop)
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 2]])
    index, path = similarity_pairs(edges, 3, "reciprocal")
    # only 0 <-> 1 is linked both ways; each direction rests on both of its edges
    assert index.T.tolist() == [[0, 1], [1, 0]]
    assert path.tolist() == [[0, 1], [1, 0]]
    index, path = similarity_pairs(edges, 3, "undirected")
    # every non-loop edge, both ways, resting on that edge
    assert sorted(zip(index.T.tolist(), path[:, 0].tolist())) == sorted(
        [([0, 1], 0), ([1, 0], 1), ([1, 2], 2), ([1, 0], 0), ([0, 1], 1), ([2, 1], 2)])
    with pytest.raises(ValueError, match="similarity must be one of"):
        similarity_pairs(edges, 3, "cosine")


def test_sampled_softmax_loss_by_hand():
    # dim 1: s_0 = 1, t_1 = 1, t_2 = 0; edge 0 -> 1, pool [2], scale 1:
    # x(0,1) = 1, x(0,2) = 0 -> CE = -1 + log(e + 1) = log(1 + 1/e) = 0.3133
    # reverse x(1,0) = s_1 t_0 = 0 -> softplus(0 - 1) = log(1 + 1/e) as well
    s = torch.tensor([[1.0], [0.0], [0.0]])
    t = torch.tensor([[0.0], [1.0], [0.0]])
    edges = torch.tensor([[0], [1]])
    expected = math.log(1 + math.exp(-1))
    terms = sampled_softmax_loss(s, t, edges, torch.tensor([2]), torch.tensor([True]), 0.5, 1.0)
    assert terms.positive.item() + terms.negative.item() == pytest.approx(expected, abs=1e-6)
    assert terms.asymmetric.item() == pytest.approx(expected, abs=1e-6)
    assert terms.total.item() == pytest.approx(1.5 * expected, abs=1e-6)
    # not one-way: no direction term
    terms = sampled_softmax_loss(s, t, edges, torch.tensor([2]), torch.tensor([False]), 0.5, 1.0)
    assert terms.asymmetric.item() == 0.0
    # similarity, h = s: pair (0, 1) against pool [2]: x(0,1) = 0, x(0,2) = 0 -> log 2
    assert similarity_softmax_loss(s, edges, torch.tensor([2])).item() == pytest.approx(math.log(2))


def _identity_encoder(similarity: bool, prior: str) -> BladeEncoder:
    config = small_config(dim=2, num_layers=1, activation="none", weight_init="identity", score_scale=2.0,
                          similarity="undirected" if similarity else "none", target_prior=prior)
    encoder = BladeEncoder(config, 3)
    with torch.no_grad():
        encoder.source_input.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        encoder.target_input.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, -1.0]]))
    return encoder


def _dense(matrix: torch.Tensor):
    from models.batching import aggregation_matrix
    return aggregation_matrix(matrix.nonzero().T, matrix.shape[0])


def test_similarity_channel_adds_the_same_role_of_similar_nodes():
    encoder = _identity_encoder(similarity=True, prior="none")
    empty = _dense(torch.zeros(3, 3))
    similar = _dense(torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]]))  # 0 <-> 1
    s, t = encoder(empty, empty, similarity_adj=similar)
    # identity weights, no directed neighbours: s_0 = norm(s0_0 + s0_1) = norm([1, 1])
    assert torch.allclose(s[0], torch.tensor([1.0, 1.0]) / 2**0.5)
    assert torch.allclose(t[0], torch.tensor([1.0, 1.0]) / 2**0.5)  # t0_0 + t0_1 = [1, 1]
    assert torch.allclose(s[2], torch.tensor([1.0, 1.0]) / 2**0.5)  # no similar node: itself
    with pytest.raises(ValueError, match="similarity_adj"):
        encoder(empty, empty)


def test_target_prior_adds_gamma_log_in_degree_to_every_score():
    encoder = _identity_encoder(similarity=False, prior="degree")
    empty = _dense(torch.zeros(3, 3))
    plain_s, plain_t = _identity_encoder(False, "none")(empty, empty)
    with torch.no_grad():
        encoder.target_prior.weight.fill_(0.5)
    in_degree = torch.tensor([0.0, 3.0, 1.0])
    s, t = encoder(empty, empty, target_in_degree=in_degree)
    assert s.shape == (3, 3)  # one more column carries the prior
    expected = score(plain_s, plain_t, 2.0) + 0.5 * torch.log1p(in_degree)[None, :]
    assert torch.allclose(score(s, t, encoder.scale), expected, atol=1e-6)


def test_epoch_split_keeps_supervision_edges_out_of_message_passing(graph):
    # n_max large and h_max 1: every MP edge is in the sampled neighbourhood
    hood = dict(NEIGHBOURHOOD, n_min=10, n_max=10, h_max=1)
    module = build_module(get_variant("blade"), graph, hood, FULL, seed=3)
    assert isinstance(module, FullGraphLinkPrediction)
    assert module.num_supervision == 3 and module.steps_per_epoch == 1  # round(13 * 0.25)
    module.on_train_epoch_start()
    supervision = set(map(tuple, TRAIN[:, module._supervision].T.tolist()))
    message_passing = set(map(tuple, TRAIN.T.tolist())) - supervision
    out = module._graph.out_adj[0].to_dense()
    assert {tuple(pair) for pair in out.nonzero().tolist()} == message_passing
    similar = module._graph.similarity_adj.to_dense()
    assert {tuple(pair) for pair in similar.nonzero().tolist()} == (
        message_passing | {(v, u) for u, v in message_passing})
    in_degree = torch.zeros(10)
    for _, v in message_passing:
        in_degree[v] += 1
    assert torch.equal(module._graph.target_in_degree, in_degree)


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.losses.append(float(trainer.callback_metrics["train_loss"]))


def test_full_graph_training_from_a_random_start_lowers_the_loss(graph):
    config = dict(FULL, id_init="random", weight_init="random", max_epochs=30, early_stopping_patience=100,
                  learning_rate=0.05, supervision_fraction=0.5, batch_size=64)
    losses = _Losses()
    result = fit_variant("blade", graph, NEIGHBOURHOOD, config, seed=0, checkpoint_dir=None,
                         callbacks=[losses], progress=False)
    assert result.epochs == 30
    # one step per epoch: the first loss is the random start's (5.9 here), later ones about 4.2
    assert sum(losses.losses[-10:]) / 10 < 0.85 * losses.losses[0]
    s, t = result.module.embeddings()
    assert s.shape == t.shape == (10, 9)  # dim 8 + the target prior's column


def test_full_graph_training_learns_planted_groups_from_a_random_start():
    # 4 groups of 10 nodes; node i links to the next 3 of its group (i+1, i+2, i+3 mod 10).
    # The edges i -> i+3 of the first 5 nodes of each group are held out for validation.
    train, val = [], []
    for group in range(4):
        for i in range(10):
            for step in (1, 2, 3):
                edge = (group * 10 + i, group * 10 + (i + step) % 10)
                (val if step == 3 and i < 5 else train).append(edge)
    planted = SplitGraph(num_nodes=40, product_ids=None, train=torch.tensor(train).T,
                         val=torch.tensor(val).T, test=torch.zeros(2, 0, dtype=torch.long), features=None)
    config = dict(FULL, id_init="random", weight_init="random", activation="none", max_epochs=25,
                  early_stopping_patience=100, learning_rate=0.05, batch_size=64, negative_pool=16,
                  supervision_fraction=0.2, val_queries=20)
    untrained = validation_score(build_module(get_variant("blade"), planted, NEIGHBOURHOOD, config, 0))
    result = fit_variant("blade", planted, NEIGHBOURHOOD, config, seed=0, checkpoint_dir=None, progress=False)
    # untrained 0.138 (a random ranking of 40 nodes: about 0.07), trained 0.77 here
    assert untrained < 0.2 and result.best_score > 0.6


def test_full_graph_training_is_deterministic_per_seed(graph):
    first = fit_variant("blade", graph, NEIGHBOURHOOD, FULL, seed=1, checkpoint_dir=None, progress=False)
    second = fit_variant("blade", graph, NEIGHBOURHOOD, FULL, seed=1, checkpoint_dir=None, progress=False)
    assert torch.equal(first.module.embeddings()[0], second.module.embeddings()[0])


@pytest.mark.parametrize("name", ["no_adaptive", "daemon", "sage"])
def test_every_variant_trains_full_graph(graph, name):
    result = fit_variant(name, graph, NEIGHBOURHOOD, dict(FULL, max_epochs=2, loss="logistic"), 0, None,
                         progress=False)
    s, t = result.module.embeddings()
    assert torch.isfinite(s).all() and torch.equal(s, t) == (name == "sage")
    assert s.shape[1] == (8 if name == "sage" else 9)


def test_shared_input_ties_the_two_layer_zero_tables():
    encoder = BladeEncoder(small_config(dim=2, num_layers=1, shared_input=True), 3)
    assert encoder.target_input is encoder.source_input
    assert len(encoder.id_tables()) == 1
    # one [3, 2] table, W (2 x 2 + bias 2), W_self (2 x 2)
    assert sum(p.numel() for p in encoder.parameters()) == 3 * 2 + (2 * 2 + 2) + 2 * 2


def test_source_prior_shifts_whole_query_rows_and_only_the_direction_loss_trains_it():
    encoder = _identity_encoder(similarity=False, prior="degree")
    encoder.source_prior = SourcePrior()
    empty = _dense(torch.zeros(3, 3))
    in_degree = torch.tensor([0.0, 3.0, 1.0])
    with torch.no_grad():
        encoder.target_prior.weight.fill_(0.5)
        base = score(*encoder(empty, empty, target_in_degree=in_degree), encoder.scale)
        encoder.source_prior.weight.fill_(-2.0)
        s, t = encoder(empty, empty, target_in_degree=in_degree)
    assert s.shape == (3, 4)  # dim 2 + target prior + source prior
    shifted = score(s, t, encoder.scale)
    # row u moves by -2 log(1 + d_in(u)): every query's ranking stays, x(u->v) - x(v->u) changes
    assert torch.allclose(shifted, base - 2.0 * torch.log1p(in_degree)[:, None], atol=1e-5)
    # the ranking loss is blind to it: its gradient is zero without the direction term
    s, t = encoder(empty, empty, target_in_degree=in_degree)
    edges, pool, one_way = torch.tensor([[0, 2], [1, 1]]), torch.tensor([0, 1, 2]), torch.tensor([True, True])
    sampled_softmax_loss(s, t, edges, pool, one_way, 0.0, encoder.scale).total.backward()
    assert encoder.source_prior.weight.grad.abs().item() < 1e-6
    encoder.zero_grad()
    s, t = encoder(empty, empty, target_in_degree=in_degree)
    sampled_softmax_loss(s, t, edges, pool, one_way, 1.0, encoder.scale).total.backward()
    assert encoder.source_prior.weight.grad.abs().item() > 1e-3


def test_fit_source_prior_by_hand():
    from models.direction import fit_source_prior
    # the embeddings cannot tell direction (every score 0); the targets are the popular ends:
    # l_u = log(1 + d_in(u)) in {0, 0.5}, l_v in {1, 2}. Any delta < 0 puts every forward score
    # above every backward one (AUC 1 against 0.5 at delta = 0); the smallest such grid value wins.
    zeros = torch.zeros(2)
    fit = fit_source_prior(zeros, zeros, torch.tensor([0.0, 0.5]), torch.tensor([1.0, 2.0]), 0.0)
    assert fit == {"delta": -0.125, "auc": 1.0, "delta_before": 0.0, "auc_before": 0.5, "rejected": 0}
    # The global check: held-out edges scoring 1 from sources with l = 8, non-edges scoring 0
    # from l = 0. delta = -0.125 takes the edges to 1 - 1 = 0, level with the pool: global AUC
    # 1 -> 0.5, so it and every larger negative delta (all 12 with direction AUC 1) are turned
    # down and delta stays 0.
    checked = fit_source_prior(zeros, zeros, torch.tensor([0.0, 0.5]), torch.tensor([1.0, 2.0]), 0.0,
                               linked=(torch.ones(2), torch.full((2,), 8.0)),
                               unlinked=(torch.zeros(3), torch.zeros(3)))
    assert checked == {"delta": 0.0, "auc": 0.5, "delta_before": 0.0, "auc_before": 0.5, "rejected": 12}
    # edges from sources with l = 1: delta = -0.125 leaves them at 0.875 > 0, admissible
    mild = fit_source_prior(zeros, zeros, torch.tensor([0.0, 0.5]), torch.tensor([1.0, 2.0]), 0.0,
                            linked=(torch.ones(2), torch.ones(2)), unlinked=(torch.zeros(3), torch.zeros(3)))
    assert mild["delta"] == -0.125 and mild["rejected"] == 0
    # scores passed in include the current prior (delta = -3): removed first, so the same answer
    # and the current weight is kept on a tie
    fit = fit_source_prior(-3 * torch.tensor([0.0, 0.5]), -3 * torch.tensor([1.0, 2.0]),
                           torch.tensor([0.0, 0.5]), torch.tensor([1.0, 2.0]), -3.0)
    assert fit["delta"] == -3.0 and fit["auc"] == fit["auc_before"] == 1.0


def test_calibration_sets_the_source_prior_and_keeps_rankings(graph):
    config = dict(FULL, source_prior=True, max_epochs=2)
    module = fit_variant("blade", graph, NEIGHBOURHOOD, config, seed=0, checkpoint_dir=None,
                         progress=False).module
    # VAL's one-way edges (reverse in no train/val edge) are the calibration set
    assert module.validation.one_way.shape[1] > 0
    scale = float(module.encoder.scale.detach())
    before = score(*module.embeddings(), scale)
    fit = module.calibrate_direction()
    after = score(*module.embeddings(), scale)
    assert float(module.encoder.source_prior.weight) == fit["delta"] and fit["auc"] >= fit["auc_before"]
    shift = after - before  # a constant per query row (delta change x log(1 + d_in(u))): no ranking moves
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-4)


@pytest.mark.parametrize("factor", [1.0, 10.0])
def test_prior_weights_learn_at_their_own_rate(graph, factor):
    module = build_module(get_variant("blade"), graph, NEIGHBOURHOOD,
                          dict(FULL, source_prior=True, prior_lr_factor=factor), seed=0)
    optimizer = module.configure_optimizers()
    base, priors = optimizer.param_groups
    assert priors["lr"] == pytest.approx(factor * FULL["learning_rate"])
    assert base["lr"] == FULL["learning_rate"]
    assert {id(p) for p in priors["params"]} == {id(module.encoder.target_prior.weight),
                                                 id(module.encoder.source_prior.weight)}
    assert len(base["params"]) + 2 == len(list(module.parameters()))


def test_aggregation_rows_are_the_dense_rows_and_their_transpose():
    index = torch.tensor([[0, 0, 1, 2, 2, 2, 4], [1, 3, 0, 0, 1, 4, 2]])
    full = aggregation_matrix(index, 5)
    nodes = torch.tensor([2, 4, 3])  # any order; node 3 has no neighbours
    part = full.rows(nodes)
    dense = full.to_dense()
    assert part.shape == (3, 5)
    assert torch.equal(part.to_dense(), dense[nodes])
    assert torch.equal(part.transpose.to_dense(), dense[nodes].T)
    # by hand: node 2 averages 0, 1, 4 (1/3 each), node 4 is node 2 itself, node 3 is empty
    assert part.to_dense()[0].tolist() == pytest.approx([1 / 3, 1 / 3, 0, 0, 1 / 3])
    x = torch.randn(5, 2, requires_grad=True)
    (part @ x).sum().backward()
    assert torch.allclose(x.grad, dense[nodes].sum(0)[:, None].expand(5, 2))


@pytest.mark.parametrize("name", ["blade", "sage"])
def test_last_layer_rows_equal_the_full_encoding(graph, name):
    module = build_module(get_variant(name), graph, NEIGHBOURHOOD,
                          dict(FULL, target_prior="node", source_prior=True, num_layers=2), seed=1)
    module.on_train_epoch_start()
    rows = torch.tensor([7, 0, 3, 9])
    s_all, t_all = module.encoder.encode(module._graph)
    s, t = module.encoder.encode(replace(module._graph, last_rows=rows))
    assert torch.allclose(s, s_all[rows], atol=1e-6) and torch.allclose(t, t_all[rows], atol=1e-6)


def test_training_step_loss_and_gradients_equal_the_full_encoding(graph):
    torch.manual_seed(0)
    module = build_module(get_variant("blade"), graph, NEIGHBOURHOOD,
                          dict(FULL, id_init="random", weight_init="random", batch_size=2), seed=2)
    module.log = module.log_dict = lambda *args, **kwargs: None
    module.on_train_epoch_start()
    generator_state = module._negative_generator.get_state()
    loss = module.training_step([torch.tensor([0])], 0)
    loss.backward()
    restricted = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    module.zero_grad()
    # the same step by hand, every node encoded
    module._negative_generator.set_state(generator_state)
    edge_ids = module._supervision[:2]
    positives = module.train_edges[:, edge_ids]
    pool = torch.randint(0, module.num_nodes, (8,), generator=module._negative_generator)
    s, t = module.encoder.encode(module._graph)
    terms = sampled_softmax_loss(s, t, positives, pool, module.one_way[edge_ids], 0.5, module.encoder.scale)
    dim = module.encoder.config.dim
    pairs = positives[:, module.similar_edge[edge_ids]]
    similarity = (similarity_softmax_loss(s[:, :dim], pairs, pool, module.encoder.scale)
                  + similarity_softmax_loss(t[:, :dim], pairs, pool, module.encoder.scale))
    full_loss = terms.total + 0.5 * similarity
    full_loss.backward()
    assert float(loss) == pytest.approx(float(full_loss), rel=1e-5)
    for name, p in module.named_parameters():
        if name in restricted:
            assert torch.allclose(restricted[name], p.grad, atol=1e-6), name
