"""Training on a tiny digraph: determinism, resume after interruption, the NaN guard."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from models.module import TrainingDivergedError
from models.variants import get_variant
from pipeline.artifacts import SplitGraph
from pipeline.train import build_sampler, fit_variant

# Two directed 5-cycles with chords; all edges train except a few held out for validation.
EDGES = [(i, (i + 1) % 5) for i in range(5)] + [(5 + i, 5 + (i + 1) % 5) for i in range(5)]
EDGES += [(0, 5), (2, 7), (4, 9), (1, 3), (6, 8), (3, 0)]
TRAIN = torch.tensor(EDGES[:-3]).T
VAL = torch.tensor(EDGES[-3:]).T

NEIGHBOURHOOD = {"d_min": 1, "alpha": None, "alpha_multiplier": 1.0, "n_min": 1, "n_max": 3,
                 "h_max": 2, "beta": 1.0}
CONFIG = {"dim": 8, "num_layers": 2,
          "self_term": True, "dropout": 0.0, "score_scale": 5.0, "learn_scale": True,
          "num_negatives": 2, "lambda_asym": 1.0, "fixed_fanout": 2,
          "batch_size": 4, "learning_rate": 0.05, "weight_decay": 0.0, "max_epochs": 2,
          "early_stopping_patience": 10, "val_queries": 10, "accelerator": "cpu", "devices": 1,
          # a plain model: no similarity channel, priors or structural start (params.yaml's differ)
          "activation": "relu", "weight_init": "random", "id_init": "random",
          "similarity": "none", "target_prior": "none", "shared_input": False, "source_prior": False,
          "negative_pool": 0, "calibrate_direction": False, "supervision_fraction": 0.2}


@pytest.fixture
def graph() -> SplitGraph:
    return SplitGraph(num_nodes=10, product_ids=None, train=TRAIN, val=VAL,
                      test=VAL[:, :0], features=None)


def test_same_seed_same_model(graph):
    first = fit_variant("blade", graph, NEIGHBOURHOOD, CONFIG, seed=1, checkpoint_dir=None, progress=False)
    second = fit_variant("blade", graph, NEIGHBOURHOOD, CONFIG, seed=1, checkpoint_dir=None, progress=False)
    other = fit_variant("blade", graph, NEIGHBOURHOOD, CONFIG, seed=2, checkpoint_dir=None, progress=False)
    s1, t1 = first.module.embeddings()
    s2, t2 = second.module.embeddings()
    s3, _ = other.module.embeddings()
    assert torch.equal(s1, s2) and torch.equal(t1, t2)
    assert not torch.equal(s1, s3)
    assert first.epochs == 2


def test_interrupted_run_resumes_where_it_stopped(graph, tmp_path):
    # Run 2 epochs with checkpoints, then "rerun" asking for 4: it continues at epoch 2.
    checkpoints = tmp_path / "ckpt"
    fit_variant("blade", graph, NEIGHBOURHOOD, CONFIG, 3, checkpoints, progress=False)
    assert (checkpoints / "last.ckpt").is_file()
    longer = dict(CONFIG, max_epochs=4)
    # a different configuration must not resume from these checkpoints...
    fresh = fit_variant("blade", graph, NEIGHBOURHOOD, longer, 3, checkpoints, progress=False)
    assert fresh.epochs == 4
    # ...the same one does: the full run of 4 epochs is picked up and ends at once
    resumed = fit_variant("blade", graph, NEIGHBOURHOOD, longer, 3, checkpoints, progress=False)
    assert resumed.epochs == 4
    s_fresh, _ = fresh.module.embeddings()
    s_resumed, _ = resumed.module.embeddings()
    assert torch.allclose(s_fresh, s_resumed)


FULL_GRAPH = {"similarity": "undirected", "target_prior": "degree",
              "supervision_fraction": 0.25, "negative_pool": 8}


@pytest.mark.parametrize("extra", [{}, FULL_GRAPH], ids=["plain", "channels"])
def test_uninterrupted_and_resumed_training_agree(graph, tmp_path, extra):
    # both keep the best-validation weights (checkpointed), so they must be the same weights
    config = dict(CONFIG, max_epochs=4, **extra)
    straight = fit_variant("blade", graph, NEIGHBOURHOOD, config, 5, tmp_path / "straight", progress=False)
    checkpoints = tmp_path / "ckpt"
    # "interrupted" after 2 epochs: same configuration except the epoch budget is what stops it
    fit_variant("blade", graph, NEIGHBOURHOOD, config, 5, checkpoints,
                progress=False, callbacks=[_StopAfter(2)])
    resumed = fit_variant("blade", graph, NEIGHBOURHOOD, config, 5, checkpoints, progress=False)
    assert resumed.untrained_score is None and straight.untrained_score is not None
    assert resumed.epochs == 4
    assert resumed.best_score == pytest.approx(straight.best_score)
    assert torch.allclose(straight.module.embeddings()[0], resumed.module.embeddings()[0], atol=1e-5)


class _StopAfter(pl.Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_nan_loss_stops_with_a_clear_message(graph):
    class PoisonWeights(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            with torch.no_grad():
                pl_module.encoder.source_input.weight.fill_(float("nan"))

    message = "loss is nan at epoch 0, step 0; lower train.learning_rate"
    with pytest.raises(TrainingDivergedError, match=message):
        fit_variant("blade", graph, NEIGHBOURHOOD, CONFIG, 1, None, progress=False,
                    callbacks=[PoisonWeights()])


@pytest.mark.parametrize("name", ["blade", "no_adaptive", "no_bias", "daemon", "sage"])
def test_every_variant_trains(graph, name):
    result = fit_variant(name, graph, NEIGHBOURHOOD, dict(CONFIG, max_epochs=1), 0, None, progress=False)
    s, t = result.module.embeddings()
    assert s.shape == (10, 8) and torch.isfinite(s).all()
    assert torch.equal(s, t) == (name == "sage")  # only SAGE has one embedding per node


def test_variant_samplers_follow_their_flags(graph):
    adaptive = build_sampler(get_variant("blade"), graph, NEIGHBOURHOOD, fixed_fanout=2)
    fixed = build_sampler(get_variant("daemon"), graph, NEIGHBOURHOOD, fixed_fanout=2)
    hoods = fixed.sample(torch.Generator().manual_seed(0))
    # DAEMON: one hop, at most 2 out-neighbours per node
    assert int(torch.bincount(hoods.out_index[0], minlength=10).max()) <= 2
    assert int(hoods.out_hop.max()) == 1
    assert int(adaptive.sample(torch.Generator().manual_seed(0)).out_hop.max()) == 2


class RecordValidation(pl.Callback):
    def __init__(self) -> None:
        self.scores: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.scores.append(float(trainer.callback_metrics["val_mrr@10"]))


def validation_score(module) -> float:
    from torch.utils.data import DataLoader, TensorDataset

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    [metrics] = trainer.validate(module, DataLoader(TensorDataset(torch.zeros(1)), batch_size=1),
                                 verbose=False)
    return metrics["val_mrr@10"]


def test_without_checkpoints_the_best_epoch_is_kept_not_the_last(graph):
    # A learning rate this high makes validation MRR@10 go up and down on the tiny graph.
    config = dict(CONFIG, learning_rate=0.5, max_epochs=6)
    recorder = RecordValidation()
    result = fit_variant("blade", graph, NEIGHBOURHOOD, config, seed=1, checkpoint_dir=None,
                         callbacks=[recorder], progress=False)
    scores = recorder.scores
    assert len(scores) == 6 and scores[-1] < max(scores)  # the case this test is about
    assert result.best_score == pytest.approx(max(scores))
    assert validation_score(result.module) == pytest.approx(max(scores))
